"""One canonical form for URL paths, so a prefix rule cannot be walked around by spelling the path oddly."""

from __future__ import annotations

import re

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


_AS_SEPARATOR = frozenset("/\\")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    if char in _AS_SEPARATOR:  # some servers decode %2F and %5C before routing: match as they might
        return "/"
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def canonical_path(raw: str) -> str:
    """Path without query: unreserved escapes decoded (RFC 3986 6.2.2.2), other escapes upper-cased,
    backslashes and encoded slashes as slashes, `;` parameters dropped from each segment, repeated slashes
    folded, and dot segments removed (RFC 3986 5.2.4), also when they were written as `%2e`."""
    path = raw.split("?", 1)[0].split("#", 1)[0] or "/"
    path = _PCT.sub(_decode_unreserved, path).replace("\\", "/")
    if not path.startswith("/"):
        path = "/" + path
    out: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        segment = segment.split(";", 1)[0]
        last = index == len(segments) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        elif segment == "" and not last:
            continue
        else:
            out.append(segment)
    return "/" + "/".join(out)


def path_has_prefix(path: str, prefix: str) -> bool:
    """`/courses` covers `/courses` and `/courses/x`, not `/courses-admin`; a prefix ending in `/` covers below it."""
    if prefix == "/" or path == prefix:
        return True
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path.startswith(prefix + "/")
