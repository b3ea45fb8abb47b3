"""A gateway that cannot hear the control bus (Redis gone) fails closed and recovers by itself: open tunnels are
cut, new requests refused with a page and a record, one log line; when Redis is back traffic flows again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Origin, platform_settings
from tests.helpers import CELL, Platform, connect_tunnel, curl, eventually_records, free_port, start_redis


@pytest.fixture
async def redis_port() -> AsyncIterator[int]:
    port = free_port()
    server = await start_redis(port)
    yield port
    if server.returncode is None:
        server.kill()
        await server.wait()


async def until(condition, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def open_tunnel(platform: Platform) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await connect_tunnel(platform)


async def test_losing_redis_cuts_tunnels_refuses_traffic_and_recovers(tmp_path: Path, origin: Origin,
                                                                      redis_port: int,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin).replace(redis__url=f"redis://127.0.0.1:{redis_port}/0")
    async with running(settings) as up:
        platform = Platform(up, origin, settings)
        bus = up.kernel.bus
        await until(lambda: bus.healthy, 5)
        async with platform.client(CELL) as browser:
            await platform.login(browser)
        await asyncio.sleep(0.2)  # the login's event goes round through Redis
        assert (await curl(platform, "http://allowed.test/before")).status == 200
        reader, writer = await open_tunnel(platform)

        caplog.clear()
        with caplog.at_level(logging.ERROR):
            await start_redis_killer(redis_port)
            lost_after = await until(lambda: not bus.healthy, 5)
            assert lost_after < 3
            assert await asyncio.wait_for(reader.read(), 3) == b""  # the open tunnel was cut
            refused = await curl(platform, "http://allowed.test/during")
            assert refused.status == 403 and "code: control-lost" in refused.body
            assert (await curl(platform, "http://allowed.test/during-again")).status == 403
        writer.close()
        assert not origin.saw("GET", "allowed.test", "/during")
        bus_errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "gatehouse.bus" in r.name]
        assert len(bus_errors) == 1, [r.getMessage() for r in bus_errors]  # once, not per request

        server = await start_redis(redis_port)
        try:
            await until(lambda: bus.healthy, 10)
            for _ in range(40):  # the identity cache was dropped; the session in the database still holds
                if (await curl(platform, "http://allowed.test/after")).status == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("traffic did not flow again after Redis came back")
            assert origin.saw("GET", "allowed.test", "/after")
            lost = await eventually_records(platform, tag="gateway:control:lost")
            assert len(lost) == 1 and "1 connections closed" in lost[0].reason
            assert len(await eventually_records(platform, tag="gateway:control:restored")) == 1
            denied = [r for r in platform.records(tag="gateway:request:denied") if "/during" in r.path]
            assert len(denied) == 2 and all(r.reason.startswith("control-lost: ") for r in denied)
        finally:
            server.kill()
            await server.wait()


async def start_redis_killer(port: int) -> None:
    """Stop the private Redis the way an outage does: the process is gone, its port refuses."""
    proc = await asyncio.create_subprocess_exec("redis-cli", "-p", str(port), "shutdown", "nosave",
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await proc.wait()
