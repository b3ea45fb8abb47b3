"""Cost of the quota check-and-mark every metered request makes: in process, and in Redis from one client and
from 50 concurrent tasks, with the Redis round trips each check takes; and what the gateway pays per request,
where a node asks the store once per inmate, category and minute and answers the rest of that minute itself.

Run: python bench/quota_check.py [--redis URL] [--checks N] [--rounds R]
Without --redis it starts its own redis-server on a free port (nothing else talks to it, so the command counts
are ours alone); with --redis it uses that server under a scratch key prefix and removes the keys afterwards.

The workload: 200 inmates active, 3 categories (general with 60 minutes, jobs with 120, learning unlimited),
1,000 requests per simulated minute over 100 minutes, so all three paths are taken: a minute already spent, a
new minute, and a refusal once general's 60 minutes are gone (the mix is printed). Each kind meters its own
day, so each starts from empty bitmaps. The kinds alternate round by round
so the machine's noise falls on all alike; figures are medians over the rounds (p99 over all checks). A bare
PING from the same client is the baseline: a check that costs about one PING is one round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

from redis.asyncio import Redis

from gatehouse.quota import InProcessQuotaStore, QuotaStore, RedisQuotaStore
from gateway.metering import QuotaGate
from policies.budgets import Budgets
from policies.decision import Subject
from policies.snapshot import Snapshot

DAY = date(2026, 11, 23)
BUDGETS = {"general": 60, "jobs": 120, "learning": None}
INMATES = 200
PER_MINUTE = 1_000
TASKS = 50
SCRIPT_INNER = ("getbit", "bitcount", "setbit", "pexpire")

Check = tuple[str, str, int]


def workload(count: int, first_minute: int, rng: random.Random) -> list[Check]:
    categories = list(BUDGETS)
    return [(f"A{rng.randrange(INMATES)}", rng.choice(categories), first_minute + i // PER_MINUTE)
            for i in range(count)]


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def timed(store: QuotaStore, day: date, checks: list[Check], outcomes: Counter[str]) -> list[int]:
    samples = []
    for inmate, category, minute in checks:
        t0 = time.perf_counter_ns()
        mark = await store.check_and_mark(inmate, category, day, minute, BUDGETS[category])
        samples.append(time.perf_counter_ns() - t0)
        outcomes["already" if mark.already_marked else "new" if mark.allowed else "refused"] += 1
    return samples


async def timed_gate(gate: QuotaGate, day: date, checks: list[Check], outcomes: Counter[str]) -> list[int]:
    """The same requests through the gateway's gate: its minute is the simulated one, on `day` (UTC facility)."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    subjects = {f"A{n}": Subject(f"A{n}", frozenset(), "cell-1", "cell", "s") for n in range(INMATES)}
    samples = []
    for inmate, category, minute in checks:
        t0 = time.perf_counter_ns()
        refusal = await gate.spend(subjects[inmate], category, start + timedelta(minutes=minute))
        samples.append(time.perf_counter_ns() - t0)
        outcomes["refused" if refusal else "allowed"] += 1
    return samples


async def run_gate(gate: QuotaGate, day: date, checks: list[Check], outcomes: Counter[str]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    samples = await timed_gate(gate, day, checks, outcomes)
    return len(checks) / (time.perf_counter() - start), samples


async def run(store: QuotaStore, day: date, checks: list[Check], tasks: int,
              outcomes: Counter[str]) -> tuple[float, list[int]]:
    """Checks/s over the whole batch and each check's latency in ns; `tasks` split the batch and run at once."""
    start = time.perf_counter()
    parts = await asyncio.gather(*(timed(store, day, checks[i::tasks], outcomes) for i in range(tasks)))
    return len(checks) / (time.perf_counter() - start), [s for part in parts for s in part]


async def pings(redis: Redis, count: int) -> list[int]:
    samples = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        await redis.ping()
        samples.append(time.perf_counter_ns() - t0)
    return samples


async def command_counts(redis: Redis) -> Counter[str]:
    stats = await redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed; pass --redis URL")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def row(name: str, rates: list[float], samples: list[int], ping: float) -> str:
    p50 = percentile(samples, 0.5)
    return (f"{name:<28} {statistics.median(rates):>12,.0f} {p50:>8.1f} {percentile(samples, 0.99):>8.1f} "
            f"{p50 / ping:>10.2f}")


async def bench(url: str, checks: int, rounds: int) -> None:
    prefix = f"gh:bench:{secrets.token_hex(4)}:"
    rng = random.Random(7)
    inproc = InProcessQuotaStore()
    redis_store = RedisQuotaStore.from_url(url, prefix=prefix)
    admin = Redis.from_url(url)
    probe = Redis.from_url(url)
    budgets = Budgets(MappingProxyType(dict(BUDGETS)))
    policy = Snapshot.build((), version="bench", budgets=budgets)
    gate = QuotaGate(redis_store, lambda: policy)
    kinds: dict[str, Callable[[list[Check], Counter[str]], Awaitable[tuple[float, list[int]]]]] = {
        "in-process": lambda c, o: run(inproc, DAY, c, 1, o),
        "redis, 1 client": lambda c, o: run(redis_store, DAY, c, 1, o),
        f"redis, {TASKS} tasks": lambda c, o: run(redis_store, DAY + timedelta(days=1), c, TASKS, o),
        "gateway request, redis": lambda c, o: run_gate(gate, DAY + timedelta(days=2), c, o),
    }
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    latencies: dict[str, list[int]] = {k: [] for k in kinds}
    outcomes: dict[str, Counter[str]] = {k: Counter() for k in kinds}
    ping_samples: list[int] = []
    redis_checks = 0
    try:
        await redis_store.check_and_mark("A0", "warm-up", DAY, 0, None)  # loads the script and opens a connection
        await probe.ping()
        before = await command_counts(admin)
        minute = 0
        for _ in range(rounds):
            batch = workload(checks, minute, rng)  # the same requests for every kind, on fresh minutes
            minute = batch[-1][2] + 1
            for kind, go in kinds.items():
                rate, samples = await go(batch, outcomes[kind])
                rates[kind].append(rate)
                latencies[kind].extend(samples)
                redis_checks += len(batch) if kind.startswith("redis") else 0
            ping_samples.extend(await pings(probe, 2_000))
        after = await command_counts(admin)
    finally:
        keys = [key async for key in admin.scan_iter(match=f"{prefix}*")]
        if keys:
            await admin.delete(*keys)
        await redis_store.close()
        await inproc.close()
        await admin.aclose()
        await probe.aclose()

    ping = percentile(ping_samples, 0.5)
    print(f"{'store':<28} {'checks/s':>12} {'p50 us':>8} {'p99 us':>8} {'p50/PING':>10}")
    for kind in kinds:
        print(row(kind, rates[kind], latencies[kind], ping))
    print(f"{'redis PING, 1 client':<28} {'':>12} {ping:>8.1f} {percentile(ping_samples, 0.99):>8.1f} {1:>10.2f}")
    for kind, mix in outcomes.items():
        total = sum(mix.values())
        if kind.startswith("gateway"):
            print(f"mix, {kind}: {mix['refused'] / total:.1%} refused")
            continue
        print(f"mix, {kind}: {mix['already'] / total:.1%} minute already spent, {mix['new'] / total:.1%} new "
              f"minute, {mix['refused'] / total:.1%} refused")
    counted = after - before
    sent = counted["evalsha"] + counted["eval"] + counted["script|load"] - gate.asked
    scripts = redis_checks + gate.asked  # the gateway's calls run the same script
    inner = ", ".join(f"{name.upper()} {counted[name] / scripts:.2f}" for name in SCRIPT_INNER)
    print(f"Redis round trips per check: {sent / redis_checks:.3f} (EVALSHA {counted['evalsha'] - gate.asked:,} for "
          f"{redis_checks:,} checks); inside the script per check: {inner}")
    requests = sum(outcomes["gateway request, redis"].values())
    print(f"Redis round trips per gateway request: {gate.asked / requests:.3f} ({gate.asked:,} store calls for "
          f"{requests:,} requests); a request costs {percentile(latencies['gateway request, redis'], 0.5) / ping:.2f} "
          f"PINGs at p50")
    print(f"{rounds} alternating rounds of {checks:,} checks per kind; {INMATES} inmates, {PER_MINUTE:,} requests per "
          f"simulated minute; event loop: {type(asyncio.get_running_loop()).__module__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--redis", default="", help="a Redis URL; default: start a redis-server of our own")
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        import uvloop  # the gateway runs on uvloop where it is installed
        runner: Callable[[Awaitable[None]], None] = uvloop.run
    except ImportError:
        runner = asyncio.run
    if args.redis:
        runner(bench(args.redis, args.checks, args.rounds))
        return
    with own_redis() as url:
        runner(bench(url, args.checks, args.rounds))


if __name__ == "__main__":
    main()
