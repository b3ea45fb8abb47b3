"""Where the gateway (and the server's own page previews) may connect: public addresses, or an internal one only for
a host a rule names exactly.

The check runs on the address the connection is then pinned to, so a name that resolves to a public address
when checked and to 127.0.0.1 when connecting (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl

import certifi

from gatehouse.errors import GatehouseError
from gatehouse.settings import ResolveTable, lookup
from policies.hosts import is_ip_literal
from policies.snapshot import Snapshot


class UpstreamRefused(GatehouseError):
    pass


def public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def named_exactly(host: str, policy: Snapshot) -> bool:
    """Internal addresses are for hosts a rule names as they are (not through `*.domain`)."""
    return host in policy.exact


async def upstream_address(host: str, port: int, table: ResolveTable, policy: Snapshot) -> tuple[str, int]:
    """The one address to connect to for `host:port`, checked; raises UpstreamRefused with the reason."""
    target = lookup(table, host, port)
    if target is not None:
        candidates = [target]
    elif is_ip_literal(host):
        candidates = [(host, port)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UpstreamRefused(f"{host} cannot be resolved: {exc.strerror}") from None
        candidates = [(str(info[4][0]), port) for info in infos]
    if not candidates:
        raise UpstreamRefused(f"{host} has no address")
    internal = [address for address, _ in candidates if not public(address)]
    if internal and not named_exactly(host, policy):
        raise UpstreamRefused(f"{host} resolves to {internal[0]}, an internal address; only a rule that names "
                              f"{host} exactly may reach it")
    return candidates[0]


def upstream_context(extra_ca_file: str = "") -> ssl.SSLContext:
    """Verification of upstream servers: the public roots mitmproxy trusts, and the setting's extra bundle."""
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context
