"""Binds each inspector connection to the subject the front signed for it, and strips the header."""

from __future__ import annotations

import logging

from mitmproxy import connection, http

from gateway.handoff import HEADER, Handoff, HandoffError, verify

log = logging.getLogger(__name__)
METADATA_KEY = "gatehouse.handoff"
REFUSED_KEY = "gatehouse.refused"


class HandoffBinder:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._by_client: dict[str, Handoff] = {}
        self._refused: dict[str, str] = {}

    def handoff_for(self, client_id: str) -> Handoff | None:
        return self._by_client.get(client_id)

    def refuse(self, client_id: str, reason: str) -> None:
        """Every later request on this connection is denied with `reason` (e.g. a TLS check failed)."""
        self._refused[client_id] = reason

    def _bind(self, flow: http.HTTPFlow) -> None:
        value = flow.request.headers.pop(HEADER, None)
        if value is not None:
            try:
                self._by_client[flow.client_conn.id] = verify(self._key, value)
            except HandoffError as exc:
                log.warning("inspector: refused a connection: %s", exc)
                self._by_client.pop(flow.client_conn.id, None)
        if (bound := self._by_client.get(flow.client_conn.id)) is not None:
            flow.metadata[METADATA_KEY] = bound
        if (reason := self._refused.get(flow.client_conn.id)) is not None:
            flow.metadata[REFUSED_KEY] = reason

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._bind(flow)
        if METADATA_KEY not in flow.metadata:
            flow.response = http.Response.make(403, b"gateway: connection not handed off\n")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._bind(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        self._by_client.pop(client.id, None)
        self._refused.pop(client.id, None)
