"""Copying bytes both ways between two connections, counted, until either side is done."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

CHUNK = 256 * 1024


@dataclass(slots=True)
class Meter:
    up: int = 0
    down: int = 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: Meter, upstream: bool) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            if upstream:
                meter.up += len(data)
            else:
                meter.down += len(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def splice(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                 up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, meter: Meter) -> None:
    """Run until both directions end or one fails; cancelling it closes both sides."""
    tasks = [asyncio.create_task(_pipe(client_reader, up_writer, meter, True)),
             asyncio.create_task(_pipe(up_reader, client_writer, meter, False))]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        await asyncio.gather(*pending)
    finally:
        for task in tasks:
            task.cancel()
        up_writer.close()
        client_writer.close()
