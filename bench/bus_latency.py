"""Publish-to-handler latency of the control bus over Redis, between two nodes.

Run: python bench/bus_latency.py [--redis URL] [--events N] [--rate R] [--rounds K]
(the Redis URL may also come from GATEHOUSE_TEST_REDIS_URL; each run uses a channel of its own.)

Two `RedisBus` instances in one process stand for two gateway nodes sharing a Redis, on the event loop
`gatehouse run` uses. Node one publishes; the time from just before `publish` until a node's handler runs is
measured for the other node and for node one itself (which hears its own events through Redis too):
- burst: N events published back to back, each publish awaited as the portal and the CLI do;
- paced: N events at R events/s (far more than a facility's logins, logouts and kill switches).
Also the time `publish` takes (the wait of a staff member whose action goes on the bus). Figures are in ms,
median and p99 of each round, then the median over the rounds. DESIGN asks for one second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time

from gatehouse.bus import ControlEvent, PolicyChanged
from gatehouse.bus_redis import RedisBus
from gatehouse.cli.serve import use_uvloop


class Clock:
    """A handler that stamps when each numbered event arrives."""

    def __init__(self, count: int) -> None:
        self.at: list[float] = [0.0] * count
        self.seen = 0
        self.done = asyncio.Event()

    async def __call__(self, event: ControlEvent) -> None:
        if isinstance(event, PolicyChanged):
            self.at[int(event.source.rpartition(":")[2])] = time.perf_counter()
            self.seen += 1
            if self.seen == len(self.at):
                self.done.set()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_round(url: str, count: int, rate: float | None) -> dict[str, float]:
    prefix = f"gh:bench:{secrets.token_hex(6)}:bus:"
    one, two = RedisBus.from_url(url, prefix=prefix), RedisBus.from_url(url, prefix=prefix)
    own, other = Clock(count), Clock(count)
    one.subscribe(own)
    two.subscribe(other)
    sent = [0.0] * count
    took: list[float] = []
    try:
        await one.start()
        await two.start()
        start = time.perf_counter()
        for i in range(count):
            if rate is not None:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            sent[i] = time.perf_counter()
            await one.publish(PolicyChanged(f"bench:{i}"))
            took.append(time.perf_counter() - sent[i])
        await asyncio.wait_for(asyncio.gather(own.done.wait(), other.done.wait()), 30)
    finally:
        await one.close()
        await two.close()
    figures: dict[str, float] = {}
    for name, clock in (("other", other), ("own", own)):
        latencies = [(at - t0) * 1000 for at, t0 in zip(clock.at, sent, strict=True)]
        figures[f"{name} p50"] = statistics.median(latencies)
        figures[f"{name} p99"] = percentile(latencies, 0.99)
    figures["publish p50"] = statistics.median(took) * 1000
    figures["publish p99"] = percentile([t * 1000 for t in took], 0.99)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default=os.environ.get("GATEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes: dict[str, float | None] = {"burst": None, f"{args.rate:g}/s": args.rate}
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode, rate in modes.items():
            results[mode].append(await one_round(args.redis, args.events, rate))
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"control bus over Redis: {args.events} events per round, {args.rounds} rounds, {loop} loop, "
          f"{os.cpu_count()} cores; ms, medians over the rounds")
    keys = list(results["burst"][0])
    print(f"{'mode':<8}" + "".join(f"{k:>13}" for k in keys))
    for mode, rounds in results.items():
        print(f"{mode:<8}" + "".join(f"{statistics.median(r[k] for r in rounds):>13.3f}" for k in keys))


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
