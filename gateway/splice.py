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
