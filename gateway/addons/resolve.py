"""Sends chosen host names to fixed addresses (`--resolve`), for internal content servers and tests."""

from __future__ import annotations

from mitmproxy.proxy import server_hooks

from gatehouse.settings import ResolveTable, lookup


class ResolveOverride:
    def __init__(self, table: ResolveTable) -> None:
        self._table = table

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is None:
            return
        host = str(data.server.address[0]).lower().rstrip(".")
        if (target := lookup(self._table, host, int(data.server.address[1]))) is not None:
            # TLS keeps the name: SNI and certificate checks still use the host, not the address.
            if data.server.sni is None:
                data.server.sni = host
            data.server.address = target
