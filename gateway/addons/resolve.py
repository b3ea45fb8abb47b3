"""Sends chosen host names to fixed addresses (`--resolve`), for internal content servers and tests."""

from __future__ import annotations

from collections.abc import Mapping

from mitmproxy.proxy import server_hooks


class ResolveOverride:
    def __init__(self, table: Mapping[str, tuple[str, int]]) -> None:
        self._table = dict(table)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is None:
            return
        host = str(data.server.address[0]).lower().rstrip(".")
        if (target := self._table.get(host)) is not None:
            # TLS keeps the name: SNI and certificate checks still use the host, not the address.
            if data.server.sni is None:
                data.server.sni = host
            data.server.address = target
