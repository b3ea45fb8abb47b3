"""Pins every upstream connection to an address checked by `gatehouse.upstream` (and `--resolve`)."""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy.proxy import server_hooks

from gatehouse.settings import ResolveTable
from gatehouse.upstream import UpstreamRefused, upstream_address
from policies.hosts import is_ip_literal
from policies.snapshot import Snapshot


class UpstreamGuard:
    """Connects to the checked address, then gives the connection its name back: mitmproxy reuses an upstream
    connection for a request only when the addresses match, so a connection left under its numeric address
    is never reused, stays open, and after five of them the next request to that origin waits."""

    def __init__(self, table: ResolveTable, policy: Callable[[], Snapshot]) -> None:
        self._table = table
        self._policy = policy
        self._names: dict[str, tuple[str, int]] = {}

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is None or data.server.error:
            return
        host = str(data.server.address[0]).lower().rstrip(".")
        try:
            address = await upstream_address(host, int(data.server.address[1]), self._table, self._policy())
        except UpstreamRefused as exc:
            data.server.error = str(exc)
            return
        # TLS keeps the name: SNI and certificate checks use the host, not the address.
        if data.server.sni is None and not is_ip_literal(host):
            data.server.sni = host
        self._names[data.server.id] = data.server.address
        data.server.address = address

    async def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        name = self._names.pop(data.server.id, None)
        if name is not None:
            # mitmproxy refuses address changes on open connections (to keep them from being redirected);
            # this one only relabels the socket already connected to the checked address.
            object.__setattr__(data.server, "address", name)

    async def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._names.pop(data.server.id, None)
