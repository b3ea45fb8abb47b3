"""SNI must name the host the tunnel was opened for: no domain fronting through an allowed host."""

from __future__ import annotations

from mitmproxy import tls

from gateway.addons.handoff import HandoffBinder
from gateway.sni import sni_mismatch


class SniGuard:
    def __init__(self, binder: HandoffBinder) -> None:
        self._binder = binder

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        handoff = self._binder.handoff_for(client.id)
        if handoff is None or not handoff.host:
            return
        if (problem := sni_mismatch(data.client_hello.sni, handoff.host)) is not None:
            self._binder.refuse(client.id, problem)
