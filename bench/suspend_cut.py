"""Time from a suspension to the last open tunnel closed, across two gateway nodes sharing PostgreSQL and Redis.

Run: python bench/suspend_cut.py [--postgres URL] [--tunnels N] [--rounds R]

Two `gatehouse run --only gateway` processes start on one scratch PostgreSQL database and a redis-server of the
benchmark's own. Each round: an inmate logs in at a terminal, N tunnels open through each node (half passthrough,
half inspected, all waiting on the browser), then the suspension is committed and published exactly as
`gatehouse suspend` does it, and the clock runs until the last tunnel of each node has closed. The inmate is
resumed for the next round. Figures are per round and medians; the bus-only path (Redis up) is measured, and a
round with the bus silent shows the half-second database poll that catches up without it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from gatehouse.bus_redis import RedisBus
from gatehouse.cli.ops import initialise
from gatehouse.control import resume, suspend
from gatehouse.db.engine import utcnow
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.kernel import Kernel
from gatehouse.sessions import login
from gatehouse.terminals import add_terminal

TERMINAL, INMATE, PIN = "127.0.0.1", "A100", "2468"
POLICY = """\
rules:
  - id: inspected
    allow: [allowed.test]
  - id: direct
    mode: passthrough
    allow: [passthrough.test]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_node(data_dir: Path, name: str) -> tuple[asyncio.subprocess.Process, tuple[str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")} | {
        "GATEHOUSE_AUDIT_NODE": name, "GATEHOUSE_PORTAL_PUBLIC_URL": "http://127.0.0.1:8080"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatehouse.cli", "run", "--only", "gateway", "--data-dir", str(data_dir),
        "--proxy-port", str(free_port()), "--resolve", f"passthrough.test:443=127.0.0.1:{free_port()}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    while line := (await asyncio.wait_for(proc.stdout.readline(), 60)).decode():
        if line.startswith("gateway:"):
            host, port = line.split()[1].rsplit(":", 1)
            asyncio.create_task(drain(proc.stdout))
            return proc, (host, int(port))
    raise SystemExit(f"gateway node {name} did not start")


async def drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def open_tunnel(proxy: tuple[str, int], host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An open tunnel; both ends are kept (a writer nobody holds closes its connection when it is collected)."""
    reader, writer = await asyncio.open_connection(*proxy, local_addr=(TERMINAL, 0))
    writer.write(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise SystemExit(f"tunnel refused: {head[:80]!r}")
    return reader, writer


async def closed_at(reader: asyncio.StreamReader) -> float:
    try:
        await asyncio.wait_for(reader.read(), 10)
    except (ConnectionError, TimeoutError):
        pass
    return time.perf_counter()


async def one_round(kernel: Kernel, bus: RedisBus | None, nodes: list[tuple[str, int]], tunnels: int) -> list[float]:
    """Milliseconds from the suspension to the last tunnel closed, per node."""
    await asyncio.to_thread(login, kernel.factory, kernel.session_policy, address=TERMINAL, number=INMATE, pin=PIN,
                            now=utcnow())
    await asyncio.sleep(1.2)  # past the nodes' one-second identity cache
    readers = [await asyncio.gather(*(open_tunnel(node, "passthrough.test" if i % 2 else "allowed.test")
                                      for i in range(tunnels))) for node in nodes]
    waits = [[asyncio.create_task(closed_at(r)) for r, _w in node_tunnels] for node_tunnels in readers]
    # A random moment: the nodes read control events on a half-second beat, and rounds of equal length would
    # otherwise land on the same phase of it every time.
    await asyncio.sleep(random.uniform(0, 0.5))
    started = time.perf_counter()
    with kernel.factory.begin() as db:
        outcome = suspend(db, INMATE, "benchmark", "bench", utcnow())
    if bus is not None:
        for event in outcome.events:
            await bus.publish(event)
    last = [max(await asyncio.gather(*node_waits)) for node_waits in waits]
    for node_tunnels in readers:
        for _r, writer in node_tunnels:
            writer.close()
    with kernel.factory.begin() as db:
        resume(db, INMATE, "bench", utcnow())
    return [(t - started) * 1000 for t in last]


async def main(args: argparse.Namespace) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    redis_port = free_port()
    redis = subprocess.Popen([binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    base = make_url(args.postgres)
    name = f"gatehouse_bench_{secrets.token_hex(4)}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    procs: list[asyncio.subprocess.Process] = []
    folder = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    try:
        await asyncio.sleep(0.3)
        settings = initialise(folder / "data", {
            "database.url": base.set(database=name).render_as_string(hide_password=False),
            "redis.url": f"redis://127.0.0.1:{redis_port}/0"}, quiet=True)
        for path in settings.policy_dir.iterdir():
            path.unlink()
        (settings.policy_dir / "bench.yaml").write_text(POLICY, encoding="utf-8")
        kernel = Kernel.open(settings)
        with kernel.factory.begin() as db:
            facility = ensure_facility(db, settings)
            add_terminal(db, facility, name="cell-1", address=TERMINAL, kind="cell", unit="A")
            add_inmate(db, facility, number=INMATE, name="Bench Mark", language="en", pin=PIN)
        started = await asyncio.gather(start_node(settings.data_dir, "gwa"), start_node(settings.data_dir, "gwb"))
        procs = [p for p, _ in started]
        nodes = [address for _, address in started]
        bus = RedisBus.from_url(settings["redis.url"])
        await bus.start()
        await asyncio.sleep(1.0)
        print(f"two gateway nodes, {args.tunnels} open tunnels on each (half passthrough, half inspected), "
              f"{os.cpu_count()} cores")
        rounds: list[list[float]] = []
        for n in range(args.rounds):
            figures = await one_round(kernel, bus, nodes, args.tunnels)
            rounds.append(figures)
            print(f"  round {n + 1}: node A {figures[0]:7.1f} ms   node B {figures[1]:7.1f} ms")
        overall = [max(r) for r in rounds]
        print(f"suspend -> last tunnel closed on both nodes, over Redis: median {statistics.median(overall):.1f} ms, "
              f"worst {max(overall):.1f} ms ({args.rounds} rounds)")
        silent = [max(await one_round(kernel, None, nodes, args.tunnels)) for _ in range(args.rounds)]
        print(f"the same with nothing published (the nodes' half-second read of control events): median "
              f"{statistics.median(silent):.1f} ms, worst {max(silent):.1f} ms ({args.rounds} rounds)")
        print(f"over Redis / database poll: {statistics.median(overall) / statistics.median(silent):.2f}")
        await bus.close()
        kernel.engine.dispose()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()
        redis.kill()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL",
                                                             "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--tunnels", type=int, default=100, help="open tunnels per node (default 100)")
    parser.add_argument("--rounds", type=int, default=7)
    asyncio.run(main(parser.parse_args()))
