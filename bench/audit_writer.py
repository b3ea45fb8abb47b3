"""Audit log throughput and the latency it adds to a request, on SQLite and on PostgreSQL.

Run: python bench/audit_writer.py [--postgres URL] [--records N] [--rounds R]
(the PostgreSQL URL may also come from GATEHOUSE_TEST_POSTGRES_URL; a scratch database is made and dropped.)

For each database, alternating round by round so the machine's noise falls on both alike:
- durable: records/s that 200 concurrent writers get fsynced into the node's segment file (group commit), and
  p50/p95/p99 of the wait each request spends on its record (the latency the audit log adds);
- idle: the same wait for one request at a time (one fsync each, no batching to share it);
- 1k/s: the same wait, p95 and p99, for requests arriving steadily at 1,000 per second (a busy evening);
- shipped: records/s from the first write until the last record is in the database (writer and shipper
  together, as `gatehouse run` does it);
- verify: records/s `gatehouse audit verify` checks (database and segment files).
Figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, make_url, select

from gatehouse.audit import AuditEvent, Tag
from gatehouse.audit.signing import Keyring
from gatehouse.audit.verify import verify_database
from gatehouse.cli.ops import initialise
from gatehouse.db.models import AuditRecord
from gatehouse.kernel import Kernel

CONCURRENCY = 200
PACED_RATE = 1_000


def event(n: int) -> AuditEvent:
    return AuditEvent(Tag.GATEWAY_REQUEST_ALLOWED, "gateway", actor="A1001", terminal="cell-12",
                      client_addr="10.20.0.12", method="GET", host="www.khanacademy.org",
                      path=f"/math/algebra/lesson/{n}", decision="allow", reason="rule khan-academy")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_round(data_dir: Path, url: str, records: int) -> dict[str, float]:
    settings = initialise(data_dir, {"database.url": url}, quiet=True).replace(
        audit__node=f"bench-{secrets.token_hex(3)}")
    kernel = Kernel.open(settings)
    await kernel.start()
    writer = kernel.audit
    assert writer is not None
    waits: list[float] = []
    counter = iter(range(records))

    async def client() -> None:
        for n in counter:
            started = time.perf_counter()
            await writer.write(event(n))
            waits.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    durable = time.perf_counter() - began
    while writer.backlog:
        await asyncio.sleep(0.005)
    shipped = time.perf_counter() - began

    idle: list[float] = []
    for n in range(200):
        started = time.perf_counter()
        await writer.write(event(n))
        idle.append(time.perf_counter() - started)

    paced: list[float] = []

    async def one(n: int) -> None:
        started = time.perf_counter()
        await writer.write(event(n))
        paced.append(time.perf_counter() - started)

    tasks = []
    for n in range(PACED_RATE * 2):  # requests arriving at a steady PACED_RATE per second for 2 s
        tasks.append(asyncio.create_task(one(n)))
        await asyncio.sleep(1 / PACED_RATE)
    await asyncio.gather(*tasks)
    await kernel.close()

    kernel = Kernel.open(settings)
    with kernel.factory() as session:
        count = session.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.node == writer.node))
        ring = Keyring([kernel.signer().public])
        started = time.perf_counter()
        report = verify_database(session, ring, audit_dir=settings.audit_dir)
        verified = time.perf_counter() - started
    kernel.engine.dispose()
    assert not report.findings, report.lines()
    expected = records + 200 + PACED_RATE * 2
    assert count == expected, f"{count} records in the database, expected {expected}"
    return {"durable/s": records / durable, "p50 ms": percentile(waits, 0.5) * 1e3,
            "p95 ms": percentile(waits, 0.95) * 1e3, "p99 ms": percentile(waits, 0.99) * 1e3,
            "idle p50 ms": statistics.median(idle) * 1e3, "idle p99 ms": percentile(idle, 0.99) * 1e3,
            "1k/s p95 ms": percentile(paced, 0.95) * 1e3, "1k/s p99 ms": percentile(paced, 0.99) * 1e3,
            "shipped/s": records / shipped, "verify/s": count / verified}


def scratch_postgres(base_url: str) -> tuple[str, str]:
    import psycopg

    base = make_url(base_url)
    name = f"gatehouse_bench_{secrets.token_hex(4)}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.set(database=name).render_as_string(hide_password=False), admin


def drop_postgres(url: str, admin: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", ""))
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        backends = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        admin = ""
        if args.postgres:
            backends["postgresql"], admin = scratch_postgres(args.postgres)
        try:
            results: dict[str, list[dict[str, float]]] = {name: [] for name in backends}
            for _ in range(args.rounds):
                for name, url in backends.items():
                    results[name].append(await one_round(Path(tmp) / name, url, args.records))
        finally:
            if admin:
                drop_postgres(backends["postgresql"], admin)
    print(f"audit writer: {args.records} records per round, {CONCURRENCY} concurrent writers, "
          f"{args.rounds} rounds, {os.cpu_count()} cores; medians")
    keys = list(next(iter(results.values()))[0])
    print(f"{'database':<11}" + "".join(f"{k:>12}" for k in keys))
    medians = {}
    for name, rounds in results.items():
        medians[name] = {k: statistics.median(r[k] for r in rounds) for k in keys}
        print(f"{name:<11}" + "".join(f"{medians[name][k]:>12,.1f}" for k in keys))
    if "postgresql" in medians:
        m = medians
        print(f"ratio postgresql/sqlite: durable {m['postgresql']['durable/s'] / m['sqlite']['durable/s']:.2f}, "
              f"shipped {m['postgresql']['shipped/s'] / m['sqlite']['shipped/s']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
