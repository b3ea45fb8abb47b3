"""Decides every request the mitmproxy inspector carries (HTTP/2, and HTTP/1.1 when it is chosen), with the
same checks as the front's own HTTP/1.1 engine; denied requests get the block page."""

from __future__ import annotations

from mitmproxy import http

from gatehouse.audit import Tag
from gateway.addons.handoff import METADATA_KEY, REFUSED_KEY
from gateway.checks import Asked, Refusal, RequestChecks
from gateway.handoff import Handoff

ASKED_KEY = "gatehouse.asked"
DENIED_KEY = "gatehouse.denied"


class RequestDecider:
    def __init__(self, checks: RequestChecks) -> None:
        self._checks = checks

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        handoff: Handoff | None = flow.metadata.get(METADATA_KEY)
        if handoff is None:
            flow.response = http.Response.make(403, b"gateway: request not handed off\n")
            return
        request = flow.request
        inside = bool(handoff.host)
        asked = Asked(request.method, handoff.host if inside else request.host.lower().rstrip("."),
                      handoff.port if inside else request.port, request.path, request.host_header,
                      request.pretty_url, websocket=request.headers.get("upgrade", "").lower() == "websocket",
                      accept_language=request.headers.get("accept-language", ""))
        flow.metadata[ASKED_KEY] = asked
        refusal = await self._checks.admit(handoff, asked, flow.metadata.get(REFUSED_KEY))
        if refusal is not None:
            flow.metadata[DENIED_KEY] = True
            flow.response = _response(refusal)

    async def response(self, flow: http.HTTPFlow) -> None:
        handoff: Handoff | None = flow.metadata.get(METADATA_KEY)
        asked: Asked | None = flow.metadata.get(ASKED_KEY)
        if handoff is None or asked is None or flow.metadata.get(DENIED_KEY) or flow.response is None:
            return
        refusal = await self._checks.answered(handoff, asked, flow.response.status_code,
                                              flow.response.headers.get("location", ""))
        if refusal is not None:
            flow.metadata[DENIED_KEY] = True
            flow.response = _response(refusal)
            return
        await self._checks.close(handoff, asked, Tag.GATEWAY_RESPONSE_DONE, "allow", "", flow.response.status_code,
                                 _size(flow.request), _size(flow.response))

    async def error(self, flow: http.HTTPFlow) -> None:
        handoff: Handoff | None = flow.metadata.get(METADATA_KEY)
        asked: Asked | None = flow.metadata.get(ASKED_KEY)
        if handoff is None or asked is None or flow.error is None:
            return
        await self._checks.close(handoff, asked, Tag.GATEWAY_ERROR, "error", flow.error.msg, 502,
                                 _size(flow.request), None)


def _size(message: http.Message) -> int:
    """Body bytes; a body over `stream_large_bodies` went by without being kept, so its declared length."""
    if message.raw_content is not None:
        return len(message.raw_content)
    declared = message.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


def _response(refusal: Refusal) -> http.Response:
    return http.Response.make(refusal.status, refusal.body, refusal.headers)
