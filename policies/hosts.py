"""One canonical form for host names and addresses, so a rule and a request are compared like for like."""

from __future__ import annotations

import functools
import ipaddress
import re

import idna

# A name that is already canonical ASCII (LDH labels of 1-63, no punycode) skips the IDNA machinery.
_PLAIN = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


class HostError(ValueError):
    """The host cannot be put in canonical form; such a host never matches a rule."""


def _ipv4_number(part: str) -> int:
    """One part of an IPv4 literal in any spelling browsers accept (RFC 3986 is stricter; WHATWG URL is not)."""
    if part.lower().startswith("0x"):
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    try:
        return int(digits, base)
    except ValueError:
        raise HostError(f"bad IPv4 part {part!r}") from None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`0x7f.1`, `2130706433`, `0177.0.0.1` all mean 127.0.0.1; None when the host is not numeric."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    if not parts:
        return None
    last = parts[-1]
    if not (last.isdigit() or last.lower().startswith("0x")):
        return None
    if len(parts) > 4:
        raise HostError(f"a host ending in a number must be an IPv4 address: {host!r}")
    if not all(p and (p.isdigit() or (p.lower().startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in p[2:])))
               for p in parts):
        raise HostError(f"malformed IPv4 address {host!r}")
    numbers = [_ipv4_number(p) for p in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise HostError(f"IPv4 address out of range {host!r}")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


@functools.lru_cache(maxsize=16384)
def canonical_host(raw: str) -> str:
    """Lower case, IDNA (UTS #46) to ASCII, no trailing dot; IP literals in their one standard spelling."""
    host = raw.strip()
    if not host:
        raise HostError("empty host")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise HostError(f"malformed IPv6 address {raw!r}") from None
        mapped = v6.ipv4_mapped
        return str(mapped) if mapped else str(v6)
    host = host.rstrip(".") or host
    lowered = host.lower()
    last = lowered[lowered.rfind(".") + 1:]
    # Only a name whose last label is numeric can be an IPv4 address (WHATWG URL "ends in a number").
    if last and (last[0].isdigit() or last.startswith("0x")):
        v4 = parse_ipv4(host)
        if v4 is not None:
            return str(v4)
    if len(lowered) <= 253 and _PLAIN.match(lowered) and "xn--" not in lowered:
        return lowered
    try:
        ascii_host = idna.encode(host, uts46=True, std3_rules=True).decode("ascii")
    except idna.IDNAError as exc:
        raise HostError(f"invalid host name {raw!r}: {exc}") from None
    return ascii_host.lower()


def is_ip_literal(host: str) -> bool:
    """For canonical hosts: a name never ends in a digit label here unless it is IPv4; IPv6 has a colon."""
    if not host or not (host[-1].isdigit() or ":" in host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or a bare host; raises HostError on a bad port."""
    host, port = authority, default_port
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise HostError(f"unclosed IPv6 literal in {authority!r}")
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise HostError(f"bad authority {authority!r}")
            port = _port(rest[1:], authority)
    elif authority.count(":") == 1:
        host, _, tail = authority.partition(":")
        port = _port(tail, authority)
    return canonical_host(host), port


def _port(text: str, authority: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise HostError(f"bad port in {authority!r}")
    return int(text)
