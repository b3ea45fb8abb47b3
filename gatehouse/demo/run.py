"""`gatehouse demo`: a throw-away facility with terminals, inmates, rules and a content site, all on loopback."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import shutil
import signal
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.ca import ca_cert_file
from gatehouse.cli.ops import apply_run_options, initialise
from gatehouse.curation import asking
from gatehouse.db.engine import utcnow
from gatehouse.demo import library
from gatehouse.demo.content import SITES, content_app, issue_origin_ca
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.kernel import Kernel
from gatehouse.learning import catalog, enrolment
from gatehouse.learning.package import load_package
from gatehouse.resources import directory, hsds, jobs, plans
from gatehouse.settings import Settings
from gatehouse.staff import add_staff
from gatehouse.terminals import add_terminal

INMATES = [
    ("A1001", "Jan Peeters", "nl", ["learners"], "1234"),
    ("A1002", "Marie Dubois", "fr", ["learners", "jobs"], "2345"),
    ("A1003", "Lukas Schmidt", "de", [], "3456"),
]
TERMINALS = [("cell-a1", "127.0.0.1", "cell", "A"), ("classroom-1", "127.0.0.2", "classroom", "school")]
POLICY = """\
rules:
  - id: demo-learning
    description: course platform
    allow: [learn.demo.test]
    quota: learning
  - id: demo-reentry
    description: job and housing resources
    allow: [jobs.demo.test, housing.demo.test]
    quota: jobs
  - id: demo-no-mail
    description: no contact with the outside by mail
    deny: [mail.demo.test]
  - id: demo-course-job-application
    description: practice job adverts, for learners in the course Applying for a job
    allow: [games.demo.test]
    paths: [/vacancies, /examples]
    methods: [GET, HEAD]
    courses: [job-application]
    quota: learning
  - id: demo-library
    description: the public library, at library terminals
    allow: [library.demo.test]
    terminals: [library]
quotas:
  default: {general: 60, jobs: 120, learning: unlimited}
  groups:
    jobs: {jobs: 180}
"""


CHROMIUM_QUIET = (
    "--no-first-run", "--no-default-browser-check", "--disable-default-apps",  # no welcome tabs and no app installs
    "--disable-background-networking",  # update checks, safe browsing lists, translate and metrics uploads
    "--disable-component-update",  # the components of chrome://components (CRLSets, hints, models)
    "--disable-sync",  # no Google account sync
    "--disable-client-side-phishing-detection",  # its model downloads
    "--disable-domain-reliability",  # reliability beacons to Google
    "--disable-component-extensions-with-background-pages",  # built-in extensions that call home
    "--metrics-recording-only",  # usage statistics kept, never sent
    "--disable-features=Translate,OptimizationHints,OptimizationGuideModelDownloading,MediaRouter,"
    "DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
    "InterestFeedContentSuggestions,NetworkTimeServiceQuerying",
)
"""Chromium's own services switched off, so the gateway sees what the person asks for: left on, they made 116 of
170 denials in a quarter of an hour (`*.googleapis.com`, `accounts.google.com`). A kiosk gets the same from the
managed policy in deploy/chromium-policy.json. No flag stops Chromium 156 from listing the Google accounts of a
new profile (accounts.google.com, retried with backoff) or one update check (update.googleapis.com): those stay,
and audit.browser_service_hosts keeps them out of alerts and the busiest sites."""


def chromium_command(proxy: tuple[str, int], spki: str, portal_url: str) -> list[str]:
    """The command the demo prints: a throw-away profile, the gateway as proxy, the facility CA trusted."""
    return ["chromium", "--user-data-dir=$(mktemp -d)", f"--proxy-server={proxy[0]}:{proxy[1]}",
            f"--ignore-certificate-errors-spki-list={spki}", *CHROMIUM_QUIET, portal_url]


STAFF = (("ada", "Ada Admin", ["admin"]), ("sam", "Sam Security", ["security"]),
         ("eva", "Eva Education", ["education"]), ("vic", "Vic Visits", ["supervisor"]))
STAFF_PASSWORD = "gatehouse-demo-2026"
COURSES = Path(__file__).parent / "courses"
"""The demo's course packages, imported and published at start; each folder is one package."""
ENROLMENTS = (("digital-basics", "A1001"),)
"""(course, inmate) enrolled by the education account at start; the job course's site opens only on enrolment."""
EDUCATOR = "eva"
DIRECTORY = Path(__file__).parent / "directory" / "services.json"
"""The demo's HSDS feed, imported at start as `gatehouse resources import` would."""
JOBS = (
    {"title": "Kitchen help", "employer": "Brasserie De Kaai", "region": "Brussels", "city": "Brussel",
     "contract": "fixed-term", "hours": "full-time", "fair_chance": "yes", "language": "nl",
     "description": "Preparing vegetables, washing up, helping the cook at lunch.",
     "how_to_apply": "Ask your job coach to send your CV; an interview can be arranged before release."},
    {"title": "Magasinier / Magazijnier", "employer": "Logistique du Canal", "region": "Brussels",
     "city": "Anderlecht", "contract": "temporary", "hours": "shifts", "fair_chance": "yes", "language": "fr",
     "description": "Préparer des commandes, charger et décharger les camions. Formation au chariot élévateur.",
     "how_to_apply": "Envoyez votre CV par le service social de la prison."},
    {"title": "Fahrradmechaniker (Ausbildung)", "employer": "Velo-Werkstatt Eupen", "region": "Ostbelgien",
     "city": "Eupen", "contract": "apprenticeship", "hours": "full-time", "fair_chance": "no", "language": "de",
     "description": "Reparatur und Wartung von Fahrrädern; eine Ausbildung über zwei Jahre.",
     "how_to_apply": "Bewerbung mit Lebenslauf über den Sozialdienst."},
)
"""Job offers posted at start, open for a month."""
SUPPORTED = "A1002"
"""The inmate whose release the education account supports (and whose plan it may read)."""
REQUESTS = (("A1003", "https://library.demo.test/", "course", "E-books for my Dutch course."),)
"""(inmate, URL, purpose, reason) waiting in the education staff's queue at start."""


def spki_hash(cert_file: Path) -> str:
    """The value for Chromium's --ignore-certificate-errors-spki-list (leaf certificates share the CA key)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def populate(settings: Settings) -> None:
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            facility = ensure_facility(session, settings)
            for name, address, kind, unit in TERMINALS:
                add_terminal(session, facility, name=name, address=address, kind=kind, unit=unit)
            for number, name, language, groups, pin in INMATES:
                add_inmate(session, facility, number=number, name=name, language=language, groups=groups, pin=pin)
            for username, name, roles in STAFF:
                add_staff(session, username=username, roles=roles, password=STAFF_PASSWORD, display_name=name,
                          now=utcnow())
            events = _courses(session)
            events.append(library.shelve(session, settings.data_dir))
            events.append(_directory(session))
            events += _jobs(session, settings)
            for number, url, purpose, reason in REQUESTS:
                asking.ask(session, inmate=number, url=url, purpose=purpose, reason=reason, now=utcnow(),
                           limit=settings["curation.max_open_requests"])
                events.append(AuditEvent(Tag.CURATION_REQUEST_ASKED, "cli", actor=number, decision="allow",
                                         reason=f"{number} asks for {url}; demo start"))
        for event in events:
            kernel.record_now(event)
    finally:
        kernel.engine.dispose()
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    (settings.policy_dir / "demo.yaml").write_text(POLICY, encoding="utf-8")


def _directory(session: Session) -> AuditEvent:
    """The demo's directory of release services (an HSDS feed); two of them point at demo sites."""
    done = directory.import_directory(session, hsds.read(DIRECTORY), now=utcnow())
    return AuditEvent(Tag.RESOURCES_IMPORTED, "cli", actor="demo", decision="allow",
                      reason=f"{done}; from {DIRECTORY.name}; demo start")


def _jobs(session: Session, settings: Settings) -> list[AuditEvent]:
    """The demo's job offers, posted by the education account and open for a month, and that account supporting
    one inmate's release (so it may read their plan)."""
    today = datetime.now(ZoneInfo(settings["facility.timezone"])).date()
    closes = (today + timedelta(days=30)).isoformat()
    events = []
    for fields in JOBS:
        row = jobs.post(session, dict(fields, closes_on=closes), by=EDUCATOR, today=today, now=utcnow())
        events.append(AuditEvent(Tag.RESOURCES_JOB_POSTED, "cli", actor=EDUCATOR, decision="allow",
                                 reason=f"job {row.id}: {row.title} at {row.employer}; demo start"))
    inmate, _new = plans.add_supporter(session, SUPPORTED, EDUCATOR, by=EDUCATOR, now=utcnow())
    events.append(AuditEvent(Tag.RESOURCES_SUPPORTER_ADDED, "cli", actor=EDUCATOR, decision="allow",
                             reason=f"{EDUCATOR} supports the release of {inmate.number}; demo start"))
    return events


def _courses(session: Session) -> list[AuditEvent]:
    """Import and publish the demo's courses and make its enrolments; what the CLI would record for them."""
    events = []
    for folder in sorted(p for p in COURSES.iterdir() if (p / "course.yaml").is_file()):
        made = catalog.import_course(session, load_package(folder), by="demo", now=utcnow())
        events.append(AuditEvent(Tag.LEARNING_COURSE_IMPORTED, "cli", actor="demo", decision="allow",
                                 reason=f"course {folder.name} version {made.number} ({made.status}); demo start"))
    for course, inmate in ENROLMENTS:
        outcome = enrolment.enrol(session, course=course, inmate=inmate, by=EDUCATOR, now=utcnow())
        events.append(AuditEvent(Tag.LEARNING_ENROLMENT_ADDED, "cli", actor=EDUCATOR, decision="allow",
                                 reason=outcome.summary))
        events.append(AuditEvent(Tag.LEARNING_GRANT_OPENED, "cli", actor=EDUCATOR, decision="allow",
                                 reason=f"{inmate}: the sites of course {course} open"))
    return events


async def _demo(data_dir: Path, args: argparse.Namespace) -> None:
    from gatehouse.cli.serve import running

    origin_ca, tls = issue_origin_ca(data_dir / "demo-origin")
    content = web.AppRunner(content_app(), access_log=None)
    await content.setup()
    sites = [web.TCPSite(content, "127.0.0.1", 0), web.TCPSite(content, "127.0.0.1", 0, ssl_context=tls)]
    for site in sites:
        await site.start()
    plain_port, tls_port = (site._server.sockets[0].getsockname()[1] for site in sites)  # type: ignore[union-attr]
    settings = initialise(data_dir, {"facility.name": "Demo Facility"}, quiet=True)
    populate(settings)
    settings = apply_run_options(settings, args)
    resolve = [f"{host}:80=127.0.0.1:{plain_port}" for host in SITES]
    resolve += [f"{host}:443=127.0.0.1:{tls_port}" for host in SITES]
    settings = settings.replace(proxy__resolve=resolve, proxy__upstream_ca_file=str(origin_ca))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(settings) as up:
            assert up.portal is not None and up.proxy is not None  # both planes run in the demo
            _print_welcome(settings, up.portal, up.proxy)
            await stop.wait()
            print("stopping the demo...", flush=True)
    finally:
        await content.cleanup()


def _print_welcome(settings: Settings, portal: tuple[str, int], proxy: tuple[str, int]) -> None:
    portal_url = f"http://{portal[0]}:{portal[1]}/"
    lines = [
        "",
        "Gatehouse demo is running. Press Ctrl+C to stop.",
        f"  data dir:  {settings.data_dir} (thrown away on exit)",
        f"  portal:    {portal_url}",
        f"  gateway:   {proxy[0]}:{proxy[1]} (the terminals' proxy)",
        "",
        "Terminals: cell-a1 = 127.0.0.1 (cell), classroom-1 = 127.0.0.2 (classroom).",
        "Inmates (number / PIN / language):",
        *[f"  {n} / {pin} / {lang}  {name}" for n, name, lang, _, pin in INMATES],
        "",
        "Try it in a browser (its traffic comes from 127.0.0.1, the cell terminal):",
        *_shell_lines(chromium_command(proxy, spki_hash(ca_cert_file(settings.ca_dir)), portal_url)),
        "Log in, then open http://learn.demo.test/ or https://jobs.demo.test/ (allowed),",
        "https://mail.demo.test/ (denied by a rule) or http://games.demo.test/ (no rule: blocked).",
        "A blocked page offers to ask for the site: A1003 has asked for https://library.demo.test/ already;",
        "eva reviews and proposes it (Site requests), sam approves it (Proposals), then it opens for A1003.",
        f"The offline library (no internet needed): {portal_url}library",
        f"Release: the directory of services {portal_url}resources, job offers {portal_url}jobs, and each inmate's",
        f"plan {portal_url}plan (eva supports A1002's release and may read that plan).",
        f"Or with curl: curl -x {proxy[0]}:{proxy[1]} http://learn.demo.test/",
        f"The facility CA for terminals: {portal_url}ca.pem",
        "Audit log: gatehouse audit export --data-dir <data dir above> (while the demo runs)",
        "",
        f"Staff log in at {portal_url}staff/login with password {STAFF_PASSWORD!r} (one account per role):",
        *[f"  {username:6} {', '.join(roles)}" for username, _, roles in STAFF],
        "At first login each account enrols an authenticator app (QR code and key shown on the page).",
        "",
    ]
    print("\n".join(lines), flush=True)


def _shell_lines(words: list[str], width: int = 110) -> list[str]:
    """Words as shell lines of at most `width` characters, continued with a backslash. The words hold no
    spaces (a value with a comma stays one word), so they are printed as they are."""
    lines: list[str] = []
    current = "  "
    for word in words:
        if current.strip() and len(current) + 1 + len(word) > width - 2:
            lines.append(current + " \\")
            current = "    "
        current += ("" if not current.strip() else " ") + word
    return [*lines, current]


def run_demo(args: argparse.Namespace) -> int:
    from gatehouse.cli.serve import use_uvloop

    given = getattr(args, "data_dir_given", False)
    data_dir = Path(args.data_dir) if given else Path(tempfile.mkdtemp(prefix="gatehouse-demo-"))
    if given and (data_dir / "gatehouse.db").exists():
        print(f"gatehouse: {data_dir} already holds a database; the demo needs a new folder", file=sys.stderr)
        return 2
    use_uvloop()
    try:
        asyncio.run(_demo(data_dir, args))
    except OSError as exc:
        print(f"gatehouse: cannot start the demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep and not given:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0
