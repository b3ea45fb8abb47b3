"""Nothing lost: a gateway killed with SIGKILL mid-traffic has a record of every request the origin received;
with the database gone, traffic goes on while records wait in segment files, up to a bound, then the gateway
refuses; when the database returns every record arrives exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from sqlalchemy import func, make_url, select

from gatehouse.audit import Tag
from gatehouse.audit.segments import read_segment, segment_files
from gatehouse.audit.signing import last_checkpoint_seq
from gatehouse.cli.serve import running
from gatehouse.db.models import AuditRecord
from gatehouse.kernel import Kernel
from gatehouse.settings import load_settings
from tests.conftest import Origin, platform_settings
from tests.helpers import CELL, Platform
from tests.test_commands_live import login, started, stop

pytestmark = [pytest.mark.usefixtures("curl_bin"), pytest.mark.filterwarnings("ignore::ResourceWarning")]


def cli(data_dir: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "gatehouse.cli", *args, "--data-dir", data_dir], input=stdin,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def drive(proxy: str, worker: int, sent: list[str], stop_at: asyncio.Event) -> None:
    """Plain-HTTP requests one after another on a kept-alive connection until the gateway goes away."""
    async with aiohttp.ClientSession() as client:
        n = 0
        while not stop_at.is_set():
            path = f"/crash/{worker}-{n}"
            sent.append(path)
            try:
                async with client.get(f"http://allowed.test{path}", proxy=f"http://{proxy}",
                                      timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                return
            n += 1


async def test_sigkill_mid_traffic_loses_no_record_of_a_forwarded_request(tmp_path: Path, origin: Origin) -> None:
    data_dir = str(tmp_path / "data")
    cli(data_dir, "init")
    cli(data_dir, "terminal", "add", "--name", "cell-1", "--address", "127.0.0.1", "--kind", "cell")
    cli(data_dir, "inmate", "add", "--number", "A7", "--name", "Jo Smets", "--pin-stdin", stdin="8642\n")
    (Path(data_dir) / "policies" / "site.yaml").write_text("rules:\n  - id: site\n    allow: [allowed.test]\n")
    args = ("run", "--data-dir", data_dir, "--resolve", f"allowed.test:80=127.0.0.1:{origin.http_port}")
    sent: list[str] = []
    async with started(*args) as (proc, portal, proxy, _):
        await login(portal, "A7", "8642")
        halt = asyncio.Event()
        workers = [asyncio.create_task(drive(proxy, w, sent, halt)) for w in range(8)]
        async with asyncio.timeout(60):
            while sum(1 for _, _, p in origin.seen if p.startswith("/crash/")) < 300:
                assert not all(w.done() for w in workers), f"every client stopped; the origin saw {origin.seen[-3:]}"
                await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-traffic: requests are in flight on eight connections
        await proc.wait()
        halt.set()
        await asyncio.gather(*workers)
    reached = {p for _, host, p in origin.seen if p.startswith("/crash/")}
    assert len(reached) >= 300

    settings = load_settings(Path(data_dir))
    folder = settings.audit_dir / settings.node
    head = max(record.seq for path in segment_files(folder) for record, _ in read_segment(path))
    assert last_checkpoint_seq(folder) < head, "the crash left records no checkpoint covers"
    segment = segment_files(folder)[-1]
    offset = segment.stat().st_size
    with segment.open("ab") as f:  # as if the kill had come in the middle of a write (it may have, too)
        f.write(b'{"body":{"at":"2026-12-02T10:00:00.000000","bytes_down":null,')
    async with started(*args) as (proc, _, _, lines):  # restart: the shipper copies what the segments hold
        assert last_checkpoint_seq(folder) >= head + 1, "the records the crash left and the cut are signed at once"
        output = "\n".join(lines) + await stop(proc, signal.SIGINT)
    assert f"bytes at offset {offset} (sha256" in output, "the cut is logged"
    kernel = Kernel.open(load_settings(Path(data_dir)))
    with kernel.factory() as session:
        recorded = set(session.scalars(select(AuditRecord.path).where(
            AuditRecord.tag == Tag.GATEWAY_REQUEST_ALLOWED, AuditRecord.path.like("/crash/%"))))
    kernel.engine.dispose()
    assert reached - recorded == set(), "requests reached the origin without a durable record"
    assert recorded <= set(sent)
    verified = cli(data_dir, "audit", "verify")
    assert "verify: the chain is intact (" in verified
    assert f"bytes at offset {offset} of {segment.name}, a write a crash interrupted" in verified


async def _status(client: aiohttp.ClientSession, proxy: str, path: str) -> tuple[int, str]:
    async with client.get(f"http://allowed.test{path}", proxy=f"http://{proxy}",
                          timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return resp.status, await resp.text()


def _allow_connections(url: str, allowed: bool) -> None:
    """Open or close the test's database to new connections, and drop the ones it has: an outage as the
    gateway sees it, with PostgreSQL itself still serving every other database."""
    base = make_url(url)
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{base.database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                         (base.database,))


@pytest.fixture
async def pg_platform(tmp_path: Path, origin: Origin, postgres_url: str) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path / "data", origin, postgres_url)
    settings = settings.replace(audit__max_backlog=30, proxy__identity_grace_seconds=120)
    try:
        async with running(settings) as up:
            yield Platform(up, origin, settings)
    finally:
        _allow_connections(postgres_url, True)


async def test_database_outage_traffic_waits_in_segments_then_fails_closed_then_all_arrive_once(
        pg_platform: Platform, postgres_url: str) -> None:
    platform = pg_platform
    kernel = platform.up.kernel
    assert kernel.audit is not None
    async with platform.client(CELL) as client:
        assert (await platform.login(client)).status == 200
        assert (await _status(client, platform.proxy, "/before"))[0] == 200
        _allow_connections(postgres_url, False)
        statuses: list[int] = []
        for n in range(60):
            status, text = await _status(client, platform.proxy, f"/during/{n}")
            statuses.append(status)
            if status == 503:
                assert "audit log" in text
                break
        served = statuses.count(200)
        assert served >= 5 and statuses[-1] == 503, statuses
        assert statuses == [200] * served + [503]
        assert kernel.audit.backlog >= 30

        _allow_connections(postgres_url, True)
        async with asyncio.timeout(20):
            while kernel.audit.backlog:
                await asyncio.sleep(0.1)
        assert (await _status(client, platform.proxy, "/after"))[0] == 200

    reached = {p for _, _, p in platform.origin.seen}
    assert {f"/during/{n}" for n in range(served)} <= reached
    await kernel.ship()
    with kernel.factory() as session:
        node = kernel.audit.node
        count, highest = session.execute(select(func.count(), func.max(AuditRecord.seq))
                                         .where(AuditRecord.node == node)).one()
        paths = list(session.scalars(select(AuditRecord.path).where(
            AuditRecord.node == node, AuditRecord.tag == Tag.GATEWAY_REQUEST_ALLOWED)))
    assert count == highest, "every record exactly once: no gap, no duplicate"
    assert sorted(p for p in paths if p.startswith("/during/")) == sorted(f"/during/{n}" for n in range(served))
