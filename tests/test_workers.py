"""`gatehouse run --workers 2`: two gateway processes on one port, connections spread over both, each with its
own audit chain; the workers stop with the process that started them, however it ends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gatehouse.ca import ca_cert_file
from gatehouse.cli.ops import initialise
from gatehouse.db.models import AuditRecord
from gatehouse.kernel import Kernel
from tests.conftest import HOSTS, POLICY, Origin
from tests.helpers import CELL, INMATE, PIN, curl, free_port, populate, start_redis
from tests.test_cli import gatehouse
from tests.test_multinode import Node, login_at

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


async def _gone(pid: int, timeout: float) -> bool:
    for _ in range(int(timeout / 0.1)):
        if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL])
async def test_two_workers_share_the_port_and_stop_with_the_first(tmp_path: Path, origin: Origin, postgres_url: str,
                                                                   ending: signal.Signals) -> None:
    redis_port = free_port()
    redis = await start_redis(redis_port)
    settings = initialise(tmp_path / "data", {
        "database.url": postgres_url, "redis.url": f"redis://127.0.0.1:{redis_port}/0",
        "proxy.upstream_ca_file": str(origin.ca_file)}, quiet=True)
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    (settings.policy_dir / "test.yaml").write_text(POLICY, encoding="utf-8")
    populate(settings)
    portal_port, proxy_port = free_port(), free_port()
    resolve = [a for h in HOSTS for a in ("--resolve", f"{h}:80=127.0.0.1:{origin.http_port}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")} | {"GATEHOUSE_AUDIT_NODE": "gw"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatehouse.cli", "run", "--data-dir", str(settings.data_dir), "--workers", "2",
        "--portal-port", str(portal_port), "--proxy-port", str(proxy_port), *resolve,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while "processes share port" not in (line := (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()):
            assert line, "".join(lines)
            lines.append(line)
        workers = await _children(proc.pid)
        assert len(workers) == 1, workers
        browser = await login_at(f"http://127.0.0.1:{portal_port}", CELL, INMATE, PIN)
        await browser.close()
        node = Node(f"127.0.0.1:{proxy_port}", str(ca_cert_file(settings.ca_dir)), origin)
        statuses = await asyncio.gather(*(curl(node, f"http://allowed.test/n{i}")  # type: ignore[arg-type]
                                          for i in range(40)))
        assert [s.status for s in statuses] == [200] * 40
        kernel = Kernel.open(settings)
        try:
            for _ in range(100):
                await kernel.ship()
                with kernel.factory() as db:
                    nodes = dict(db.execute(select(AuditRecord.node, func.count()).where(
                        AuditRecord.tag == "gateway:request:allowed").group_by(AuditRecord.node)).all())
                if sum(nodes.values()) >= 40:
                    break
                await asyncio.sleep(0.1)
        finally:
            kernel.engine.dispose()
        assert set(nodes) == {"gw", "gw-w1"}, f"both processes served: {nodes}"
        assert sum(nodes.values()) == 40
        second = await asyncio.to_thread(gatehouse, settings.data_dir, "run", "--workers", "2", "--proxy-port",
                                         str(proxy_port), "--portal-port", str(free_port()))
        assert second.returncode != 0 and f"the proxy port 127.0.0.1:{proxy_port} is in use" in second.stderr
        proc.send_signal(ending)
        assert await _gone(workers[0], 15), "the worker outlived the process that started it"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        redis.kill()
        await redis.wait()


def test_workers_need_redis(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert gatehouse(data, "init").returncode == 0
    result = gatehouse(data, "run", "--workers", "2")
    assert result.returncode != 0 and "--workers 2: worker processes share minutes and the control bus" in result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--only", "gateway"], "--only gateway: set portal.public_url"),
    (["--workers", "0"], "--workers 0: give 1 or more gateway processes"),
    (["--only", "portal", "--workers", "2"], "--workers counts gateway processes; --only portal runs none"),
])
def test_run_options_that_cannot_work_are_refused_with_what_to_do(tmp_path: Path, args: list[str], says: str) -> None:
    data = tmp_path / "data"
    assert gatehouse(data, "init").returncode == 0
    result = gatehouse(data, "run", *args, env={"GATEHOUSE_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode != 0 and says in result.stderr, result.stderr
