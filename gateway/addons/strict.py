"""Strict HTTP/1 framing in the mitmproxy inspector: each request head is checked on its raw bytes before
mitmproxy parses it, and a refused one is answered and recorded like one the front refuses.

mitmproxy's HTTP/1 reader (h11's line splitter) takes a bare LF as a line end, joins folded lines, accepts any
Content-Length of digits, and forwards an absolute-form target inside a tunnel; where it refuses a head itself it
only logs it. No hook sees the raw bytes, so the connection's HTTP/1 server layer is ours: mitmproxy's, with a
check in front of its head reader (the HTTP layer takes a server layer set before it starts, as client replay
does). The check asks `gatehouse_malformed` to record the refusal before the answer goes out.
"""

from __future__ import annotations

from dataclasses import dataclass

import h2.errors
from mitmproxy import connection
from mitmproxy.net.http import http1
from mitmproxy.net.http.validate import validate_headers
from mitmproxy.proxy import commands, events, layer, layers
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import HTTPMode
from mitmproxy.proxy.layers.http._http1 import Http1Server
from mitmproxy.proxy.layers.http._http2 import Http2Server

from gateway.addons.handoff import HandoffBinder
from gateway.checks import TEXT, RequestChecks
from gateway.framing import HEAD_END, head_problem, pending_head_problem
from gateway.http1 import response_bytes


@dataclass
class Malformed:
    """A request head refused on an inspector connection: the answer to send (set by the hook) and why."""

    client: connection.Connection
    status: int
    detail: str
    answer: bytes = b""


@dataclass
class GatehouseMalformedHook(commands.StartHook):  # type: ignore[no-untyped-call]
    """Record a refused request head; `data.answer` is what the client is sent before the connection closes."""

    data: Malformed


class StrictHttp1Server(Http1Server):
    """mitmproxy's HTTP/1 server, refusing a head the framing rules refuse before mitmproxy reads it."""

    def __init__(self, context: Context, mode: HTTPMode) -> None:
        super().__init__(context)
        self._mode = mode

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            while bytes(self.buf).startswith(b"\r\n"):  # an empty line before a request (RFC 9112 2.2)
                self.buf.maybe_extract_lines()
            problem = self._problem()
            if problem is not None:
                hook = GatehouseMalformedHook(Malformed(self.conn, *problem))
                yield hook
                yield commands.SendData(self.conn, hook.data.answer or response_bytes(
                    problem[0], f"gateway: {problem[1]}\n".encode(), TEXT))
                yield commands.CloseConnection(self.conn)
                self.state = self.done
                return
        yield from super().read_headers(event)

    def _problem(self) -> tuple[int, str] | None:
        """Why the head buffered now must be refused; None while it is incomplete but not too long, or when
        mitmproxy may read it."""
        data = bytes(self.buf)
        if (problem := pending_head_problem(data)) is not None:
            return problem
        end = HEAD_END.search(data)
        if end is None:
            return None
        lines = [line.removesuffix(b"\r") for line in data[:end.end()].split(b"\n")][:-2]
        try:
            request = http1.read_request_head(lines)
            http1.expected_http_body_size(request)
            validate_headers(request)
        except ValueError as exc:
            return 400, f"malformed request: {exc}"
        if (problem := head_problem(request.data.method, request.headers.fields)) is not None:
            return problem
        target = lines[0].split(b" ")[1]
        if request.method == "CONNECT":
            return None if self._mode is HTTPMode.regular else (400, "CONNECT inside a tunnel")
        if self._mode is HTTPMode.regular and not request.authority:
            return 400, f"a plain-HTTP request must name an http:// URL, not {target[:80].decode('latin-1')!r}"
        if self._mode is not HTTPMode.regular and not target.startswith(b"/"):
            return 400, f"a request in a tunnel must be origin-form, not {target[:80].decode('latin-1')!r}"
        return None


class RecordedHttp2Server(Http2Server):
    """mitmproxy's HTTP/2 server, recording the protocol errors it closes a connection for (h2 refuses a bad
    length, a connection header or a malformed pseudo-header before any hook sees a request)."""

    def protocol_error(self, message: str, error_code: int = h2.errors.ErrorCodes.PROTOCOL_ERROR
                       ) -> layer.CommandGenerator[None]:
        yield GatehouseMalformedHook(Malformed(self.conn, 400, message))
        yield from super().protocol_error(message, error_code)


class StrictFraming:
    """Gives every HTTP connection the strict server layer and records what it refuses."""

    def __init__(self, binder: HandoffBinder, checks: RequestChecks) -> None:
        self._binder = binder
        self._checks = checks

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        chosen = nextlayer.layer
        if not isinstance(chosen, layers.HttpLayer):
            return
        client = chosen.context.client
        server: layer.Layer
        if client.alpn == b"h2":  # h2 frames HTTP/2; the request decider checks each head it lets through
            server = RecordedHttp2Server(chosen.context.fork())
        elif client.alpn is None or client.alpn == b"http/1.1":
            server = StrictHttp1Server(chosen.context.fork(), chosen.mode)
        else:
            return  # HTTP/3 is off (the http3 option)
        chosen.connections.setdefault(client, server)

    async def gatehouse_malformed(self, data: Malformed) -> None:
        handoff = self._binder.handoff_for(data.client.id)
        peer = str(data.client.peername[0]) if data.client.peername else ""
        data.answer = await self._checks.malformed(handoff, data.status, data.detail, client=peer)
