"""Copying bytes both ways between two connections, counted, until either side is done."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

CHUNK = 256 * 1024


@dataclass(slots=True)
class Meter:
    up: int = 0
    down: int = 0
    last: float = 0.0
    """When bytes last moved (monotonic clock): the minute they are charged to."""


HALF_CLOSE_GRACE_S = 1.0


class _Relay(asyncio.Protocol):
    """One side of a tunnel: what arrives is written to the other side, counted; a full buffer on one side
    pauses reading on the other (flow control without a task per direction)."""

    def __init__(self, meter: Meter, upstream: bool, done: asyncio.Future[None]) -> None:
        self.meter = meter
        self.upstream = upstream
        """True for the client's side: its bytes go up."""
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.peer: _Relay | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.peer.transport is not None
        self.peer.transport.write(data)
        if self.upstream:
            self.meter.up += len(data)
        else:
            self.meter.down += len(data)
        self.meter.last = time.monotonic()

    def eof_received(self) -> bool:
        peer = self.peer.transport if self.peer is not None else None
        if peer is not None and not peer.is_closing() and peer.can_write_eof():
            peer.write_eof()
        if self.upstream:  # the client is done: the server gets a short grace to finish its answer
            asyncio.get_running_loop().call_later(HALF_CLOSE_GRACE_S, self.close)
            return True
        self.close()  # the server is done: so is the tunnel
        return False

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        for side in (self, self.peer):
            if side is not None and side.transport is not None and not side.transport.is_closing():
                side.transport.close()
        if not self.done.done():
            self.done.set_result(None)


async def splice(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                 target: tuple[str, int], first: bytes, meter: Meter, *, timeout: float = 10.0) -> None:
    """Connect to `target`, send `first` (what the client sent already), then relay both ways at the transport
    level until either side is done; cancelling it closes both. Raises OSError or TimeoutError when the target
    cannot be reached.

    When the server side ends, the tunnel ends. When the client ends first, the server gets a short grace
    to finish its answer: many servers never close after a half-close, and an idle tunnel must not linger.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    client = _Relay(meter, True, done)
    server = _Relay(meter, False, done)
    client.peer, server.peer = server, client
    transport = cast(asyncio.Transport, client_writer.transport)
    client.transport = transport  # before connecting: a server that speaks first is relayed at once
    try:
        await asyncio.wait_for(loop.create_connection(lambda: server, *target), timeout)
        if done.done() or transport.is_closing() or client_reader.exception() is not None:
            return  # the client went (or was cut) while the server was being reached: its reader saw it
        # Bytes the client sent after `first` wait in its reader; they go first, then its transport feeds us.
        waiting: bytearray = client_reader._buffer  # type: ignore[attr-defined]  # no public way to take them
        pending = first + bytes(waiting)
        waiting.clear()
        ended = client_reader.at_eof()
        transport.set_protocol(client)
        if not ended:
            transport.resume_reading()  # before the write below, so a pause it causes holds
        assert server.transport is not None
        server.transport.write(pending)
        meter.up += len(pending)
        if ended:
            client.eof_received()
        await done
    finally:
        client.close()


class Replayed:
    """The client's side of a connection handed to the inspector in process: `first` (the head the front read,
    rewritten) comes out before anything more from the connection, and every byte read is counted."""

    def __init__(self, reader: asyncio.StreamReader, first: bytes, meter: Meter, *, uncounted: int = 0) -> None:
        self._reader = reader
        self._first = first
        self._meter = meter
        self._uncounted = uncounted
        """Leading bytes of `first` the client did not send as such (the rewritten head): not counted."""

    async def read(self, n: int = -1) -> bytes:
        if self._first:
            cut = len(self._first) if n < 0 else n
            data, self._first = self._first[:cut], self._first[cut:]
        else:
            data = await self._reader.read(n)
        skipped = min(self._uncounted, len(data))
        self._uncounted -= skipped
        self._meter.up += len(data) - skipped
        self._meter.last = time.monotonic()
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._reader, name)


class Metered:
    """The writing side of the same connection: bytes written to the client are counted."""

    def __init__(self, writer: asyncio.StreamWriter, meter: Meter) -> None:
        self._writer = writer
        self._meter = meter

    def write(self, data: bytes) -> None:
        self._meter.down += len(data)
        self._meter.last = time.monotonic()
        self._writer.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._writer, name)
