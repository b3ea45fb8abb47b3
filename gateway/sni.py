"""The SNI rule shared by the front (passthrough) and the inspector: it must equal the CONNECT host."""

from __future__ import annotations

import asyncio

from mitmproxy.proxy.layers.tls import parse_client_hello
from mitmproxy.tls import ClientHello

from policies.hosts import HostError, canonical_host, is_ip_literal


def sni_mismatch(sni: str | None, host: str) -> str | None:
    """None when `sni` fits a tunnel to `host`; otherwise what is wrong. IP-literal tunnels carry no SNI."""
    if not sni:
        return None if is_ip_literal(host) else f"the TLS handshake names no server; the tunnel is to {host}"
    try:
        named = canonical_host(sni)
    except HostError:
        return f"the TLS handshake names an invalid server {sni!r}"
    if named != host:
        return f"the TLS handshake names {named}, but the tunnel is to {host} (domain fronting)"
    return None


HELLO_MAX = 64 * 1024
HELLO_TIMEOUT_S = 10.0


async def read_client_hello(reader: asyncio.StreamReader, first: bytes) -> tuple[bytes, ClientHello]:
    """Bytes up to a complete TLS ClientHello (parsed by mitmproxy's parser), and the hello (SNI, ALPN).

    Raises ValueError when the client does not speak TLS, and TimeoutError when it says too little.
    """
    data = first
    async with asyncio.timeout(HELLO_TIMEOUT_S):
        while True:
            if data:
                hello = parse_client_hello(data)
                if hello is not None:
                    return data, hello
            if len(data) > HELLO_MAX:
                raise ValueError("the TLS ClientHello is too large")
            chunk = await reader.read(16384)
            if not chunk:
                raise ValueError("the client closed before a TLS ClientHello")
            data += chunk
