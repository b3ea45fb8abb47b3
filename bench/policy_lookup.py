"""How decision cost grows: with the number of host labels, not with the number of rules.

Run: python bench/policy_lookup.py
Prints the median time of one `decide_connect` for snapshots of 10 to 100,000 rules and hosts of 2 to 8
labels, and the ratios against the smallest case, all measured in this one run.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from policies.decision import RequestFacts, Subject, decide_connect
from policies.rules import Effect, HostPattern, Rule
from policies.snapshot import Snapshot

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WHO = Subject("A1", frozenset(), "cell-1", "cell", "s")
REPEAT, ROUNDS = 20_000, 7


def snapshot(n: int) -> Snapshot:
    rules = [Rule(f"r{i}", Effect.ALLOW, (HostPattern(f"site{i}.example.org", False),
                                         HostPattern(f"cdn{i}.example.net", True))) for i in range(n)]
    return Snapshot.build(rules)


def median_ns(policy: Snapshot, host: str) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(REPEAT):
            decide_connect(RequestFacts("CONNECT", host, 443), WHO, policy, now=NOW)
        samples.append((time.perf_counter_ns() - start) / REPEAT)
    return statistics.median(samples)


def main() -> None:
    sizes = (10, 1_000, 100_000)
    hosts = {2: "example.org", 4: "a.site5.example.org", 8: "a.b.c.d.e.x.cdn5.example.net"}
    policies = {n: snapshot(n) for n in sizes}
    base = median_ns(policies[sizes[0]], hosts[2])
    print(f"{'rules':>8} {'labels':>6} {'median ns':>10} {'x smallest':>10}")
    for n in sizes:
        for labels, host in hosts.items():
            ns = median_ns(policies[n], host)
            print(f"{n:>8} {labels:>6} {ns:>10.0f} {ns / base:>10.2f}")


if __name__ == "__main__":
    main()
