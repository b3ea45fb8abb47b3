"""Decides every request the mitmproxy inspector carries (HTTP/2, and HTTP/1.1 when it is chosen), with the
same checks as the front's own HTTP/1.1 engine; denied requests get the block page."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.net.http import url

from gatehouse.audit import Tag
from gateway.addons.handoff import METADATA_KEY, REFUSED_KEY
from gateway.checks import TEXT, Asked, Refusal, RequestChecks, overrides_in
from gateway.framing import MAX_BODY, forwardable, head_problem
from gateway.handoff import Handoff

ASKED_KEY = "gatehouse.asked"
DENIED_KEY = "gatehouse.denied"


class RequestDecider:
    def __init__(self, checks: RequestChecks) -> None:
        self._checks = checks

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return  # answered already, or refused by mitmproxy itself (recorded by the error hook)
        handoff: Handoff | None = flow.metadata.get(METADATA_KEY)
        if handoff is None:
            flow.response = http.Response.make(403, b"gateway: request not handed off\n")
            return
        request = flow.request
        if (problem := head_problem(request.data.method, request.headers.fields)) is not None:
            # HTTP/2 (an HTTP/1 head with a problem never becomes a flow: see gateway.addons.strict)
            flow.metadata[DENIED_KEY] = True
            await self._checks.malformed(handoff, *problem)
            _refuse(flow, Refusal(problem[0], f"gateway: {problem[1]}\n".encode(), TEXT))
            return
        inside = bool(handoff.host)
        asked = Asked(request.method, handoff.host if inside else request.host.lower().rstrip("."),
                      handoff.port if inside else request.port, request.path, request.host_header,
                      request.pretty_url, websocket=request.headers.get("upgrade", "").lower() == "websocket",
                      accept_language=request.headers.get("accept-language", ""),
                      overrides=overrides_in(request.headers.fields))
        flow.metadata[ASKED_KEY] = asked
        refusal = await self._checks.admit(handoff, asked, flow.metadata.get(REFUSED_KEY))
        if refusal is not None:
            flow.metadata[DENIED_KEY] = True
            _refuse(flow, refusal)
            return
        request.headers.fields = tuple((name, value) for name, value in forwardable(request.headers.fields)
                                       if name.lower() not in asked.strip)
        if request.host_header is None:  # HTTP/1.0 may omit it: the origin is told the name that was decided
            request.host_header = url.hostport("https" if inside else "http", asked.host, asked.port)

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
        if handoff is None or flow.error is None or flow.metadata.get(DENIED_KEY):
            return
        if asked is None:  # never decided: mitmproxy refused the request (and answered it) itself
            flow.metadata[DENIED_KEY] = True
            await self._checks.malformed(handoff, 400, f"refused by the inspector: {flow.error.msg}")
            return
        await self._checks.close(handoff, asked, Tag.GATEWAY_ERROR, "error", flow.error.msg, 502,
                                 _size(flow.request), None)


def _size(message: http.Message) -> int:
    """Body bytes; a body over `stream_large_bodies` went by without being kept, so its declared length."""
    if message.raw_content is not None:
        return len(message.raw_content)
    declared = message.headers.get("content-length", "")
    return min(int(declared), MAX_BODY) if declared.isdigit() and len(declared) < 20 else 0


def _refuse(flow: http.HTTPFlow, refusal: Refusal) -> None:
    """Answer with the refusal; a body large enough to be streamed cannot wait behind an answer in mitmproxy,
    so that request is cut instead (after its refusal was recorded)."""
    if flow.request.stream:
        flow.kill()  # type: ignore[no-untyped-call]
    else:
        flow.response = _response(refusal)


def _response(refusal: Refusal) -> http.Response:
    return http.Response.make(refusal.status, refusal.body, refusal.headers)
