"""Passthrough tunnels relayed at the transport level: flow control reaches the client, a server that speaks
first is relayed, and a client that leaves while the server is reached does not leave a tunnel behind."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Origin, platform_settings
from tests.helpers import CELL, Platform, connect_tunnel

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


def client_hello(host: str) -> bytes:
    tls = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@pytest.fixture
async def upstream() -> AsyncIterator[dict[str, Any]]:
    """A bare TCP server standing in for passthrough.test; each test says how it behaves."""
    state: dict[str, Any] = {"handler": None}
    serving: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        serving.add(task)
        try:
            await state["handler"](reader, writer)
        finally:
            writer.transport.abort()
            serving.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state["port"] = server.sockets[0].getsockname()[1]
    yield state
    server.close()
    for task in list(serving):
        task.cancel()
    await asyncio.gather(*serving, return_exceptions=True)
    await server.wait_closed()


@pytest.fixture
async def relaying(tmp_path: Path, origin: Origin, upstream: dict[str, Any]) -> AsyncIterator[Platform]:
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin)
    resolve = [str(r) for r in settings["proxy.resolve"] if not str(r).startswith("passthrough.test:443")]
    settings = settings.replace(proxy__resolve=[*resolve, f"passthrough.test:443=127.0.0.1:{upstream['port']}"])
    async with running(settings) as up:
        platform = Platform(up, origin, settings)
        async with platform.client(CELL) as browser:
            await platform.login(browser)
        yield platform


async def test_an_upstream_that_does_not_read_holds_the_client_back(relaying: Platform,
                                                                    upstream: dict[str, Any]) -> None:
    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader._transport.pause_reading()  # type: ignore[attr-defined]
        await asyncio.sleep(30)

    upstream["handler"] = never_reads
    reader, writer = await connect_tunnel(relaying)
    writer.write(client_hello("passthrough.test"))
    chunk, sent = b"x" * (1 << 20), 0
    try:
        async with asyncio.timeout(3):
            while sent < 256 << 20:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
    except TimeoutError:
        pass
    writer.transport.abort()
    # Kernel buffers on three sockets hold some megabytes; without flow control the gateway takes it all.
    assert sent < 64 << 20, f"{sent >> 20} MiB were taken by a tunnel whose server reads nothing"


async def test_a_server_that_speaks_first_is_relayed(relaying: Platform, upstream: dict[str, Any]) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello from the server\n")
        await writer.drain()
        writer.write(b"and you said: " + await reader.read(5))
        await writer.drain()
        writer.close()

    upstream["handler"] = banner
    reader, writer = await connect_tunnel(relaying)
    hello = client_hello("passthrough.test")
    writer.write(hello)
    assert await asyncio.wait_for(reader.readuntil(b"\n"), 5) == b"hello from the server\n"
    assert await asyncio.wait_for(reader.read(), 5) == b"and you said: " + hello[:5]
    writer.close()


async def test_a_client_that_leaves_while_the_server_is_reached_leaves_nothing_open(
        relaying: Platform, upstream: dict[str, Any]) -> None:
    closed = asyncio.Event()

    async def slow_then_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the gateway closes its side
        closed.set()

    upstream["handler"] = slow_then_wait
    reader, writer = await connect_tunnel(relaying)
    writer.write(client_hello("passthrough.test"))
    await writer.drain()
    writer.transport.abort()
    await asyncio.wait_for(closed.wait(), 5)
    for _ in range(50):
        if relaying.up.gateway is not None and not relaying.up.gateway.front.open_connections(CELL):
            break
        await asyncio.sleep(0.05)
    assert relaying.up.gateway is not None and relaying.up.gateway.front.open_connections(CELL) == 0
