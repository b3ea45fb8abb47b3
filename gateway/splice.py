"""Copying bytes both ways between two connections, counted, until either side is done."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

CHUNK = 256 * 1024


@dataclass(slots=True)
class Meter:
    up: int = 0
    down: int = 0
    last: float = 0.0
    """When bytes last moved (monotonic clock): the minute they are charged to."""


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: Meter, upstream: bool) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            meter.last = time.monotonic()
            if upstream:
                meter.up += len(data)
            else:
                meter.down += len(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


HALF_CLOSE_GRACE_S = 1.0


async def splice(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                 up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, meter: Meter) -> None:
    """Run until the tunnel is over; cancelling it closes both sides.

    When the server side ends, the tunnel ends. When the client ends first, the server gets a short grace
    to finish its answer: many servers never close after a half-close, and an idle tunnel must not linger.
    """
    upstream = asyncio.create_task(_pipe(client_reader, up_writer, meter, True))
    downstream = asyncio.create_task(_pipe(up_reader, client_writer, meter, False))
    try:
        await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
        if not downstream.done():
            await asyncio.wait([downstream], timeout=HALF_CLOSE_GRACE_S)
    finally:
        tasks = [upstream, downstream]
        for task in tasks:
            task.cancel()
        up_writer.close()
        client_writer.close()


class Replayed:
    """The client's side of a connection handed to the inspector in process: `first` (the head the front read,
    rewritten) comes out before anything more from the connection, and every byte read is counted."""

    def __init__(self, reader: asyncio.StreamReader, first: bytes, meter: Meter) -> None:
        self._reader = reader
        self._first = first
        self._meter = meter

    async def read(self, n: int = -1) -> bytes:
        if self._first:
            cut = len(self._first) if n < 0 else n
            data, self._first = self._first[:cut], self._first[cut:]
        else:
            data = await self._reader.read(n)
        self._meter.up += len(data)
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
