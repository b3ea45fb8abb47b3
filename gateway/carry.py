"""Carrying one decided request to its origin over HTTP/1.1 and the answer back, for either client protocol.

Upstream connections are verified, pinned to the address `gatehouse.upstream` checked, kept alive in a pool of
the client connection they serve (never shared between client connections, so never between inmates), and
spoken to with h11. Bodies are streamed both ways; the last piece of an answer is held back until its closing
record is written, so a finished response is always on record.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import h11

from gatehouse.audit import Tag
from gatehouse.settings import ResolveTable
from gatehouse.upstream import UpstreamRefused, upstream_address, upstream_context
from gateway.checks import TEXT, Asked, Refusal, RequestChecks
from gateway.handoff import HEADER, Handoff
from policies.snapshot import Snapshot

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 10.0
MAX_UPSTREAM_HEAD = 64 * 1024
IDLE_KEPT = 8
"""Idle upstream connections a client connection keeps for its next requests."""
HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"proxy-authenticate",
                 b"te", b"trailer", b"upgrade", b"expect", b"http2-settings", HEADER.encode()})
"""Headers that belong to one hop (RFC 9110 7.6.1), and the hand-off header no client may send on."""


class UpstreamFailed(Exception):
    """The request could not be carried to the origin or its answer back; the message says why."""


class ClientGone(Exception):
    """The client stopped in the middle of its request (closed, reset the stream, or broke the framing)."""


class Reply(Protocol):
    """Where the answer to one request goes: an HTTP/1.1 connection or an HTTP/2 stream."""

    started: bool
    """A response head has gone to the client: an error now can only cut the answer short."""

    def head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None: ...
    async def data(self, chunk: bytes) -> None: ...
    async def end(self, last: bytes) -> None: ...
    async def refuse(self, refusal: Refusal) -> None: ...
    def abort(self) -> None: ...


class Upstream:
    def __init__(self, key: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_UPSTREAM_HEAD)

    @property
    def reusable(self) -> bool:
        return (self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE
                and not self.reader.at_eof() and not self.writer.transport.is_closing())

    def send(self, event: h11.Event) -> None:
        if data := self.conn.send(event):
            self.writer.write(data)

    async def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(CHUNK))

    def close(self) -> None:
        self.writer.transport.abort()


class Pool:
    """The upstream connections of one client connection: in use, and idle ones kept for the next request."""

    def __init__(self, opener: Callable[[Asked], Awaitable[Upstream]]) -> None:
        self._open = opener
        self._idle: list[Upstream] = []
        self._all: set[Upstream] = set()
        self._busy: set[Upstream] = set()

    async def take(self, asked: Asked) -> Upstream:
        key = (asked.host, asked.port)
        for upstream in reversed(self._idle):
            if upstream.key == key:
                self._idle.remove(upstream)
                if upstream.reusable:
                    self._busy.add(upstream)
                    return upstream
                self.drop(upstream)
        upstream = await self._open(asked)
        self._all.add(upstream)
        self._busy.add(upstream)
        return upstream

    def settle(self, upstream: Upstream) -> None:
        """An exchange ended without giving its connection back (cancelled: a cut, a reset stream): closed."""
        if upstream in self._busy:
            self.drop(upstream)

    def give(self, upstream: Upstream) -> None:
        self._busy.discard(upstream)
        if upstream.conn.our_state is h11.DONE and upstream.conn.their_state is h11.DONE:
            upstream.conn.start_next_cycle()
        if not upstream.reusable:
            self.drop(upstream)
            return
        self._idle.append(upstream)
        while len(self._idle) > IDLE_KEPT:
            self.drop(self._idle.pop(0))

    def forget(self, upstream: Upstream) -> None:
        """No longer the pool's to close (a switched protocol owns it)."""
        self._all.discard(upstream)
        self._busy.discard(upstream)

    def drop(self, upstream: Upstream) -> None:
        self._all.discard(upstream)
        self._busy.discard(upstream)
        upstream.close()

    def close(self) -> None:
        for upstream in list(self._all):
            upstream.close()
        self._all.clear()
        self._idle.clear()
        self._busy.clear()


class Carrier:
    def __init__(self, *, checks: RequestChecks, policy: Callable[[], Snapshot], resolve: ResolveTable,
                 upstream_ca_file: str = "") -> None:
        self.checks = checks
        self._policy = policy
        self._resolve = resolve
        self._tls = upstream_context(upstream_ca_file)

    def pool(self, *, tls: bool) -> Pool:
        return Pool(lambda asked: self._connect(asked, tls))

    async def _connect(self, asked: Asked, tls: bool) -> Upstream:
        address = await upstream_address(asked.host, asked.port, self._resolve, self._policy())
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(
                    *address, ssl=self._tls if tls else None, server_hostname=asked.host if tls else None,
                    limit=CHUNK)
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamFailed(f"the certificate of {asked.host} does not verify: {exc.verify_message}") from None
        except TimeoutError:
            raise UpstreamFailed(f"{asked.host} did not answer within {CONNECT_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise UpstreamFailed(f"cannot reach {asked.host} ({address[0]}): {exc.strerror or exc}") from None
        return Upstream((asked.host, asked.port), reader, writer)

    async def carry(self, handoff: Handoff, asked: Asked, headers: list[tuple[bytes, bytes]],
                    body: AsyncIterator[bytes], reply: Reply, pool: Pool,
                    switch: Callable[[Upstream, Any], Awaitable[None]] | None = None) -> bool:
        """Send the request (`headers` as they go upstream, `body` streamed), pass the answer back; True when
        the exchange finished cleanly, so the client connection may carry another. `switch`: what to do with an
        allowed protocol switch (101), for a WebSocket."""
        taken: list[Upstream] = []
        try:
            return await self._carry(handoff, asked, headers, body, reply, pool, switch, taken)
        finally:
            for upstream in taken:
                pool.settle(upstream)

    async def _carry(self, handoff: Handoff, asked: Asked, headers: list[tuple[bytes, bytes]],
                     body: AsyncIterator[bytes], reply: Reply, pool: Pool,
                     switch: Callable[[Upstream, Any], Awaitable[None]] | None, taken: list[Upstream]) -> bool:
        up_bytes = 0
        upstream: Upstream | None = None
        try:
            upstream = await pool.take(asked)
            taken.append(upstream)
            upstream.send(h11.Request(method=asked.method, target=asked.path.encode("ascii", "replace"),
                                      headers=headers))
            async for chunk in body:
                up_bytes += len(chunk)
                upstream.send(h11.Data(data=chunk))
                await upstream.writer.drain()
            upstream.send(h11.EndOfMessage())
            response = await _final_response(upstream, asked, switching=switch is not None)
        except ClientGone as exc:
            if upstream is not None:
                pool.drop(upstream)
            await self.checks.close(handoff, asked, Tag.GATEWAY_ERROR, "error", f"the client stopped: {exc}", 499,
                                    up_bytes)
            return False
        except (UpstreamFailed, UpstreamRefused, OSError, TimeoutError, h11.ProtocolError) as exc:
            if upstream is not None:
                pool.drop(upstream)
            reason = str(exc) or exc.__class__.__name__
            await self.checks.close(handoff, asked, Tag.GATEWAY_ERROR, "error", reason, 502, up_bytes)
            if not reply.started:
                await reply.refuse(Refusal(502, f"gateway: {reason}\n".encode(), TEXT))
            return False
        if response.status_code == 101 and switch is not None:
            pool.forget(upstream)
            await self.checks.close(handoff, asked, Tag.GATEWAY_RESPONSE_DONE, "allow", "", 101, up_bytes, 0)
            await switch(upstream, response)
            return False
        location = next((v.decode("latin-1") for k, v in response.headers if k == b"location"), "")
        refusal = await self.checks.answered(handoff, asked, response.status_code, location)
        if refusal is not None:
            pool.drop(upstream)
            await reply.refuse(refusal)
            return True
        reply.head(response.status_code, response.reason, cleaned(response.headers))
        down = 0
        held = b""
        try:
            while True:
                event = await upstream.next_event()
                if isinstance(event, h11.Data):
                    if held:
                        await reply.data(held)
                    held = bytes(event.data)
                    down += len(held)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise UpstreamFailed(f"{asked.host} closed in the middle of its answer")
        except (UpstreamFailed, OSError, h11.ProtocolError, ClientGone) as exc:
            pool.drop(upstream)
            reply.abort()
            await self.checks.close(handoff, asked, Tag.GATEWAY_ERROR, "error", str(exc) or exc.__class__.__name__,
                                    502, up_bytes, down)
            return False
        await self.checks.close(handoff, asked, Tag.GATEWAY_RESPONSE_DONE, "allow", "", response.status_code,
                                up_bytes, down)
        await reply.end(held)
        pool.give(upstream)
        return True


async def _final_response(upstream: Upstream, asked: Asked, *, switching: bool) -> Any:
    """The final response head (interim 1xx answers other than an allowed switch are not passed on)."""
    while True:
        event = await upstream.next_event()
        if isinstance(event, h11.Response):
            return event
        if isinstance(event, h11.InformationalResponse):
            if event.status_code == 101 and switching and asked.websocket:
                return event
            continue
        raise UpstreamFailed(f"{asked.host} closed the connection without answering")


def cleaned(headers: Any) -> list[tuple[bytes, bytes]]:
    """Headers (h11's, lower-case names) without the hop-by-hop ones, including those Connection names."""
    named = {token.strip().lower() for k, v in headers if k == b"connection" for token in v.split(b",")}
    return [(k, v) for k, v in headers if k not in HOP and k not in named]
