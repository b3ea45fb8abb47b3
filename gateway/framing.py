"""Framing rules no policy can switch off, for a request head whichever engine and protocol carries it.

Pure: bytes in, a status and a message (or None) out. h11 and h2 parse; these refuse what they let through
and an origin behind the gateway might read another way (request smuggling: RFC 9112 11.2, RFC 9110 8.6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MAX_HEAD = 16 * 1024
"""Bytes of one request head, however it arrives (nginx's large_client_header_buffers is 8 KiB a line)."""
MAX_HEADERS = 100
"""Header fields of one request (Apache's LimitRequestFields); a browser sends about twenty."""
MAX_BODY = 2**31 - 1
"""The largest Content-Length carried: what a signed 32-bit integer holds, so an origin reading the length into
one (or into 64 bits) cannot wrap it to another framing; no upload from a terminal comes near 2 GiB."""

_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Z]+")
"""A token without lower-case letters: methods are case-sensitive (RFC 9110 9.1) and all registered ones are
upper case; `get` would be a different method to the policy and the same one to a lenient origin."""
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LENGTH = re.compile(rb"0|[1-9][0-9]{0,18}")
"""1-19 digits, no sign, no leading zero (checked before int(), which a 5,000-digit value would make slow)."""
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters but HTAB (RFC 9110 5.5: a field value is visible characters, SP, HTAB and obs-text)."""
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
HEAD_END = re.compile(rb"\n\r?\n")
"""Where h11 sees a head end: the raw checks look at exactly the bytes it will parse."""


def head_problem(method: bytes, headers: Sequence[tuple[bytes, bytes]]) -> tuple[int, str] | None:
    """Why a parsed request head must be refused whatever the policy says, as a status and a message; None
    when it may be decided. `headers` are the regular fields (no HTTP/2 pseudo-headers)."""
    if not _METHOD.fullmatch(method):
        shown = method[:40].decode("latin-1")
        return 400, f"the method {shown!r} is not an upper-case token (methods are case-sensitive, RFC 9110 9.1)"
    if len(headers) > MAX_HEADERS:
        return 431, f"{len(headers)} header fields, more than the {MAX_HEADERS} accepted"
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    for name, value in headers:
        if not _NAME.fullmatch(name):
            return 400, f"the header name {name[:40].decode('latin-1')!r} is not a token"
        if has_control(value):
            return 400, f"a control character in the value of {name.decode('latin-1')}"
        lowered = name.lower()
        if lowered == b"content-length":
            lengths.update(part.strip(b" \t") for part in value.split(b","))
        elif lowered == b"transfer-encoding":
            codings += [part for part in (p.strip(b" \t").lower() for p in value.split(b",")) if part]
    if codings and codings != [b"chunked"]:  # h11 refuses these too; mitmproxy carried `gzip, chunked` on
        return 501, (f"Transfer-Encoding {b', '.join(codings)[:60].decode('latin-1')!r}: only chunked is carried "
                     "(RFC 9112 6.1)")
    if lengths:
        if len(lengths) > 1:
            return 400, "several differing Content-Length values"
        length = lengths.pop()
        if not _LENGTH.fullmatch(length) or int(length) > MAX_BODY:
            return 400, (f"Content-Length {length[:24].decode('latin-1')!r} is not a length from 0 to {MAX_BODY} "
                         "without sign or leading zeros")
    return None


def has_control(value: bytes) -> bool:
    """A control character (but HTAB) in a field value, or in an HTTP/2 pseudo-header's (`:path`, `:authority`)."""
    return _CONTROL.search(value) is not None


def raw_head_problem(data: bytes | bytearray) -> tuple[int, str] | None:
    """Why the raw bytes of one request head (up to and including its blank line, or all of it that has come)
    must be refused, as a status and a message; None when h11 may parse them. h11 takes a bare LF as a line end
    and folded lines (obs-fold) as one value, which an origin may split elsewhere (RFC 9112 2.2, 5.2); h11 and
    mitmproxy take a request line with two spaces in a row, and any HTTP/x.y version."""
    start = 0
    while data.startswith(b"\r\n", start):  # empty lines before a request (RFC 9112 2.2)
        start += 2
    if (end := data.find(b"\r\n", start)) >= 0 and (problem := request_line_problem(data[start:end])) is not None:
        return problem
    if len(data) > MAX_HEAD:
        return 431, f"a request head longer than {MAX_HEAD} bytes"
    if data.count(b"\n") > MAX_HEADERS + 2:  # the request line, the fields and the blank line
        return 431, f"more than {MAX_HEADERS} header fields"
    crlf = data.count(b"\r\n")  # counted, not searched: a head is read at every request
    if data.count(b"\n") != crlf:
        return 400, "a line of the request head ends with a bare LF, not CRLF (RFC 9112 2.2)"
    if data.count(b"\r") != crlf + data.endswith(b"\r"):  # a CR ending what has come so far may get its LF
        return 400, "a bare CR in the request head (RFC 9112 2.2)"
    if b"\n " in data or b"\n\t" in data:
        return 400, "a header value folded over several lines (obs-fold, RFC 9112 5.2)"
    if _RAW_CONTROL.search(data):
        return 400, "a control character in the request head"
    return None


def request_line_problem(line: bytes | bytearray) -> tuple[int, str] | None:
    """Why a request line must be refused: not a method, a target and HTTP/1.1 or HTTP/1.0, one space between each
    (RFC 9112 3; an HTTP/0.9 line has no version, and an HTTP/2 request has no request line)."""
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        return 400, "the request line is not a method, a target and a version with one space between each"
    if parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        if _VERSION.fullmatch(parts[2]):
            return 505, f"{parts[2].decode()} over an HTTP/1 connection: only HTTP/1.1 and HTTP/1.0 are spoken"
        return 400, f"the request line ends with {parts[2][:20].decode('latin-1')!r}, not an HTTP version"
    return None


def pending_head_problem(buffered: bytes | bytearray) -> tuple[int, str] | None:
    """`raw_head_problem` on what a connection holds while it waits for a head: the head if it is complete
    (what follows it is the body), else all of it, so a head too long is refused whether it came in one
    write or in many."""
    end = HEAD_END.search(buffered)
    return raw_head_problem(buffered[:end.end()] if end else buffered)


def forwardable(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers without those whose name has an underscore: an origin (or a CGI-style framework) may read
    `Transfer_Encoding` or `Content_Length` as the dashed field and frame the body differently (nginx drops
    them too, underscores_in_headers off)."""
    return [(name, value) for name, value in headers if b"_" not in name]
