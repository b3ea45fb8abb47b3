"""Pins every upstream connection to an address checked by `gateway.upstream` (and `--resolve`)."""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy.proxy import server_hooks

from gatehouse.settings import ResolveTable
from gateway.upstream import UpstreamRefused, upstream_address
from policies.hosts import is_ip_literal
from policies.snapshot import Snapshot


class UpstreamGuard:
    def __init__(self, table: ResolveTable, policy: Callable[[], Snapshot]) -> None:
        self._table = table
        self._policy = policy

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
        data.server.address = address
