"""Decisions per second and p99 latency of `decide_request`, with 100 and with 10,000 rules, over 1,000 hosts.

Run: python bench/decisions.py
Every figure comes from this one run: the two rule counts alternate round by round so that the machine's
noise falls on both alike. The aim: at least 200,000 decisions/s on one core, and a 10,000-rule / 100-rule
time ratio near 1 (lookup cost follows the host's labels, not the number of rules).
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime

from policies.decision import RequestFacts, Subject, decide_request
from policies.hosts import canonical_host
from policies.rules import Effect, HostPattern, Rule
from policies.snapshot import Snapshot

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WHO = Subject("A1", frozenset({"learners"}), "cell-1", "cell", "s")
HOSTS = 1_000
ROUNDS = 9
PER_ROUND = 20_000


def build(n: int) -> Snapshot:
    rules = []
    for i in range(n):
        effect = Effect.DENY if i % 10 == 9 else Effect.ALLOW
        paths = ("/courses", "/static/") if i % 3 == 0 else ()
        rules.append(Rule(f"r{i}", effect, (HostPattern(f"site{i}.example.org", False),
                                            HostPattern(f"cdn{i}.example.net", True)), paths=paths))
    return Snapshot.build(rules)


def workload(n: int, rng: random.Random) -> list[RequestFacts]:
    """1,000 distinct hosts, half matching some rule and half matching none, with varied paths."""
    facts = []
    for i in range(HOSTS):
        k = rng.randrange(n)
        host = rng.choice([f"site{k}.example.org", f"img.cdn{k}.example.net", f"unknown{i}.example.com",
                           f"a.b.unknown{i}.example.com"])
        facts.append(RequestFacts("GET", host, 443, rng.choice(["/", "/courses/1", "/static/app.css", "/x/y"])))
    return facts


def run_round(policy: Snapshot, facts: list[RequestFacts]) -> tuple[float, list[float]]:
    """Throughput without per-call timers, then one timed pass over the hosts for the latency percentiles."""
    start = time.perf_counter()
    count = 0
    while count < PER_ROUND:
        for f in facts:
            decide_request(f, WHO, policy, now=NOW)
        count += len(facts)
    rate = count / (time.perf_counter() - start)
    samples = []
    for f in facts:
        t0 = time.perf_counter_ns()
        decide_request(f, WHO, policy, now=NOW)
        samples.append(time.perf_counter_ns() - t0)
    return rate, samples


def main() -> None:
    rng = random.Random(7)
    sizes = (100, 10_000)
    policies = {n: build(n) for n in sizes}
    facts = {n: workload(n, rng) for n in sizes}
    rates: dict[int, list[float]] = {n: [] for n in sizes}
    latencies: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(ROUNDS):
        for n in sizes:
            rate, samples = run_round(policies[n], facts[n])
            rates[n].append(rate)
            latencies[n].extend(samples)
    print(f"{'rules':>7} {'decisions/s (median)':>21} {'p50 us':>7} {'p99 us':>7}")
    for n in sizes:
        ordered = sorted(latencies[n])
        p50 = ordered[len(ordered) // 2] / 1000
        p99 = ordered[int(len(ordered) * 0.99)] / 1000
        print(f"{n:>7} {statistics.median(rates[n]):>21,.0f} {p50:>7.2f} {p99:>7.2f}")
    for n in sizes:
        cold = []
        for _ in range(ROUNDS):
            fresh = build(n)  # a new snapshot remembers nothing; the host-name cache is emptied too
            canonical_host.cache_clear()
            start = time.perf_counter()
            for f in facts[n]:
                decide_request(f, WHO, fresh, now=NOW)
            cold.append(len(facts[n]) / (time.perf_counter() - start))
        print(f"{n:>7} {statistics.median(cold):>21,.0f}   first sight of each host (no memo)")
    ratio = statistics.median(rates[sizes[0]]) / statistics.median(rates[sizes[1]])
    print(f"time ratio 10,000 rules / 100 rules: {ratio:.2f} (1.00 means rule count does not matter)")
    print(f"{HOSTS} hosts, {ROUNDS} alternating rounds of {PER_ROUND} decisions, one core")


if __name__ == "__main__":
    main()
