"""What Gatehouse's checks cost on the front: the full pipeline against the same engine with them switched off.

Run: python bench/pipeline_cost.py [--rounds R] [--seconds S] [--concurrency C]
Needs Debian's nginx-light (the origin) and the bench extra.

One process, pinned to one core, runs two fronts side by side on the same inspector and event loop:
  full  the gateway as `gatehouse run` builds it: identity from the database (cached), the policy snapshot,
        the quota gate over the in-process minute store, the audit log (segment file, fsync, shipping)
  bare  the same Front class and splicing, with identity a constant, no quota, and an audit sink that keeps
        nothing (the decision still runs: a one-rule snapshot, ~5 us, see bench/decisions.py)
Load: CONNECT tunnel set-ups (bench/loadgen.py `tunnels`, passthrough) from the other core, the two fronts
alternating round by round. It prints tunnels/s, p50/p99 and the cost of the pipeline, bare/full - 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatehouse.audit import AuditEvent
from gatehouse.cli.serve import use_uvloop
from gatehouse.kernel import Kernel, read_secret
from gatehouse.settings import resolve_table
from gateway.front import Front
from gateway.identity import Identity
from gateway.service import Gateway
from policies.decision import Decision, Subject

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxies import CLIENT_CORE, HERE, PROXY_CORE, Setup, free_port, gatehouse_data, start_origin  # noqa: E402


class ConstantIdentity:
    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    async def resolve(self, address: str) -> Identity:
        return self._identity

    def forget(self, address: str) -> None:
        pass


class NoAudit:
    async def write(self, event: AuditEvent) -> None:
        pass


class NoQuota:
    async def spend(self, who: Subject, category: str, now: datetime) -> Decision | None:
        return None

    def last_category(self, inmate: str, host: str) -> str:
        return ""


async def load(port: int, target: str, concurrency: int, seconds: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "taskset", "-c", CLIENT_CORE, sys.executable, str(HERE / "loadgen.py"), "tunnels",
        "--proxy", f"127.0.0.1:{port}", "--target", target, "--concurrency", str(concurrency),
        "--seconds", str(seconds), stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["rate"] = result["done"] / result["seconds"]
    return result


async def main(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {int(PROXY_CORE)})
    setup = Setup(Path(tempfile.mkdtemp(prefix="gatehouse-pipeline-")))
    os.chmod(setup.folder, 0o755)
    try:
        start_origin(setup)
        settings = gatehouse_data(setup, "gatehouse", "passthrough")
        resolve = [f"localhost:{p}=127.0.0.1:{p}" for p in (setup.http_port, setup.https_port)]
        settings = settings.replace(proxy__resolve=resolve)
        kernel = Kernel.open(settings)
        await kernel.start()
        gateway = Gateway(kernel)
        full_port = (await gateway.start("127.0.0.1", free_port()))[1]
        identity = await gateway.identity.resolve("127.0.0.1")
        if identity.session is None:
            raise SystemExit("the bench inmate has no session")
        bare = Front(identity=ConstantIdentity(identity), policy=lambda: kernel.policies.snapshot,  # type: ignore[arg-type]
                     audit=NoAudit(), key=read_secret(settings), inspector=lambda: gateway.inspector.address,
                     take=gateway.inspector.take,
                     portal_url=settings.portal_url, resolve=resolve_table(settings["proxy.resolve"]),
                     quota=NoQuota(), clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]
        bare_port = (await bare.start("127.0.0.1", free_port()))[1]
        target = f"localhost:{setup.https_port}"
        figures: dict[str, list[dict[str, Any]]] = {"full": [], "bare": []}
        print(f"one core ({PROXY_CORE}) for both fronts, load on core {CLIENT_CORE}; "
              f"{args.concurrency} concurrent tunnel set-ups, {args.seconds:.0f} s a round")
        for round_no in range(args.rounds):
            order = [("full", full_port), ("bare", bare_port)]
            for name, port in order if round_no % 2 == 0 else reversed(order):
                got = await load(port, target, args.concurrency, args.seconds)
                figures[name].append(got)
                print(f"  round {round_no + 1} {name:<5} {got['rate']:>9,.0f} tunnels/s  p50 {got['p50_ms']:.1f} ms"
                      f"  p99 {got['p99_ms']:.1f} ms  errors {got['errors']}", flush=True)
        full = statistics.median(r["rate"] for r in figures["full"])
        bare_rate = statistics.median(r["rate"] for r in figures["bare"])
        print(f"full pipeline {full:,.0f} tunnels/s, bare engine {bare_rate:,.0f} tunnels/s: the pipeline costs "
              f"{(bare_rate / full - 1) * 100:.1f}% (target: at most 10%)")
        await bare.stop()
        await gateway.stop()
        await kernel.close()
    finally:
        setup.close()
        shutil.rmtree(setup.folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=100)
    use_uvloop()
    asyncio.run(main(parser.parse_args()))
