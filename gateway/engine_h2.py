"""HTTP/2 from the terminal inside an inspected tunnel: each stream decided on its own, carried over HTTP/1.1.

h2 does the framing, HPACK, flow control and the protocol's checks (pseudo-headers, connection-specific
headers, stream states); a stream whose request breaks them is reset by h2, and a connection that breaks
them gets GOAWAY and is recorded as malformed. The origin is spoken to over HTTP/1.1 through the tunnel's
pool, at most `UPSTREAMS_PER_TUNNEL` connections at once (as a browser would open them itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from gateway.carry import Carrier, cleaned
from gateway.checks import TEXT, Asked, Refusal, overrides_in
from gateway.framing import MAX_HEAD, MAX_HEADERS, forwardable, has_control, head_problem
from gateway.handoff import Handoff
from gateway.http1 import HEAD_TIMEOUT_S, IDLE_TIMEOUT_S

log = logging.getLogger(__name__)
UPSTREAMS_PER_TUNNEL = 6
MAX_STREAMS = 100
MAX_HEADER_LIST = MAX_HEAD + 32 * MAX_HEADERS
"""SETTINGS_MAX_HEADER_LIST_SIZE: what HPACK counts (each field's name and value and 32 octets, RFC 9113 6.5.2)
for a head at the HTTP/1.1 bounds; a list above it ends the connection (h2's decoder enforces it)."""
_END = None


@dataclass(slots=True, eq=False)
class Stream:
    id: int
    body: asyncio.Queue[tuple[bytes, int] | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class H2Server:
    def __init__(self, carrier: Carrier, handoff: Handoff, side: object, refused: str | None, *,
                 head_timeout: float = HEAD_TIMEOUT_S, idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self._head_timeout = head_timeout
        self._idle_timeout = idle_timeout
        self._quiet = asyncio.get_running_loop().time()
        """When the connection last had no stream open (or was opened): the idle time counts from there."""
        self._timer: asyncio.Timeout | None = None
        """The bound on the read under way, moved when the last open stream ends."""
        self._carrier = carrier
        self._handoff = handoff
        self._side = side
        self._refused = refused
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self._streams: dict[int, Stream] = {}
        self._window = asyncio.Event()
        """Set (and cleared at once) whenever the client opens its flow-control windows: senders look again."""
        self._pool = carrier.pool(tls=True)
        self._slots = asyncio.Semaphore(UPSTREAMS_PER_TUNNEL)

    def flush(self) -> None:
        if data := self._conn.data_to_send():
            self._side.write(data)  # type: ignore[attr-defined]

    async def run(self) -> None:
        self._conn.initiate_connection()
        self._conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                                    h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST})
        self.flush()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(self._deadline()) as self._timer:
                        data = await self._side.read()  # type: ignore[attr-defined]
                except TimeoutError:
                    await self._timed_out()
                    return
                finally:
                    self._timer = None
                if not data:
                    return
                try:
                    events = self._conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    self.flush()  # the GOAWAY h2 prepared
                    await self._carrier.checks.malformed(self._handoff, 400, f"malformed HTTP/2: {exc}")
                    return
                for event in events:
                    self._on(event)
                self.flush()  # not drained here: reading goes on while the client reads (no deadlock on a full
                # socket both ways); the streams' bodies are drained as they are sent
        finally:
            tasks = [s.task for s in self._streams.values() if s.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._pool.close()

    def _deadline(self) -> float | None:
        """Until when the next read may wait: no bound while a stream is open (its answer may take a while);
        else the idle time, or the head time while part of a frame is waiting for the rest of it."""
        if self._streams:
            return None
        pending = bool(self._conn.incoming_buffer.data)
        return self._quiet + (self._head_timeout if pending else self._idle_timeout)

    async def _timed_out(self) -> None:
        """GOAWAY to a connection that stayed quiet too long; a request left half-sent is recorded as refused."""
        if self._conn.incoming_buffer.data:
            await self._carrier.checks.malformed(
                self._handoff, 408, f"no complete HTTP/2 request within {self._head_timeout:g} s")
        self._conn.close_connection()
        self.flush()
        await self._side.drain()  # type: ignore[attr-defined]

    def _on(self, event: h2.events.Event) -> None:
        known = self._streams.get(getattr(event, "stream_id", 0))
        if isinstance(event, h2.events.RequestReceived):
            stream = Stream(event.stream_id)
            self._streams[event.stream_id] = stream
            if event.stream_ended is not None:
                stream.body.put_nowait(_END)
            stream.task = asyncio.create_task(self._serve(stream, list(event.headers), event.stream_ended is None))
        elif isinstance(event, h2.events.DataReceived):
            if known is not None:
                known.body.put_nowait((event.data, event.flow_controlled_length))
            else:  # a stream already answered: its data is let go, or the connection's window would shrink
                self._acknowledge(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            if known is not None:
                known.body.put_nowait(_END)
        elif isinstance(event, h2.events.StreamReset):
            if known is not None and known.task is not None:
                known.task.cancel()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window.set()
            self._window.clear()

    async def _serve(self, stream: Stream, headers: list[tuple[bytes, bytes]], has_body: bool) -> None:
        reply = H2Reply(self, stream.id)
        try:
            asked, problem, forwarded = self._asked(headers, has_body)
            if (unframed := _head_problem(headers)) is not None:
                status, detail = unframed
                await self._carrier.checks.malformed(self._handoff, status, f"malformed request: {detail}")
                await reply.refuse(Refusal(status, f"gateway: malformed request: {detail}\n".encode(), TEXT))
                return
            refusal = await self._carrier.checks.admit(self._handoff, asked, problem or self._refused)
            if refusal is not None:
                await reply.refuse(refusal)
                return
            forwarded = [(k, v) for k, v in forwarded if k not in asked.strip]
            async with self._slots:
                await self._carrier.carry(self._handoff, asked, forwarded, self._body(stream), reply, self._pool)
        except asyncio.CancelledError:
            raise
        except h2.exceptions.StreamClosedError:
            pass  # the client reset the stream while its answer was being sent
        except Exception:
            log.exception("front: HTTP/2 stream %d of %s failed", stream.id, self._handoff.client)
            reply.abort()
        finally:
            self._streams.pop(stream.id, None)
            if not self._streams:
                self._quiet = asyncio.get_running_loop().time()
                if self._timer is not None:
                    self._timer.reschedule(self._deadline())
            while not stream.body.empty():  # body the answer did not need
                if (item := stream.body.get_nowait()) is not None:
                    self._acknowledge(item[1], stream.id)
            self.flush()

    def _acknowledge(self, counted: int, stream_id: int) -> None:
        try:
            self._conn.acknowledge_received_data(counted, stream_id)
        except h2.exceptions.ProtocolError:  # the stream is closed: h2 has given the connection's window back
            pass

    def _asked(self, headers: list[tuple[bytes, bytes]], has_body: bool
               ) -> tuple[Asked, str | None, list[tuple[bytes, bytes]]]:
        """What the stream asks for, why it must be refused whatever the policy says (or None), and the headers
        as they go upstream over HTTP/1.1 (Host from :authority, cookies joined into one header)."""
        pseudo = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k.startswith(b":")}
        method, path = pseudo.get(":method", ""), pseudo.get(":path", "")
        plain = [(k, v) for k, v in headers if not k.startswith(b":")]
        authority = pseudo.get(":authority") or next((v.decode("latin-1") for k, v in plain if k == b"host"), None)
        handoff = self._handoff
        asked = Asked(method, handoff.host, handoff.port, path, authority,
                      f"https://{authority or handoff.host}{path}",
                      accept_language=next((v.decode("latin-1") for k, v in plain if k == b"accept-language"), ""),
                      overrides=overrides_in(plain))
        problem = None
        if method == "CONNECT" or not path.startswith("/"):
            problem = f"an HTTP/2 {method or 'request'} for {path or 'no path'} is not carried through a tunnel"
        cookies = b"; ".join(v for k, v in plain if k == b"cookie")
        forwarded = [(k, v) for k, v in forwardable(cleaned(plain)) if k not in (b"host", b"cookie")]
        forwarded.insert(0, (b"host", (authority or handoff.host).encode("latin-1")))
        if cookies:
            forwarded.append((b"cookie", cookies))
        if has_body and not any(k in (b"content-length", b"transfer-encoding") for k, _ in forwarded):
            forwarded.append((b"transfer-encoding", b"chunked"))
        return asked, problem, forwarded

    async def _body(self, stream: Stream) -> AsyncIterator[bytes]:
        while (item := await stream.body.get()) is not _END:
            assert item is not None
            data, counted = item
            yield data
            self._acknowledge(counted, stream.id)
            self.flush()

    async def send(self, stream_id: int, data: bytes, *, end: bool) -> None:
        """`data` on the stream as the client's flow-control windows allow; `end` ends the stream."""
        view = memoryview(data)
        while view:
            room = min(self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size)
            if room <= 0:
                await self._window.wait()
                continue
            piece, view = view[:room], view[room:]
            self._conn.send_data(stream_id, piece.tobytes(), end_stream=end and not view)
            self.flush()
            await self._side.drain()  # type: ignore[attr-defined]
        if end and not data:
            self._conn.end_stream(stream_id)
            self.flush()

    def head(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._conn.send_headers(stream_id, [(b":status", str(status).encode()), *headers])
        self.flush()

    def reset(self, stream_id: int) -> None:
        try:
            self._conn.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
        except h2.exceptions.ProtocolError:
            return  # already closed
        self.flush()


def _head_problem(headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
    """`gateway.framing.head_problem` on a stream's header list (cookie crumbs counted as the one header they go
    upstream as), with the HTTP/1.1 bound on its size, which it will have upstream, and control characters in
    pseudo-headers (`:path` becomes the request line)."""
    size = sum(len(k) + len(v) + 4 for k, v in headers)  # as "name: value" lines
    if size > MAX_HEAD:
        return 431, f"a request head longer than {MAX_HEAD} bytes"
    if any(k.startswith(b":") and has_control(v) for k, v in headers):
        return 400, "a control character in a pseudo-header"
    regular = [(k, v) for k, v in headers if not k.startswith(b":") and k != b"cookie"]
    if cookies := [v for k, v in headers if k == b"cookie"]:
        regular.append((b"cookie", b"; ".join(cookies)))
    return head_problem(next((v for k, v in headers if k == b":method"), b""), regular)


class H2Reply:
    def __init__(self, server: H2Server, stream_id: int) -> None:
        self._server = server
        self._id = stream_id
        self.started = False

    def head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        # HTTP/2 frames the body itself: no transfer-encoding, and names in lower case (h2 checks both).
        self._server.head(self._id, status, [(k.lower(), v) for k, v in headers if k.lower() != b"transfer-encoding"])

    async def data(self, chunk: bytes) -> None:
        await self._server.send(self._id, chunk, end=False)

    async def end(self, last: bytes) -> None:
        await self._server.send(self._id, last, end=True)

    async def refuse(self, refusal: Refusal) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
        self.head(refusal.status, b"", headers + [(b"content-length", str(len(refusal.body)).encode())])
        await self.end(refusal.body)

    def abort(self) -> None:
        self._server.reset(self._id)
