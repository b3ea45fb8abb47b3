"""How fast the audit review screens answer on a large log, on PostgreSQL and SQLite.

Run: python bench/review_pages.py [--postgres URL] [--records N] [--repeat R]
(the PostgreSQL URL may also come from GATEHOUSE_TEST_POSTGRES_URL; a scratch database is made and dropped.)

A log of N records (default 1,000,000) over 30 days is loaded: 1,400 inmates, 300 hosts, one in ten denied.
Then each query behind a screen runs R times (default 7) and its median time is printed:
- search page 1 (no filter), a page in the middle of the log reached by cursor (keyset), and the same page
  reached with OFFSET for comparison (what keyset pagination saves);
- an inmate's timeline (page 1), a host over one day, denied only over one day;
- the chart queries over 7 days (per hour, by reason, busiest hosts);
- one alert scan (the last two hours and the facility day, as the portal runs it every minute).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import make_url, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_writer import drop_postgres, scratch_postgres  # noqa: E402

from gatehouse.audit import alerts, review  # noqa: E402
from gatehouse.audit.review import Cursor, Filters  # noqa: E402
from gatehouse.cli.ops import initialise  # noqa: E402
from gatehouse.db.models import AuditRecord  # noqa: E402
from gatehouse.kernel import Kernel  # noqa: E402

COLUMNS = ("at", "plane", "tag", "actor", "terminal", "client_addr", "method", "host", "path", "decision",
           "reason", "status", "node", "seq", "prev_hash", "hash")
DAYS = 30


def rows(count: int, end: datetime) -> list[tuple[object, ...]]:
    """Records spread evenly over DAYS days up to `end`, oldest first, as the shipper would have stored them."""
    rng = random.Random(7)
    hosts = [f"site{n}.example.org" for n in range(300)]
    step = timedelta(days=DAYS) / count
    start = end - timedelta(days=DAYS)
    out = []
    for seq in range(1, count + 1):
        inmate = rng.randrange(1400)
        denied = rng.random() < 0.1
        host = rng.choice(hosts)
        out.append((start + step * seq, "gateway", "gateway:request:denied" if denied else "gateway:request:allowed",
                    f"A{inmate:04d}", f"cell-{inmate % 600}", f"10.20.{inmate // 250}.{inmate % 250}", "GET", host,
                    f"/page/{seq % 997}", "deny" if denied else "allow",
                    rng.choice(["no-match: no rule allows it", "rule-deny[games]: denied", "bad-host: SNI differs"])
                    if denied else "rule-allow[learning]", 403 if denied else 200, "bench", seq, "0" * 64, "0" * 64))
    return out


def load(url: str, data: list[tuple[object, ...]]) -> None:
    columns = ", ".join(COLUMNS)
    if url.startswith("sqlite"):
        with sqlite3.connect(make_url(url).database or "") as conn:
            conn.executemany(f"INSERT INTO audit_records ({columns}) VALUES ({', '.join('?' * len(COLUMNS))})",
                             [(r[0].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[1:]) for r in data])  # type: ignore[attr-defined]
        return
    import psycopg

    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY audit_records ({columns}) FROM STDIN") as copy:
            for row in data:
                copy.write_row(row)
        conn.execute("ANALYZE audit_records")


def timed(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def measure(url: str, data_dir: Path, records: int, repeat: int) -> dict[str, float]:
    settings = initialise(data_dir, {"database.url": url}, quiet=True)
    end = datetime(2026, 11, 24, 12, 0)
    started = time.perf_counter()
    load(url, rows(records, end))
    print(f"  loaded {records:,} records in {time.perf_counter() - started:.0f} s", flush=True)
    kernel = Kernel.open(settings)
    zone = ZoneInfo("Europe/Brussels")
    limits = alerts.Thresholds()
    figures: dict[str, float] = {}
    with kernel.factory() as session:
        middle = session.scalars(select(AuditRecord).where(AuditRecord.seq == records // 2)).one()
        cursor = Cursor(middle.at, middle.id)
        day = Filters(since=end - timedelta(days=1), until=end)
        week = (end - timedelta(days=7), end)
        offset_query = (select(AuditRecord).order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
                        .offset(records // 2).limit(review.PAGE))
        cases: dict[str, Callable[[], object]] = {
            "page 1": lambda: review.search(session, Filters()),
            "middle, keyset": lambda: review.search(session, Filters(), cursor),
            "middle, OFFSET": lambda: list(session.scalars(offset_query)),
            "timeline": lambda: review.search(session, Filters(actor="A0042")),
            "host, 1 day": lambda: review.search(session, Filters(day.since, day.until, host="site7.example.org")),
            "denied, 1 day": lambda: review.search(session, Filters(day.since, day.until, decision="deny")),
            "per hour, 7 d": lambda: review.per_hour(session, Filters(), *week),
            "by reason, 7 d": lambda: review.denials_by_reason(session, Filters(), *week),
            "hosts, 7 d": lambda: review.busiest_hosts(session, Filters(), *week),
            "alert scan": lambda: alerts.scan(session, min(end - timedelta(hours=2), alerts.local_day(end, zone)[0]),
                                              end, zone, limits),
        }
        for name, work in cases.items():
            figures[name] = timed(repeat, work)
            session.expunge_all()
    kernel.engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", ""))
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        backends = {"sqlite": f"sqlite:///{Path(tmp) / 'review.db'}"}
        admin = ""
        if args.postgres:
            backends["postgresql"], admin = scratch_postgres(args.postgres)
        try:
            for name, url in backends.items():
                print(f"{name}:", flush=True)
                results[name] = measure(url, Path(tmp) / name, args.records, args.repeat)
        finally:
            if admin:
                drop_postgres(backends["postgresql"], admin)
    print(f"\naudit review queries on {args.records:,} records over {DAYS} days, median of {args.repeat} runs, "
          f"{os.cpu_count()} cores (ms)")
    names = list(results)
    print(f"{'query':<18}" + "".join(f"{n:>12}" for n in names))
    for case in next(iter(results.values())):
        print(f"{case:<18}" + "".join(f"{results[n][case]:>12,.1f}" for n in names))
    for n in names:
        r = results[n]
        print(f"{n}: OFFSET/keyset for the middle page = {r['middle, OFFSET'] / r['middle, keyset']:,.0f}x; "
              f"middle page/page 1 (keyset) = {r['middle, keyset'] / r['page 1']:.2f}")


if __name__ == "__main__":
    main()
