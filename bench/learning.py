"""Lesson pages and quiz answers with 500 inmate sessions at once (the morning a class starts), SQLite and PostgreSQL.

Run: python bench/learning.py [--sessions 500] [--seconds 20] [--databases sqlite,postgres] [--postgres URL]
     [--class-start 10] [--alone 3] [--json bench/results/learning.json]
(PostgreSQL: GATEHOUSE_TEST_POSTGRES_URL or the local server; a scratch database is made and dropped.)

Per database: a fresh data dir, 500 classroom terminals on 127.0.1.1 ... 127.0.2.244, 500 inmates (one
transaction), one course of 3 lessons (~600 words of Markdown each) and a final quiz of 5 questions with
unlimited attempts, all 500 enrolled (one transaction); the portal and gateway started in this process as
`gatehouse run` does, with the login limits raised. The load comes from a child process (this script with
--client) so that its parsing does not share the portal's event loop; each inmate is one aiohttp session
bound to its terminal's address. After all 500 have logged in (not counted), five phases, each starting
once the audit log has shipped everything from the one before:
  one session: lessons  one session opens lessons 1, 2, 3, 1, ... back to back for --alone seconds: the time
                        a page takes without a queue
  one session: quiz     the same session takes quizzes as below for --alone seconds
  class start           every session opens lesson 1 once, at a moment spread evenly over --class-start
                        seconds (500 over 10 s: 50 pages/s arriving)
  all: lessons          every session opens lessons 1, 2, 3, 1, ... back to back for --seconds (closed loop, no
                        reading time: the portal's capacity, and a latency that is mostly queueing, about
                        sessions / throughput by Little's law)
  all: quiz             every session starts an attempt, answers each question (following each redirect to the
                        next question as a browser does), then starts again, for --seconds; the answers score
                        40 %, so attempts never pass and never run out. The answer is timed as its POST alone
                        (allow_redirects=False); the question page, the start and the result page apart.
Requests started before a phase's end are waited for and counted, so a phase lasts longer than --seconds
by about one queue's worth. Per phase it prints the database statements and commits per request (counted on
the portal's engine, the audit log's shipping included) and the CPU of the portal process, the load process
and PostgreSQL in cores, and the machine's load average: the machine is shared.
Every request is timed and its status kept: anything not expected (not 2xx/3xx, a redirect to /login, a
connection error) is counted and printed. Audit records are written for every request, as in production.

The bench's PINs are hashed with cheap argon2 parameters (verify_pin reads them from the hash): the login is
not measured, and 1,000 logins with the production parameters (~0.25 s of CPU each) would take ~2 of the
run's 5 minutes. The production hash is timed once and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from argon2 import PasswordHasher
from sqlalchemy import event

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running, use_uvloop
from gatehouse.db.engine import utcnow
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.kernel import Kernel
from gatehouse.learning import catalog, enrolment
from gatehouse.learning.package import load_package
from gatehouse.pins import hash_pin
from gatehouse.terminals import add_terminal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_writer import drop_postgres, scratch_postgres  # noqa: E402

SLUG, LESSON_COUNT, MODULE = "job-ready", 3, 1
ALONE_LESSONS, ALONE_QUIZ = "one session: lessons", "one session: quiz"
CLASS_START, ALL_LESSONS, ALL_QUIZ = "class start", "all: lessons", "all: quiz"
PHASES = (ALONE_LESSONS, ALONE_QUIZ, CLASS_START, ALL_LESSONS, ALL_QUIZ)
GOAL_MS = 100.0
FIRST_ADDRESS = ipaddress.ip_address("127.0.1.1")
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

COURSE = f"""\
id: {SLUG}
title: Getting ready for work
language: en
level: A2
category: work
duration_minutes: 90
completion: all-lessons-and-quiz
modules:
  - title: Applying for a job
    lessons: [lessons/cv.md, lessons/letter.md, lessons/interview.md]
    quiz: quizzes/final.yaml
"""
QUIZ = """\
questions:
  - id: q1
    type: single
    prompt: Where does your last job go on a CV?
    options: {a: At the top of your work history, b: At the end, c: Nowhere}
    answer: a
  - {id: q2, type: truefalse, prompt: A cover letter should be five pages long., answer: false}
  - {id: q3, type: numeric, prompt: "How many minutes early do you arrive at an interview?", answer: 10, tolerance: 5}
  - {id: q4, type: text, prompt: "Which document lists your work and training?", accepted: [CV, curriculum vitae]}
  - id: q5
    type: multiple
    prompt: What belongs on a CV?
    options: {a: Your skills, b: Your PIN, c: Your training}
    answer: [a, c]
order: fixed
attempts: 0
pass_mark: 60
feedback: at-end
"""
ANSWERS = {"q1": ["a"], "q2": ["true"], "q3": ["10"], "q4": ["a letter"], "q5": ["a"]}
"""Two right of five (40 %, below the pass mark): an attempt never passes, so another may always start."""

SENTENCES = (
    "An employer reads a page in less than a minute, so the first lines must say who you are and what you can do.",
    "Write short sentences and start each line with a verb such as built, cleaned, served, repaired or organised.",
    "Put the work you did most recently first, with the name of the place, your role and the months and years.",
    "Training counts as much as paid work: a course finished here, a certificate, a skill you taught to others.",
    "Ask someone you trust to read what you wrote aloud; mistakes you cannot see are easy to hear.",
    "Keep one version that lists everything and make a shorter copy for each job, with only what that job needs.",
    "The advertisement tells you the words the employer uses; use the same words when they are true for you.",
    "A gap of some years can be explained in one calm sentence, and then you talk about what you learned.",
    "Say what you are good at with an example: not only that you are reliable, but when and how you showed it.",
    "Before an interview, read about the company and think of two questions that you would like to ask them.",
    "Plan the journey the day before and arrive about ten minutes early, so that you are calm when you go in.",
    "Listen to the whole question, take a breath, and answer it with a short story from your own experience.",
    "It is fine to say that you do not know something yet, and then to say how you would find out.",
    "At the end, thank the people who met you and ask when you may hear from them about the next step.",
)
TOPICS = {"cv": ("Your CV", ("What a CV is for", "Your work history", "Your training and skills", "Checking it")),
          "letter": ("The cover letter", ("Why a letter", "The first lines", "Matching the job", "Ending well")),
          "interview": ("The interview", ("Getting ready", "On the day", "Answering questions", "Afterwards"))}


def lesson_text(name: str) -> str:
    """~600 words of Markdown: a title, four sections of two paragraphs, and a list in each."""
    title, sections = TOPICS[name]
    pick = random.Random(name)
    parts = [f"# {title}\n"]
    for heading in sections:
        parts.append(f"## {heading}\n")
        for _ in range(2):
            parts.append(" ".join(pick.sample(SENTENCES, 3)) + "\n")
        parts.append("\n".join(f"- {s.split(',')[0].rstrip('.')}." for s in pick.sample(SENTENCES, 3)) + "\n")
    return "\n".join(parts)


def course_folder(folder: Path) -> Path:
    files = {"course.yaml": COURSE, "quizzes/final.yaml": QUIZ,
             **{f"lessons/{name}.md": lesson_text(name) for name in TOPICS}}
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def address(n: int) -> str:
    return str(FIRST_ADDRESS + n)


def number(n: int) -> str:
    return f"L{n + 1:04d}"


def pin(n: int) -> str:
    return f"{(n * 7919 + 1234) % 1_000_000:06d}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def say(text: str) -> None:
    print(text, flush=True)


# -- the load, in the child process -----------------------------------------------------------------------------

@dataclass
class Measure:
    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self, elapsed: float) -> dict[str, Any]:
        return {"requests": len(self.seconds), "per_s": len(self.seconds) / elapsed if elapsed else 0.0,
                "p50_ms": percentile(self.seconds, 0.5) * 1e3, "p99_ms": percentile(self.seconds, 0.99) * 1e3,
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors)}


def tell(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def csrf(client: aiohttp.ClientSession) -> str:
    return next((c.value for c in client.cookie_jar if c.key == "gh_csrf"), "")


async def timed(measure: Measure, client: aiohttp.ClientSession, method: str, url: str, expect: tuple[int, ...],
                data: list[tuple[str, str]] | None = None) -> tuple[int, str, str]:
    """(status, Location, body) of one request, timed into `measure`; an unexpected status or a failure is
    counted as an error there (and status 0 returned for a failure)."""
    started = time.perf_counter()
    try:
        async with client.request(method, url, data=data, allow_redirects=False) as resp:
            body = await resp.text()
            status, location = resp.status, resp.headers.get("Location", "")
    except (aiohttp.ClientError, TimeoutError) as exc:
        measure.errors[type(exc).__name__] += 1
        return 0, "", ""
    measure.seconds.append(time.perf_counter() - started)
    if status not in expect or location.startswith("/login"):
        measure.errors[f"status {status}" + (" to /login" if location.startswith("/login") else "")] += 1
    return status, location, body


async def log_in(client: aiohttp.ClientSession, portal: str, n: int, failures: Counter[str]) -> None:
    async with client.get(f"{portal}/login") as page:
        await page.read()
    async with client.post(f"{portal}/login", allow_redirects=False, data={
            "inmate_number": number(n), "pin": pin(n), "csrf_token": csrf(client)}) as resp:
        await resp.read()
        if resp.status != 303 or resp.headers.get("Location") != "/home":
            failures[f"status {resp.status}"] += 1


async def class_start(client: aiohttp.ClientSession, portal: str, n: int, sessions: int, spread: float,
                      measure: Measure) -> None:
    await asyncio.sleep(spread * n / sessions)
    await timed(measure, client, "GET", f"{portal}/learning/{SLUG}/lesson/1", (200,))


async def read_lessons(client: aiohttp.ClientSession, portal: str, n: int, until: float, measure: Measure) -> None:
    lesson = n % LESSON_COUNT
    while time.perf_counter() < until:
        await timed(measure, client, "GET", f"{portal}/learning/{SLUG}/lesson/{lesson + 1}", (200,))
        lesson = (lesson + 1) % LESSON_COUNT


QUESTION = re.compile(r'name="question" value="([^"]+)"')


async def take_quizzes(client: aiohttp.ClientSession, portal: str, until: float, measures: dict[str, Measure]
                       ) -> None:
    while time.perf_counter() < until:
        status, location, _ = await timed(measures["quiz start"], client, "POST",
                                          f"{portal}/learning/{SLUG}/quiz/{MODULE}/start", (303,),
                                          [("csrf_token", csrf(client))])
        while status == 303 and location.startswith("/learning/attempt/") and time.perf_counter() < until:
            if location.endswith("/result"):
                await timed(measures["result page"], client, "GET", portal + location, (200,))
                break
            status, _, page = await timed(measures["question page"], client, "GET", portal + location, (200,))
            found = QUESTION.search(page)
            if status != 200 or found is None:
                break
            question = found.group(1)
            form = [("csrf_token", csrf(client)), ("question", question)]
            form += [("answer", value) for value in ANSWERS[question]]
            status, location, _ = await timed(measures["quiz answer"], client, "POST",
                                              f"{portal}{location}/answer", (303,), form)


def cpu_seconds() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


async def phase(name: str, seconds: float, work: Callable[[float], Awaitable[Any]],
                measures: dict[str, Measure]) -> None:
    """Wait for the portal's go (the audit log shipped), run `work(until)`, report each measure and this process's
    CPU."""
    tell(ready=name)
    await asyncio.to_thread(sys.stdin.readline)
    cpu, began = cpu_seconds(), time.perf_counter()
    await work(began + seconds)
    elapsed = time.perf_counter() - began
    tell(phase=name, elapsed=elapsed, client_cores=(cpu_seconds() - cpu) / elapsed,
         measures={k: m.summary(elapsed) for k, m in measures.items() if m.seconds or m.errors})


async def client_main(args: argparse.Namespace) -> None:
    portal, n = args.client, args.sessions
    clients = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address(i), 0)),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=120)) for i in range(n)]
    try:
        began, failures = time.perf_counter(), Counter[str]()
        gate = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with gate:
                await log_in(clients[i], portal, i, failures)
        await asyncio.gather(*(one(i) for i in range(n)))
        tell(say=f"{n} sessions logged in in {time.perf_counter() - began:.1f} s (not counted)"
             + (f"; FAILED: {dict(failures)}" if failures else ""))
        if failures:
            raise SystemExit(1)
        quiz_names = ("quiz answer", "question page", "quiz start", "result page")
        alone = {"lesson page": Measure()}
        await phase(ALONE_LESSONS, args.alone, lambda until: read_lessons(clients[0], portal, 0, until,
                                                                         alone["lesson page"]), alone)
        alone_quiz = {name: Measure() for name in quiz_names}
        await phase(ALONE_QUIZ, args.alone, lambda until: take_quizzes(clients[0], portal, until, alone_quiz),
                    alone_quiz)
        first = {"lesson page": Measure()}
        await phase(CLASS_START, 0, lambda _until: asyncio.gather(*(
            class_start(c, portal, i, n, args.class_start, first["lesson page"]) for i, c in enumerate(clients))),
            first)
        pages = {"lesson page": Measure()}
        await phase(ALL_LESSONS, args.seconds, lambda until: asyncio.gather(*(
            read_lessons(c, portal, i, until, pages["lesson page"]) for i, c in enumerate(clients))), pages)
        quiz = {name: Measure() for name in quiz_names}
        await phase(ALL_QUIZ, args.seconds, lambda until: asyncio.gather(*(
            take_quizzes(c, portal, until, quiz) for c in clients)), quiz)
    finally:
        await asyncio.gather(*(c.close() for c in clients))


# -- the portal, in this process ---------------------------------------------------------------------------------

def seed(settings: Any, sessions: int, pin_hashes: list[str], folder: Path) -> dict[str, float]:
    """Terminals and inmates in one transaction, the course, and every enrolment in one transaction: seconds each."""
    kernel = Kernel.open(settings)
    took: dict[str, float] = {}
    try:
        began = time.perf_counter()
        with kernel.factory.begin() as session:
            facility = ensure_facility(session, settings)
            for i in range(sessions):
                add_terminal(session, facility, name=f"class-{i + 1:03d}", address=address(i), kind="classroom",
                             unit="school")
                add_inmate(session, facility, number=number(i), name=f"Learner {i + 1}", pin_hash=pin_hashes[i])
        took["terminals and inmates s"] = time.perf_counter() - began
        began = time.perf_counter()
        with kernel.factory.begin() as session:
            catalog.import_course(session, load_package(course_folder(folder)), by="teacher", now=utcnow())
        took["course import s"] = time.perf_counter() - began
        began = time.perf_counter()
        with kernel.factory.begin() as session:
            for i in range(sessions):
                enrolment.enrol(session, course=SLUG, inmate=number(i), by="teacher", now=utcnow())
        took["enrolments s"] = time.perf_counter() - began
    finally:
        kernel.engine.dispose()
    return took


def postgres_cpu() -> float:
    """CPU seconds of every process named postgres on the machine (the server and its backends)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name.startswith("postgres"):
            total += (int(rest[11]) + int(rest[12])) / tick
    return total


async def shipped(kernel: Kernel, limit: float = 60.0) -> None:
    deadline = time.perf_counter() + limit
    while kernel.audit is not None and kernel.audit.backlog and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


async def run_database(name: str, url: str, args: argparse.Namespace, pin_hashes: list[str], tmp: Path
                       ) -> dict[str, Any]:
    say(f"{name}: a fresh data dir and database")
    settings = initialise(tmp / name / "data", {"portal.port": 0, "proxy.port": 0, "database.url": url}, quiet=True)
    took = seed(settings, args.sessions, pin_hashes, tmp / name / "course")
    say(f"{name}: {args.sessions} terminals and inmates in {took['terminals and inmates s']:.1f} s, course imported "
        f"in {took['course import s']:.2f} s, {args.sessions} enrolled in {took['enrolments s']:.1f} s")
    settings = settings.replace(login__attempts_per_address=100_000, login__attempts_per_minute=100_000)
    phases: dict[str, Any] = {}
    async with running(settings) as up:
        assert up.portal is not None
        portal = f"http://{up.portal[0]}:{up.portal[1]}"
        say(f"{name}: portal at {portal}; {args.sessions} sessions logging in from the load process")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", portal, "--sessions", str(args.sessions), "--seconds",
            str(args.seconds), "--class-start", str(args.class_start), "--alone", str(args.alone),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**24)
        assert proc.stdin is not None and proc.stdout is not None
        marks, load = (0.0, 0.0, 0.0), 0.0
        counted = Counter[str]()
        event.listen(up.kernel.engine, "before_cursor_execute", lambda *_: counted.update(("statements",)))
        event.listen(up.kernel.engine, "commit", lambda *_: counted.update(("commits",)))
        async for line in proc.stdout:
            message = json.loads(line)
            if "say" in message:
                say(f"{name}: {message['say']}")
            elif "ready" in message:
                await shipped(up.kernel)
                marks = (time.perf_counter(), cpu_seconds(), postgres_cpu())
                load = os.getloadavg()[0]
                counted.clear()
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            elif "phase" in message:
                wall = time.perf_counter() - marks[0]
                message["portal_cores"] = (cpu_seconds() - marks[1]) / wall
                message["postgres_cores"] = (postgres_cpu() - marks[2]) / wall
                message["load_before"], message["load_after"] = load, os.getloadavg()[0]
                requests = sum(m["requests"] for m in message["measures"].values())
                message["statements_per_request"] = counted["statements"] / max(requests, 1)
                message["commits_per_request"] = counted["commits"] / max(requests, 1)
                phases[message["phase"]] = message
                say(f"{name}: {message['phase']}")
                for measure, got in message["measures"].items():
                    say(f"{name}:   {measure:<13} {got['requests']:>7,} in {message['elapsed']:.1f} s "
                        f"{got['per_s']:>7,.0f}/s  p50 {got['p50_ms']:7.1f} ms  p99 {got['p99_ms']:7.1f} ms  "
                        f"errors {got['errors']}{' ' + str(got['error_kinds']) if got['errors'] else ''}")
                say(f"{name}:   database statements per request {message['statements_per_request']:.1f}, commits "
                    f"{message['commits_per_request']:.1f} (audit shipping included)")
                say(f"{name}:   CPU in cores: portal process {message['portal_cores']:.2f}, load process "
                    f"{message['client_cores']:.2f}" + (f", postgres {message['postgres_cores']:.2f}"
                                                         if name == "postgres" else "")
                    + f"; machine load average {load:.1f} before, {message['load_after']:.1f} after")
        if await proc.wait() != 0:
            raise SystemExit(f"{name}: the load process failed ({proc.returncode})")
    return {"setup": took, "phases": phases}


def table(results: dict[str, Any]) -> list[str]:
    rows = ["| database | phase | measure | requests | per second | p50 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|---|---|"]
    for db, got in results.items():
        for phase_name in PHASES:
            for measure, m in got["phases"].get(phase_name, {}).get("measures", {}).items():
                rows.append(f"| {db} | {phase_name} | {measure} | {m['requests']:,} | {m['per_s']:,.0f} | "
                            f"{m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['errors']} |")
    return rows


async def main(args: argparse.Namespace) -> None:
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if unknown := set(databases) - {"sqlite", "postgres"}:
        raise SystemExit(f"--databases: unknown {', '.join(sorted(unknown))} (sqlite, postgres)")
    began = time.perf_counter()
    hash_pin(pin(0))
    production = time.perf_counter() - began
    began = time.perf_counter()
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    pin_hashes = [cheap.hash(pin(i)) for i in range(args.sessions)]
    say(f"{args.sessions} PINs hashed with cheap argon2 parameters in {time.perf_counter() - began:.1f} s (one "
        f"with the production parameters takes {production * 1e3:.0f} ms); {os.cpu_count()} cores")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-learning-") as tmp:
        for db in databases:
            admin = ""
            url = f"sqlite:///{Path(tmp) / 'sqlite.db'}"
            if db == "postgres":
                url, admin = scratch_postgres(args.postgres)
            try:
                results[db] = await run_database(db, url, args, pin_hashes, Path(tmp))
            finally:
                if admin:
                    drop_postgres(url, admin)
    say("")
    say(f"{args.sessions} inmate sessions; one session alone for {args.alone:g} s each; class start: one lesson "
        f"page each over {args.class_start:g} s; all: back to back for {args.seconds:g} s each")
    for row in table(results):
        say(row)
    goal: dict[str, Any] = {}
    for db, got in results.items():
        for phase_name in (ALL_LESSONS, CLASS_START, ALONE_LESSONS):
            p99 = got["phases"].get(phase_name, {}).get("measures", {}).get("lesson page", {}).get("p99_ms")
            if p99 is None:
                continue
            met = p99 < GOAL_MS
            goal[f"{db}, {phase_name}"] = {"p99_ms": p99, "met": met}
            say(f"goal p99 < {GOAL_MS:.0f} ms for a lesson page, {db}, {phase_name}: {p99:.1f} ms, "
                f"{'met' if met else 'not met'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "machine": {"nproc": os.cpu_count(), "date": datetime.now(UTC).isoformat(timespec="seconds")},
            "options": {"sessions": args.sessions, "seconds": args.seconds, "class_start": args.class_start,
                        "alone": args.alone},
            "goal_ms": GOAL_MS, "goal": goal, "results": results}, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the lessons and the quiz phase")
    parser.add_argument("--class-start", type=float, default=10.0,
                        help="seconds over which the first lesson pages are spread")
    parser.add_argument("--alone", type=float, default=3.0,
                        help="seconds one session reads, then answers, alone (the time without a queue)")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--json", default="bench/results/learning.json", help="empty: write no file")
    parser.add_argument("--client", default="", help=argparse.SUPPRESS)
    use_uvloop()
    arguments = parser.parse_args()
    asyncio.run(client_main(arguments) if arguments.client else main(arguments))
