"""Video visits: bookings per second under contention on PostgreSQL, and the call's signalling holding 200 rooms.

Run: python bench/visits.py [--sections booking,signal] [--postgres URL] [--threads 8,32] [--rounds 5]
     [--rooms 200] [--rates 5,15] [--seconds 8] [--ice 10] [--supervisor]
(PostgreSQL: --postgres, else GATEHOUSE_TEST_POSTGRES_URL, else the local server; a scratch database is made and
dropped with the other benches' helpers.) About 45 s with the defaults.

booking: a facility with one booth, as many inmates as the most threads, each with one verified visitor on its
approved list, and the default booking settings (visiting hours, lead time, monthly limits, 4 supervised visits
at once). Each round, N threads released together by a barrier call `booking.book` as the portal does (one
transaction each, on the engine `make_engine` gives the portal):
  same slot       all N book the same 30 minutes in the booth (distinct inmates and visitors: only the booth is
                  contested, so the claims' exclusion constraint decides); exactly one must succeed
  distinct slots  each books its own 30 minutes (slots laid out by the booking rules, none overlapping, so no
                  supervision seat is shared either); all N must succeed
A wrong count is printed as FAILED and the bench exits 1. The two kinds alternate, the visits are deleted
between rounds; figures are medians over the rounds: bookings attempted and made per second (N over the time
from the barrier to the last commit), refusals and their codes, p50/p99 of one booking, and the CPU of this
process and of PostgreSQL in cores.

signal: the portal's WebSocket handler (`portal.visits.signal.websocket_handler`) over a `Hub` with the real
clock, in an aiohttp server on loopback in this process; the pages are aiohttp WebSocket clients in a child
process (this script with --signal-client), so their JSON does not share the server's event loop. Each of
--rooms rooms has an inmate and a visitor (and with --supervisor a silent supervisor), in a visit that began a
minute ago. Phases:
  join            every socket opens and gets its welcome (tracemalloc on in the server from here to the end of
                  the phase: memory per room is what the joins allocated and kept, and the RSS growth)
  call start      all rooms at once: the visitor's offer, the inmate's answer (SDPs of ~1.6 KB), --ice candidates
                  each way back to back (with --supervisor: its receive-only offers and their send-only answers)
  paced R/s       every inmate and visitor sends ICE candidates to the other at R per second for --seconds,
                  spread evenly (each rate of --rates in turn)
Every relayed message carries its sending time (the SDP's session version, the candidate's foundation): its
latency runs from just before the sender's send to the receiver's parse. Per phase: messages relayed per
second, p50/p99 latency, messages lost (not received 10 s after the last send), and the CPU of the server and
of the pages' process. The hub lets a member send 200 messages in 10 s (`room.BURST`): the bench refuses rates
that would pass it rather than measure closed sockets. Joins are not written to an audit log here (the portal's
`Calls` does that); relayed messages never are.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from directory_search import postgres_database  # noqa: E402
from learning import DEFAULT_POSTGRES, Measure, cpu_seconds, percentile, phase, say, tell  # noqa: E402
from proxies import memory_kib  # noqa: E402

from gatehouse.cli.serve import use_uvloop  # noqa: E402
from gatehouse.db.engine import make_engine, session_factory, stored, upgrade  # noqa: E402
from gatehouse.db.models import Inmate  # noqa: E402
from gatehouse.facility import ensure_facility  # noqa: E402
from gatehouse.inmates import add_inmate  # noqa: E402
from gatehouse.settings import load_settings  # noqa: E402
from gatehouse.visits import booking, rules  # noqa: E402
from gatehouse.visits.booking import BookingRefused, Setup  # noqa: E402
from gatehouse.visits.models import Booth, Claim, ListEntry, ListStatus, Outbox, Visit, VisitGuest, Visitor  # noqa: E402
from gatehouse.visits.room import BURST, BURST_WINDOW_S, Hub, Role, Ticket  # noqa: E402
from portal.visits.signal import HUB, closing_hub, websocket_handler  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
"""The bookings' `now`, a Monday morning: the slots are the next two weeks' visiting hours."""
SAME, DISTINCT = "same slot", "distinct slots"
LENGTH = timedelta(minutes=30)
SETTLE_S = 10.0


# -- booking under contention ------------------------------------------------------------------------------------

def seed(factory: sessionmaker[Session], setup: Setup, people: int, settings: Any) -> list[datetime]:
    """One booth, `people` inmates each with its own verified visitor; returns the booth's free slots in order."""
    with factory.begin() as db:
        facility = ensure_facility(db, settings)
        booth = Booth(name="booth-1", unit="A")
        db.add(booth)
        at = stored(NOW)
        for i in range(people):
            inmate = add_inmate(db, facility, number=f"B{i}", name=f"Inmate {i}")
            guest = Visitor(name=f"Visitor {i}", email=f"visitor{i}@example.org", created_at=at,
                            email_confirmed_at=at, verified_at=at, verified_by="staff:sam")
            db.add(guest)
            db.flush()
            db.add(ListEntry(inmate_id=inmate.id, visitor_id=guest.id, status=ListStatus.APPROVED.value,
                             proposed_by=f"inmate:B{i}", proposed_at=at))
        db.flush()
        hours = booking.booth_hours(db, booth, setup)
    earliest, latest = NOW + setup.rules.min_lead, NOW + setup.rules.max_ahead
    day, found = NOW.astimezone(setup.zone).date(), []
    while datetime.combine(day, datetime.min.time(), setup.zone) < latest:
        found += [s.start for s in rules.slots(hours, day, LENGTH) if earliest <= s.start and s.end <= latest]
        day += timedelta(days=1)
    return found


def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving `database` (its process title names the database, so other
    people's work on a shared server is left out), in nanoseconds from schedstat: a booking's few milliseconds
    are below /proc/PID/stat's 10 ms tick."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
            if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                found[int(pid)] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return found


def _sample_backends(database: str, conn: Connection) -> None:
    first = backend_cpu(database)
    last = dict(first)
    conn.send("sampling")
    while not conn.poll(0.01):
        last.update(backend_cpu(database))
    last.update(backend_cpu(database))
    conn.send(sum(cpu - first.get(pid, 0.0) for pid, cpu in last.items()))


class BackendClock:
    """The CPU the database's backends spend while it runs, sampled every 10 ms by a process of its own (a thread
    would wait for the GIL behind the bookings): a backend the pool opens beyond its size is closed when its
    connection comes back, and its last sample still counts."""

    def __init__(self, database: str) -> None:
        self.conn, theirs = multiprocessing.get_context("fork").Pipe()
        self.process = multiprocessing.get_context("fork").Process(target=_sample_backends, args=(database, theirs))
        self.process.start()
        self.conn.recv()

    def seconds(self) -> float:
        self.conn.send("stop")
        spent = float(self.conn.recv())
        self.process.join()
        return spent


def race(factory: sessionmaker[Session], database: str, setup: Setup, ids: list[tuple[str, int]],
         starts: list[datetime]) -> dict[str, Any]:
    """Book ids[i] at starts[i], all threads released together; time, made, refusal codes, each booking's time."""
    gate = threading.Barrier(len(ids) + 1)
    took: list[float] = []
    made: list[int] = []
    refused: Counter[str] = Counter()
    errors: list[BaseException] = []

    def one(number: str, visitor: int, start: datetime) -> None:
        gate.wait()
        began = time.perf_counter()
        try:
            with factory.begin() as db:
                visit = booking.book(db, inmate=number, visitors=[visitor], start=start,
                                     minutes=int(LENGTH.total_seconds() // 60), by=f"visitor:{visitor}", now=NOW,
                                     setup=setup, booth="booth-1")
                made.append(visit.id)
        except BookingRefused as error:
            refused.update(p.code for p in error.problems)
        except Exception as error:  # counted and printed: any other error is a bug the bench is there to show
            errors.append(error)
        took.append(time.perf_counter() - began)

    threads = [threading.Thread(target=one, args=(*who, start)) for who, start in zip(ids, starts, strict=True)]
    for thread in threads:
        thread.start()
    cpu, backends = cpu_seconds(), BackendClock(database)
    gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {"wall": wall, "made": len(made), "refused": refused, "errors": errors, "took": took,
            "cores": (cpu_seconds() - cpu) / wall, "postgres_cores": backends.seconds() / wall}


def clear(factory: sessionmaker[Session]) -> None:
    with factory.begin() as db:
        for table in (Claim, VisitGuest, Outbox, Visit):
            db.execute(delete(table))


def booking_section(args: argparse.Namespace) -> tuple[list[tuple[str, ...]], list[str]]:
    counts = [int(n) for n in args.threads.split(",")]
    rows: list[tuple[str, ...]] = [("threads", "slots", "attempted/s", "made/s", "made", "refused", "p50 ms",
                                    "p99 ms", "bench cores", "postgres cores")]
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-visits-") as tmp, \
            postgres_database(args.postgres) as url:
        settings = load_settings(tmp, environ={})
        setup = Setup.from_settings(settings)
        engine = make_engine(url)
        try:
            upgrade(engine)
            factory = session_factory(engine)
            free = seed(factory, setup, max(counts), settings)
            if max(counts) > len(free):
                raise SystemExit(f"--threads: at most {len(free)} distinct slots in the booth's visiting hours")
            with factory() as db:
                ids = [(number, visitor) for number, visitor in db.execute(
                    select(Inmate.number, ListEntry.visitor_id).join(ListEntry, ListEntry.inmate_id == Inmate.id)
                    .order_by(Inmate.id))]
            say(f"booking: PostgreSQL, {len(free)} free slots in the booth, threads {counts}, {args.rounds} rounds, "
                f"{os.cpu_count()} cores")
            database = str(engine.url.database)
            race(factory, database, setup, ids, free[:len(ids)])  # warm-up, not counted: the pool, the caches
            clear(factory)
            got: dict[tuple[int, str], list[dict[str, Any]]] = {}
            for round_number in range(args.rounds):
                for n in counts:
                    for kind in (SAME, DISTINCT) if round_number % 2 == 0 else (DISTINCT, SAME):
                        starts = [free[0]] * n if kind == SAME else free[:n]
                        result = race(factory, database, setup, ids[:n], starts)
                        clear(factory)
                        expected = 1 if kind == SAME else n
                        if result["made"] != expected or result["errors"]:
                            failures.append(f"{n} threads, {kind}, round {round_number + 1}: {result['made']} "
                                            f"booked, expected {expected}; errors {result['errors'][:3]}")
                        got.setdefault((n, kind), []).append(result)
        finally:
            engine.dispose()
    for (n, kind), results in got.items():
        took = [t * 1e3 for r in results for t in r["took"]]
        refused: Counter[str] = sum((r["refused"] for r in results), Counter())
        codes = ", ".join(f"{c} {v / len(results):g}" for c, v in refused.most_common())
        rows.append((str(n), kind, f"{statistics.median(n / r['wall'] for r in results):,.0f}",
                     f"{statistics.median(r['made'] / r['wall'] for r in results):,.0f}",
                     f"{statistics.median(r['made'] for r in results):g}",
                     f"{statistics.median(sum(r['refused'].values()) for r in results):g}" + (f" ({codes})"
                                                                                             if codes else ""),
                     f"{percentile(took, 0.5):.1f}", f"{percentile(took, 0.99):.1f}",
                     f"{statistics.median(r['cores'] for r in results):.2f}",
                     f"{statistics.median(r['postgres_cores'] for r in results):.2f}"))
    return rows, failures


# -- signalling, the pages (child process) -----------------------------------------------------------------------

def offer_sdp(sent_ns: int, direction: str = "sendrecv") -> str:
    """A browser-shaped SDP (audio and video, ~1.6 KB) whose session version is the sending time."""
    media = []
    for mid, (kind, codecs) in enumerate((("audio", "111 63 9 0 8 13 110 126"),
                                          ("video", "96 97 102 103 104 105 106 107 108 109 127 125"))):
        media += [f"m={kind} 9 UDP/TLS/RTP/SAVPF {codecs}", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
                  "a=ice-ufrag:Qx3b", "a=ice-pwd:5bJmKq7r1ZtS0yqQn3dQqkXb", "a=ice-options:trickle",
                  "a=fingerprint:sha-256 " + ":".join(["7A"] * 32), "a=setup:actpass", f"a=mid:{mid}",
                  f"a={direction}", "a=rtcp-mux", "a=rtcp-rsize"]
        media += [f"a=rtpmap:{pt} {'opus/48000/2' if kind == 'audio' else 'VP8/90000'}" for pt in codecs.split()]
    lines = ["v=0", f"o=- 4611731400430051336 {sent_ns} IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE 0 1", "a=msid-semantic: WMS", *media]
    return "\r\n".join(lines) + "\r\n"


def candidate(sent_ns: int, n: int) -> dict[str, Any]:
    """An RTCIceCandidateInit whose foundation is the sending time."""
    return {"candidate": f"candidate:{sent_ns} 1 udp 2122260223 192.0.2.{n % 250 + 1} {50000 + n} typ host "
                         "generation 0 ufrag Qx3b network-id 1", "sdpMid": "0", "sdpMLineIndex": 0,
            "usernameFragment": "Qx3b"}


def sent_at(message: dict[str, Any]) -> int:
    if message["type"] == "ice":
        return int(message["candidate"]["candidate"].split()[0].partition(":")[2])
    return int(message["sdp"].split("\r\n", 2)[1].split()[2])


class Page:
    """One participant's socket: sends timed messages, and stamps each relayed message it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, me: str, pages: Pages) -> None:
        self.ws, self.me, self.pages = ws, me, pages
        self.welcome: dict[str, Any] = {}
        self.peers: set[str] = set()
        self.silent: str = ""
        self.welcomed = asyncio.Event()
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for frame in self.ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            kind = message["type"]
            if kind in ("offer", "answer", "ice"):
                self.pages.received(message, time.perf_counter_ns())
                if kind == "offer" and message.get("silent"):  # a supervisor's receive-only offer: answer send-only
                    await self.send({"type": "answer", "to": message["from"], "sdp": offer_sdp(
                        time.perf_counter_ns(), "sendonly")})
            elif kind == "welcome":
                self.welcome = message
                self.peers |= {p["id"] for p in message.get("peers", ())}
                self.welcomed.set()
            elif kind == "peer-joined":
                self.peers.add(message["peer"]["id"])
        if not self.pages.closing:
            self.pages.measure.errors[f"socket closed {self.ws.close_code}"] += 1

    async def send(self, message: dict[str, Any]) -> None:
        self.pages.sent += 1
        await self.ws.send_str(json.dumps(message))


class Pages:
    """Every page of the run, the measure of the current phase, and how many relayed messages are in flight."""

    def __init__(self) -> None:
        self.measure = Measure()
        self.sent = self.got = 0
        self.closing = False

    def received(self, message: dict[str, Any], now_ns: int) -> None:
        self.got += 1
        self.measure.seconds.append((now_ns - sent_at(message)) / 1e9)

    async def drained(self) -> None:
        deadline = time.perf_counter() + SETTLE_S
        while self.got < self.sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        if self.got < self.sent:
            self.measure.errors["lost"] += self.sent - self.got

    def start(self, measure: Measure) -> None:
        self.measure, self.sent, self.got = measure, 0, 0


async def call_start(pairs: list[tuple[Page, Page, Page | None]], ice: int) -> None:
    async def room(inmate: Page, visitor: Page, watcher: Page | None) -> None:
        await visitor.send({"type": "offer", "to": inmate.me, "sdp": offer_sdp(time.perf_counter_ns())})
        await inmate.send({"type": "answer", "to": visitor.me, "sdp": offer_sdp(time.perf_counter_ns())})
        if watcher is not None:
            for peer in (inmate, visitor):
                await watcher.send({"type": "offer", "to": peer.me, "sdp": offer_sdp(time.perf_counter_ns(),
                                                                                      "recvonly")})
        for n in range(ice):
            await visitor.send({"type": "ice", "to": inmate.me, "candidate": candidate(time.perf_counter_ns(), n)})
            await inmate.send({"type": "ice", "to": visitor.me, "candidate": candidate(time.perf_counter_ns(), n)})

    await asyncio.gather(*(room(*pair) for pair in pairs))


async def paced(pairs: list[tuple[Page, Page, Page | None]], rate: float, until: float) -> None:
    senders = [(a, b) for inmate, visitor, _ in pairs for a, b in ((inmate, visitor), (visitor, inmate))]
    began = time.perf_counter()

    async def one(i: int, page: Page, to: Page) -> None:
        offset, n = i / (len(senders) * rate), 0
        while (due := began + offset + n / rate) < until:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await page.send({"type": "ice", "to": to.me, "candidate": candidate(time.perf_counter_ns(), n)})
            n += 1

    await asyncio.gather(*(one(i, a, b) for i, (a, b) in enumerate(senders)))


async def signal_client(args: argparse.Namespace) -> None:
    base, rooms = args.signal_client, args.rooms
    pages = Pages()
    roles = ("inmate", "visitor", "supervisor") if args.supervisor else ("inmate", "visitor")
    client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60))
    opened: dict[tuple[int, str], Page] = {}
    try:
        async def join(r: int, role: str) -> None:
            ws = await client.ws_connect(f"{base}/ws?token={r}-{role}", max_msg_size=64 * 1024)
            page = opened[r, role] = Page(ws, who(r, role), pages)
            await asyncio.wait_for(page.welcomed.wait(), 30)

        async def join_all(_until: float) -> None:
            for role in roles:  # the inmate first, then the visitor (who calls), then the silent supervisor
                await asyncio.gather(*(join(r, role) for r in range(rooms)))
            pages.got = pages.sent = 0

        await phase("join", 0, join_all, {})
        pairs = [(opened[r, "inmate"], opened[r, "visitor"], opened.get((r, "supervisor"))) for r in range(rooms)]
        for _ in range(500):  # the inmate's peer-joined may still be on its way
            if all(v.me in i.peers and i.me in v.peers for i, v, _ in pairs):
                break
            await asyncio.sleep(0.01)
        else:
            tell(say="FAILED: a pair was not introduced to each other")
            raise SystemExit(1)
        for name, work in [("call start", lambda _until: call_start(pairs, args.ice)),
                           *((f"paced {rate:g}/s", lambda until, rate=rate: paced(pairs, rate, until))
                             for rate in args.rate_list)]:
            measure = Measure()
            pages.start(measure)

            async def run(until: float, work: Any = work) -> None:
                await work(until)
                await pages.drained()

            await phase(name, 0 if name == "call start" else args.seconds, run, {"relayed": measure})
    finally:
        pages.closing = True
        await asyncio.gather(*(p.ws.close() for p in opened.values()), return_exceptions=True)
        await client.close()


# -- signalling, the server (this process) -----------------------------------------------------------------------

def who(room: int, role: str) -> str:
    return {"inmate": f"inmate:C{room}", "visitor": f"visitor:{room}", "supervisor": f"staff:s{room}"}[role]


def tickets(rooms: int, supervisor: bool) -> dict[str, Ticket]:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    out = {}
    for r in range(rooms):
        for role in (Role.INMATE, Role.VISITOR, *((Role.SUPERVISOR,) if supervisor else ())):
            out[f"{r}-{role.value}"] = Ticket(str(r), who(r, role.value), role, f"{role.value} {r}", start,
                                              start + timedelta(minutes=60))
    return out


async def signal_section(args: argparse.Namespace) -> list[tuple[str, ...]]:
    issued = tickets(args.rooms, args.supervisor)

    async def resolve(request: web.Request) -> Ticket | None:
        return issued.get(request.query.get("token", ""))

    app = web.Application()
    hub = app[HUB] = Hub()
    app.router.add_get("/ws", websocket_handler(hub, resolve))
    app.cleanup_ctx.append(closing_hub)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    say(f"signal: {args.rooms} rooms of {3 if args.supervisor else 2} at http://{host}:{port}, {loop} loop; the pages "
        "in a child process")
    rows: list[tuple[str, ...]] = [("phase", "relayed", "per second", "p50 ms", "p99 ms", "lost/errors",
                                    "server cores", "pages cores")]
    memory: dict[str, float] = {}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--signal-client", f"http://{host}:{port}", "--rooms", str(args.rooms),
            "--rates", args.rates, "--seconds", str(args.seconds), "--ice", str(args.ice),
            *(["--supervisor"] if args.supervisor else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**24)
        assert proc.stdin is not None and proc.stdout is not None
        marks = (0.0, 0.0)
        async for line in proc.stdout:
            message = json.loads(line)
            if "say" in message:
                say(f"signal: {message['say']}")
            elif "ready" in message:
                if message["ready"] == "join":
                    gc.collect()
                    memory["rss before kib"] = memory_kib([os.getpid()], "VmRSS")
                    tracemalloc.start()
                marks = (time.perf_counter(), cpu_seconds())
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            elif "phase" in message:
                wall = time.perf_counter() - marks[0]
                server = (cpu_seconds() - marks[1]) / wall
                if message["phase"] == "join":
                    gc.collect()
                    memory["traced kib"] = tracemalloc.get_traced_memory()[0] / 1024
                    tracemalloc.stop()
                    memory["rss joined kib"] = memory_kib([os.getpid()], "VmRSS")
                    memory["sockets"] = sum(len(hub.present(str(r))) for r in range(args.rooms))
                    say(f"signal: {memory['sockets']:,} sockets joined in {message['elapsed']:.1f} s (tracemalloc "
                        f"on); memory per room {memory['traced kib'] / args.rooms:.1f} KiB traced, "
                        f"{(memory['rss joined kib'] - memory['rss before kib']) / args.rooms:.1f} KiB of RSS")
                    continue
                got = message["measures"]["relayed"]
                rows.append((message["phase"], f"{got['requests']:,}", f"{got['per_s']:,.0f}",
                             f"{got['p50_ms']:.2f}", f"{got['p99_ms']:.2f}",
                             f"{got['errors']}" + (f" {got['error_kinds']}" if got["errors"] else ""),
                             f"{server:.2f}", f"{message['client_cores']:.2f}"))
                say(f"signal: {message['phase']}: " + ", ".join(f"{k} {v}" for k, v in zip(rows[0][1:], rows[-1][1:],
                                                                                        strict=True)))
        if await proc.wait() != 0:
            raise SystemExit(f"signal: the pages' process failed ({proc.returncode})")
        gc.collect()
        memory["rss after kib"] = memory_kib([os.getpid()], "VmRSS")
    finally:
        await runner.cleanup()
    per_room = [("traced at join", memory["traced kib"]),
                ("RSS growth at join", memory["rss joined kib"] - memory["rss before kib"]),
                ("RSS growth after the calls", memory["rss after kib"] - memory["rss before kib"])]
    rows.append(("memory per room, KiB", *(f"{name} {kib / args.rooms:.1f}" for name, kib in per_room)))
    return rows


# -- the run -------------------------------------------------------------------------------------------------------

def print_table(rows: list[tuple[str, ...]]) -> None:
    say("| " + " | ".join(rows[0]) + " |")
    say("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        say("| " + " | ".join(row) + " |")


def check_rates(args: argparse.Namespace) -> None:
    """Refuse a run whose pages would pass the hub's flood limit (it closes their sockets, 1008)."""
    window = min(args.seconds, BURST_WINDOW_S)
    worst = args.ice + 2 + sum(rate * window for rate in args.rate_list)
    if worst > BURST:
        raise SystemExit(f"--rates/--seconds/--ice: up to {worst:.0f} messages a member in {BURST_WINDOW_S:g} s, "
                         f"above the hub's {BURST}; lower them")


async def main(args: argparse.Namespace) -> None:
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if unknown := set(sections) - {"booking", "signal"}:
        raise SystemExit(f"--sections: unknown {', '.join(sorted(unknown))} (booking, signal)")
    check_rates(args)
    failures: list[str] = []
    tables = []
    if "booking" in sections:
        rows, failures = await asyncio.to_thread(booking_section, args)
        tables.append(("bookings of one booth on PostgreSQL, medians over the rounds", rows))
    if "signal" in sections:
        tables.append((f"signalling, {args.rooms} rooms at once", await signal_section(args)))
    for title, rows in tables:
        say("")
        say(title)
        print_table(rows)
    for failure in failures:
        say(f"FAILED: {failure}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sections", default="booking,signal")
    parser.add_argument("--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--threads", default="8,32", help="threads booking at once, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--rates", default="5,15", help="ICE candidates per second per page, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each paced phase")
    parser.add_argument("--ice", type=int, default=10, help="ICE candidates each way at the call's start")
    parser.add_argument("--supervisor", action="store_true", help="a silent supervisor in every room")
    parser.add_argument("--signal-client", default="", help=argparse.SUPPRESS)
    use_uvloop()
    arguments = parser.parse_args()
    arguments.rate_list = [float(r) for r in arguments.rates.split(",") if r.strip()]
    asyncio.run(signal_client(arguments) if arguments.signal_client else main(arguments))
