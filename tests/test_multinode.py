"""Two gateway processes and one portal process on one PostgreSQL and one Redis, as a facility runs them.

Minutes spent through one node count on the other; a suspension cuts open tunnels on both nodes within a second;
a lockdown refuses new requests on both; Redis stopped refuses traffic on both, and they recover by themselves.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gatehouse.ca import ca_cert_file
from gatehouse.cli.ops import initialise
from gatehouse.quota import RedisQuotaStore, local_minute
from gatehouse.settings import Settings
from tests.conftest import HOSTS, POLICY, Origin
from tests.helpers import (
    CELL,
    CLASSROOM,
    INMATE,
    OTHER_INMATE,
    OTHER_PIN,
    PIN,
    connect_tunnel,
    csrf_from,
    curl,
    free_port,
    get_over,
    populate,
    start_redis,
    tls_tunnel,
)
from tests.test_cli import gatehouse

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
QUOTAS = f"""
quotas:
  default: {{general: 1}}
  inmates:
    {OTHER_INMATE}: {{general: 600}}
"""


@dataclass
class Node:
    """How the tests' helpers reach one gateway process."""

    proxy: str
    ca_file: str
    origin: Origin


@dataclass
class Facility:
    settings: Settings
    portal: str
    a: Node
    b: Node
    redis: asyncio.subprocess.Process
    processes: list[asyncio.subprocess.Process]


async def _start(settings: Settings, node: str, *args: str, portal: str) -> tuple[asyncio.subprocess.Process, str]:
    """`gatehouse run` in its own process; returns it and the address it prints when it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")} | {
        "GATEHOUSE_AUDIT_NODE": node, "GATEHOUSE_PORTAL_PUBLIC_URL": portal}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatehouse.cli", "run", "--data-dir", str(settings.data_dir), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    seen = []
    while line := (await asyncio.wait_for(proc.stdout.readline(), 60)).decode():
        seen.append(line)
        if line.startswith(("gateway:", "portal:")):
            asyncio.create_task(_drain(proc.stdout))
            return proc, line.split()[1].removeprefix("http://").rstrip("/")
    raise AssertionError(f"{node} did not start:\n{''.join(seen)}")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@pytest.fixture
async def facility(tmp_path: Path, origin: Origin, postgres_url: str) -> AsyncIterator[Facility]:
    redis_port = free_port()
    facility_redis = redis = await start_redis(redis_port)
    settings = initialise(tmp_path / "data", {
        "database.url": postgres_url, "redis.url": f"redis://127.0.0.1:{redis_port}/0",
        "proxy.upstream_ca_file": str(origin.ca_file)}, quiet=True)
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    (settings.policy_dir / "test.yaml").write_text(POLICY + QUOTAS, encoding="utf-8")
    populate(settings)
    portal_port = free_port()
    resolve = [arg for h in HOSTS for arg in ("--resolve", f"{h}:80=127.0.0.1:{origin.http_port}",
                                              "--resolve", f"{h}:443=127.0.0.1:{origin.https_port}")]
    public = f"http://127.0.0.1:{portal_port}"
    started = await asyncio.gather(
        _start(settings, "portal1", "--only", "portal", "--portal-port", str(portal_port), portal=public),
        _start(settings, "gwa", "--only", "gateway", "--proxy-port", str(free_port()), *resolve, portal=public),
        _start(settings, "gwb", "--only", "gateway", "--proxy-port", str(free_port()), *resolve, portal=public))
    (portal, _), (node_a, proxy_a), (node_b, proxy_b) = started
    ca = str(ca_cert_file(settings.ca_dir))
    yield Facility(settings, public, Node(proxy_a, ca, origin), Node(proxy_b, ca, origin), redis,
                   [portal, node_a, node_b])
    for proc in (portal, node_a, node_b):
        if proc.returncode is None:
            proc.terminate()
    for proc in (portal, node_a, node_b):
        await asyncio.wait_for(proc.wait(), 20)
    if facility_redis.returncode is None:
        facility_redis.kill()
        await facility_redis.wait()


async def login_at(portal: str, address: str, number: str, pin: str) -> aiohttp.ClientSession:
    """A browser at terminal `address` logged in through the portal's page."""
    browser = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)),
                                    cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with browser.get(f"{portal}/login") as page:
        token = csrf_from(await page.text())
    async with browser.post(f"{portal}/login", data={
            "inmate_number": number, "pin": pin, "csrf_token": token}) as resp:
        assert resp.status == 200, await resp.text()
    return browser


async def _eof(reader: asyncio.StreamReader, timeout: float) -> float:
    """When the gateway closed the tunnel (monotonic clock)."""
    try:
        assert await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionError:
        pass
    return time.monotonic()


async def _until_status(node: Node, url: str, address: str, status: int, timeout: float) -> str:
    started = time.monotonic()
    while True:
        result = await curl(node, url, interface=address)  # type: ignore[arg-type]
        if result.status == status:
            return result.body
        assert time.monotonic() - started < timeout, f"{url} via {node.proxy}: {result.status} {result.body[:200]}"
        await asyncio.sleep(0.2)


async def test_a_suspension_cuts_tunnels_on_both_nodes_and_a_lockdown_refuses_on_both(facility: Facility) -> None:
    browser = await login_at(facility.portal, CLASSROOM, OTHER_INMATE, OTHER_PIN)
    try:
        for node in (facility.a, facility.b):
            await _until_status(node, "http://allowed.test/ready", CLASSROOM, 200, 10)
        read_a, write_a = await connect_tunnel(facility.a, address=CLASSROOM)
        read_b, write_b = await connect_tunnel(facility.b, address=CLASSROOM)
        waiting = [asyncio.create_task(_eof(read_a, 30)), asyncio.create_task(_eof(read_b, 30))]
        result = await asyncio.to_thread(gatehouse, facility.settings.data_dir, "suspend", "--inmate", OTHER_INMATE,
                                         "--reason", "contraband found", "--by", "sgt.janssens")
        issued = time.monotonic()
        assert result.returncode == 0 and "sessions ended: 1" in result.stdout, result.stderr
        closed = await asyncio.gather(*waiting)
        assert max(closed) - issued < 1.0, f"last tunnel closed {max(closed) - issued:.2f} s after the suspension"
        write_a.close()
        write_b.close()
        for node in (facility.a, facility.b):
            refused = await curl(node, "http://allowed.test/suspended", interface=CLASSROOM)  # type: ignore[arg-type]
            assert refused.status == 403
        result = await asyncio.to_thread(gatehouse, facility.settings.data_dir, "resume", "--inmate", OTHER_INMATE)
        assert result.returncode == 0, result.stderr
    finally:
        await browser.close()

    browser = await login_at(facility.portal, CLASSROOM, OTHER_INMATE, OTHER_PIN)
    try:
        name = facility.settings["facility.name"]
        result = await asyncio.to_thread(gatehouse, facility.settings.data_dir, "lockdown", "--facility", name,
                                         "--unit", "school", "--reason", "alarm in the school wing")
        assert result.returncode == 0, result.stderr
        for node in (facility.a, facility.b):
            body = await _until_status(node, "http://allowed.test/locked", CLASSROOM, 403, 1.0)
            assert "code: lockdown" in body  # the lockdown ended her session: the facility's language
        result = await asyncio.to_thread(gatehouse, facility.settings.data_dir, "lockdown", "lift", "--facility",
                                         name, "--unit", "school")
        assert result.returncode == 0, result.stderr
    finally:
        await browser.close()
    browser = await login_at(facility.portal, CLASSROOM, OTHER_INMATE, OTHER_PIN)
    await browser.close()
    for node in (facility.a, facility.b):
        await _until_status(node, "http://allowed.test/lifted", CLASSROOM, 200, 2.0)


async def test_minutes_spent_through_one_node_count_on_the_other(facility: Facility) -> None:
    second = datetime.now(UTC).second
    if second > 40:  # the first steps must fall in one minute
        await asyncio.sleep(61 - second)
    browser = await login_at(facility.portal, CELL, INMATE, PIN)
    try:
        await _until_status(facility.a, "https://allowed.test/through-a", CELL, 200, 10)
        reader, writer = await tls_tunnel(facility.a, "passthrough.test", CELL)
        assert await get_over(reader, writer, "passthrough.test", "/first") != b""
        idle, idle_writer = await tls_tunnel(facility.a, "passthrough.test", CELL)
        minute = local_minute(datetime.now(UTC), ZoneInfo(facility.settings["facility.timezone"]))
        store = RedisQuotaStore.from_url(facility.settings["redis.url"])
        try:
            assert await store.usage(INMATE, "general", minute.day) == 1
        finally:
            await store.close()
        async with browser.get(f"{facility.portal}/home") as page:
            home = await page.text()
        assert 'data-left="0">0 of 1 minute</td>' in home, "the portal process reads the minute node A spent"
        # The next minute: node B has spent nothing, yet it refuses, because node A spent the day's one minute.
        await asyncio.sleep(61 - datetime.now(UTC).second + 0.5)
        refused = await curl(facility.b, "https://allowed.test/through-b", interface=CELL)  # type: ignore[arg-type]
        assert refused.status == 403 and "Your time for today is used up" in refused.body
        # The tunnel held open on node A closes once bytes flow in a minute the budget cannot pay for.
        await get_over(reader, writer, "passthrough.test", "/next-minute")
        await _eof(reader, 3)
        writer.close()
        await asyncio.sleep(1.5)
        assert not idle.at_eof(), "the idle tunnel across the same minute spent nothing and stays open"
        idle_writer.close()
    finally:
        await browser.close()


async def test_redis_stopped_refuses_traffic_on_both_nodes_and_they_recover(facility: Facility) -> None:
    browser = await login_at(facility.portal, CLASSROOM, OTHER_INMATE, OTHER_PIN)
    try:
        for node in (facility.a, facility.b):
            await _until_status(node, "http://allowed.test/before", CLASSROOM, 200, 10)
        facility.redis.kill()
        await facility.redis.wait()
        for node in (facility.a, facility.b):
            body = await _until_status(node, "http://allowed.test/during", CLASSROOM, 403, 10)
            assert "code: control-lost" in body
        assert all(proc.returncode is None for proc in facility.processes), "no process fell over"
        restarted = await start_redis(int(facility.settings["redis.url"].rsplit(":", 1)[1].split("/")[0]))
        try:
            for node in (facility.a, facility.b):
                await _until_status(node, "http://allowed.test/after", CLASSROOM, 200, 15)
        finally:
            restarted.kill()
            await restarted.wait()
    finally:
        await browser.close()
