"""Strict HTTP/1 framing in the mitmproxy inspector: each request head is checked on its raw bytes before
mitmproxy parses it, and each chunked body as it is read; a refused one is answered and recorded like one the
front refuses. HTTP/2 connections h2 closes for a protocol error are recorded too.

mitmproxy's HTTP/1 reader (h11's line splitter) takes a bare LF as a line end, joins folded lines, accepts any
Content-Length of digits, and forwards an absolute-form target inside a tunnel; where it refuses a head itself it
only logs it. No hook sees the raw bytes, so the connection's HTTP/1 server layer is ours: mitmproxy's, with a
check in front of its head reader (the HTTP layer takes a server layer set before it starts, as client replay
does). The check asks `gatehouse_malformed` to record the refusal before the answer goes out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import h2.errors
import h11
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer
from mitmproxy import connection
from mitmproxy.net.http import http1
from mitmproxy.net.http.validate import validate_headers
from mitmproxy.proxy import commands, events, layer, layers
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import HTTPMode
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import RequestProtocolError
from mitmproxy.proxy.layers.http._http1 import Http1Server, TBodyReader
from mitmproxy.proxy.layers.http._http2 import Http2Server

from gateway.addons.handoff import HandoffBinder
from gateway.checks import TEXT, RequestChecks
from gateway.framing import HEAD_END, MAX_BODY, head_problem, pending_head_problem
from gateway.http1 import response_bytes

_CHUNK_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters but HTAB, in a chunk's size line (its CRLF taken off)."""


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


class StrictChunkedReader(ChunkedReader):
    """h11 0.14 (the newest mitmproxy 11.0 takes) throws away the two bytes after each chunk whatever they are
    (CVE-2025-43859): an origin reading them as the next chunk would see another body, so they must be CRLF. It
    also takes any bytes as a chunk extension and any number of hex digits as a size (an origin may wrap it, and
    mitmproxy waited for the 2^72 bytes): control characters there, and chunks past `MAX_BODY`, are refused."""

    def __call__(self, buf: ReceiveBuffer) -> h11.Data | h11.EndOfMessage | None:
        header = not self._reading_trailer and self._bytes_in_chunk == 0
        if self._bytes_to_discard > 0 or header:
            data = bytes(buf)
            ahead = data[:self._bytes_to_discard]
            if ahead != b"\r\n"[2 - self._bytes_to_discard:][:len(ahead)]:
                raise h11.RemoteProtocolError(f"a chunk is followed by {ahead!r}, not CRLF")
            if header:
                line = data[self._bytes_to_discard:]
                end = line.find(b"\n")
                line = line[:end + 1].removesuffix(b"\r\n") if end >= 0 else line.removesuffix(b"\r")
                if _CHUNK_CONTROL.search(line):
                    raise h11.RemoteProtocolError(f"a control character or bare LF in the chunk line {line[:40]!r}")
        event = super().__call__(buf)
        if header and self._bytes_in_chunk + (len(event.data) if isinstance(event, h11.Data) else 0) > MAX_BODY:
            raise h11.RemoteProtocolError(f"a chunk longer than {MAX_BODY} bytes")
        return event


class StrictHttp1Server(Http1Server):
    """mitmproxy's HTTP/1 server, refusing a head the framing rules refuse before mitmproxy reads it, and a
    chunked body whose chunks are not each followed by CRLF."""

    def __init__(self, context: Context, mode: HTTPMode) -> None:
        super().__init__(context)
        self._mode = mode
        self._reader: TBodyReader | None = None

    @property
    def body_reader(self) -> TBodyReader:
        assert self._reader is not None
        return self._reader

    @body_reader.setter
    def body_reader(self, reader: TBodyReader) -> None:
        self._reader = StrictChunkedReader() if isinstance(reader, ChunkedReader) else reader

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            while bytes(self.buf).startswith(b"\r\n"):  # an empty line before a request (RFC 9112 2.2)
                self.buf.maybe_extract_lines()
            if (problem := self._problem()) is not None:
                yield from self._refuse(*problem)
                return
        yield from super().read_headers(event)

    def read_body(self, event: events.Event) -> layer.CommandGenerator[None]:
        """mitmproxy's body reader, but a body it cannot frame is answered and recorded before the connection
        closes (mitmproxy closes it without a word), and trailers are refused (mitmproxy raises on them)."""
        if not isinstance(event, events.DataReceived):  # the client went away in the middle of its body
            yield from super().read_body(event)
            return
        closing: commands.CloseConnection | None = None
        try:
            for command in super().read_body(event):
                if closing is not None:  # a close is followed by the error when the body broke its framing
                    if isinstance(command, ReceiveHttp) and isinstance(command.event, RequestProtocolError):
                        yield from self._refuse(400, f"malformed request body: {command.event.message}",
                                                ended=command)
                        return
                    yield closing
                    closing = None
                if isinstance(command, commands.CloseConnection):
                    closing = command
                else:
                    yield command
        except NotImplementedError:
            yield from self._refuse(400, "trailers after a chunked request body are not carried",
                                    ended=ReceiveHttp(RequestProtocolError(self.stream_id, "trailers refused")))
            return
        if closing is not None:
            yield closing

    def _refuse(self, status: int, detail: str, ended: ReceiveHttp | None = None) -> layer.CommandGenerator[None]:
        """Record the refusal, answer it (unless a response has begun) and close; `ended` tells the request's
        stream, if one was open."""
        hook = GatehouseMalformedHook(Malformed(self.conn, status, detail))
        yield hook
        if self.response is None:
            yield commands.SendData(self.conn, hook.data.answer or response_bytes(
                status, f"gateway: {detail}\n".encode(), TEXT))
        yield commands.CloseConnection(self.conn)
        if ended is not None:
            yield ended
        self.state = self.done

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
        elif not client.alpn or client.alpn == b"http/1.1":  # b"": TLS without ALPN (mitmproxy's, not None)
            server = StrictHttp1Server(chosen.context.fork(), chosen.mode)
        else:
            return  # HTTP/3 is off (the http3 option)
        chosen.connections.setdefault(client, server)

    async def gatehouse_malformed(self, data: Malformed) -> None:
        handoff = self._binder.handoff_for(data.client.id)
        peer = str(data.client.peername[0]) if data.client.peername else ""
        data.answer = await self._checks.malformed(handoff, data.status, data.detail, client=peer)
