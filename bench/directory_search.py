"""The directory of release services: search latency over 20,000 HSDS services, on SQLite and PostgreSQL, one run.

Run alone: python bench/directory_search.py [--services 20000] [--postgres URL] [--searches 400]
Or as a section of bench/library.py (`--sections library,directory`).

The services are made here, shaped like a real feed: a name and a description of 40-80 words in one of the
portal's four languages (drawn from word lists of release-service vocabulary), one or two categories, a city and
its region, one to three languages spoken, one in five open to people with a conviction. They are imported as
`gatehouse resources import` imports (one transaction, the search index written per portal language), into a
fresh SQLite file and, when a PostgreSQL server is named (`--postgres`, else GATEHOUSE_TEST_POSTGRES_URL), a
fresh database on it. Then `--searches` searches, the same sequence on both: one or two words in the reader's
language (a third with a category filter, one in five with a place, one in ten "open to people with a
conviction"), and one in ten with filters and no words, each in its own session as a portal request reads.
Figures: import seconds and services per second, and search p50 / p99 / max in ms, per database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from audit_writer import drop_postgres, scratch_postgres  # noqa: E402

from gatehouse.db.engine import make_engine, session_factory, upgrade, utcnow  # noqa: E402
from gatehouse.resources import directory, hsds  # noqa: E402
from gatehouse.resources.search import Filters, search  # noqa: E402

Row = tuple[str, ...]
WORDS = {
    "nl": ("woning", "sociale", "huur", "werk", "opleiding", "begeleiding", "schulden", "uitkering", "inschrijving",
           "afspraak", "identiteitskaart", "gezondheid", "verslaving", "advocaat", "gezin", "kinderen", "hulp",
           "vrijlating", "budget", "verzekering", "loket", "aanvraag", "dienst", "stad", "gemeente", "sollicitatie"),
    "fr": ("logement", "social", "loyer", "emploi", "formation", "accompagnement", "dettes", "allocation",
           "inscription", "rendez-vous", "identité", "santé", "dépendance", "avocat", "famille", "enfants", "aide",
           "libération", "budget", "assurance", "guichet", "demande", "service", "ville", "commune", "candidature"),
    "de": ("Wohnung", "sozial", "Miete", "Arbeit", "Ausbildung", "Begleitung", "Schulden", "Leistung",
           "Anmeldung", "Termin", "Ausweis", "Gesundheit", "Sucht", "Anwalt", "Familie", "Kinder", "Hilfe",
           "Entlassung", "Haushalt", "Versicherung", "Schalter", "Antrag", "Dienst", "Stadt", "Gemeinde",
           "Bewerbung"),
    "en": ("housing", "social", "rent", "work", "training", "support", "debt", "benefit", "registration",
           "appointment", "identity", "health", "addiction", "lawyer", "family", "children", "help", "release",
           "budget", "insurance", "office", "application", "service", "city", "council", "job"),
}
CITIES = (("Bruxelles", "Bruxelles-Capitale"), ("Brussel", "Brussel"), ("Antwerpen", "Vlaanderen"),
          ("Gent", "Vlaanderen"), ("Leuven", "Vlaanderen"), ("Brugge", "Vlaanderen"), ("Hasselt", "Vlaanderen"),
          ("Mechelen", "Vlaanderen"), ("Liège", "Wallonie"), ("Namur", "Wallonie"), ("Charleroi", "Wallonie"),
          ("Mons", "Wallonie"), ("Arlon", "Wallonie"), ("Eupen", "Ostbelgien"), ("Sankt Vith", "Ostbelgien"))


def say(text: str) -> None:
    print(text, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def feed(count: int, seed: int = 7) -> hsds.Directory:
    rng = random.Random(seed)
    organizations = tuple(hsds.Organization(id=f"org-{n}", name=f"Organisation {n}") for n in range(count // 10 + 1))
    services = []
    for n in range(count):
        language = rng.choice(tuple(WORDS))
        words = WORDS[language]
        city, region = rng.choice(CITIES)
        spoken = (language, *rng.sample(("nl", "fr", "de", "en", "ar", "tr"), rng.randint(0, 2)))
        attributes = tuple(hsds.Attribute(id=f"att-{n}-{c}", taxonomy_term=hsds.category_term(c))
                           for c in rng.sample(hsds.CATEGORIES, rng.randint(1, 2)))
        if rng.random() < 0.2:
            attributes += (hsds.Attribute(id=f"att-{n}-conviction", taxonomy_term=hsds.CONVICTION_TERM),)
        services.append(hsds.Service(
            id=f"svc-{n}", organization_id=f"org-{n // 10}", name=" ".join(rng.choices(words, k=3)).capitalize(),
            description=" ".join(rng.choices(words, k=rng.randint(40, 80))) + ".",
            assured_date=date(2026, 1, 1),
            languages=tuple(hsds.Language(id=f"lang-{n}-{code}", name=code, code=code)
                            for code in dict.fromkeys(spoken)),
            locations=(hsds.Location(id=f"loc-{n}", name=city, addresses=(
                hsds.Address(id=f"adr-{n}", address_1=f"Rue {n}", city=city, region=region, country="BE"),)),),
            attributes=attributes))
    return hsds.Directory(organizations, tuple(services))


def searches(count: int, seed: int = 11) -> list[tuple[str, str, Filters]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        language = rng.choice(tuple(WORDS))
        words = "" if rng.random() < 0.1 else " ".join(rng.sample(WORDS[language], rng.randint(1, 2)))
        city, region = rng.choice(CITIES)
        out.append((words, language, Filters(
            category=rng.choice(hsds.CATEGORIES) if rng.random() < 1 / 3 else "",
            place=rng.choice((city, region)) if rng.random() < 0.2 else "",
            conviction=rng.random() < 0.1)))
    return out


@contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A scratch database on the server, dropped afterwards (the other benches' helpers)."""
    url, admin = scratch_postgres(server)
    try:
        yield url
    finally:
        drop_postgres(url, admin)


def measure(url: str, data: hsds.Directory, todo: list[tuple[str, str, Filters]]) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        factory = session_factory(engine)
        started = time.perf_counter()
        with factory.begin() as session:
            directory.import_directory(session, data, now=utcnow())
        imported = time.perf_counter() - started
        times, found = [], []
        for text, language, filters in todo[:20]:  # warm the caches and the connection pool
            with factory() as session:
                search(session, text, language, filters)
        for text, language, filters in todo:
            started = time.perf_counter()
            with factory() as session:
                found.append(len(search(session, text, language, filters)))
            times.append((time.perf_counter() - started) * 1e3)
    finally:
        engine.dispose()
    return {"import_s": imported, "per_s": len(data.services) / imported, "p50_ms": percentile(times, 0.5),
            "p99_ms": percentile(times, 0.99), "max_ms": max(times), "median_results": statistics.median(found),
            "empty": sum(1 for n in found if n == 0)}


async def directory_section(args: argparse.Namespace, results: dict[str, Any]) -> list[Row]:
    count, asked = args.services, args.directory_searches
    data = await asyncio.to_thread(feed, count)
    todo = searches(asked)
    rows: list[Row] = [("database", "import s", "services/s", "search p50 ms", "search p99 ms", "max ms",
                        "median results")]
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-directory-") as folder:
        say(f"directory: {count:,} services, {asked} searches, SQLite")
        figures["sqlite"] = await asyncio.to_thread(measure, f"sqlite:///{Path(folder) / 'directory.db'}", data, todo)
    server = args.postgres or os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", "")
    if server:
        say(f"directory: {count:,} services, {asked} searches, PostgreSQL")
        with postgres_database(server) as url:
            figures["postgresql"] = await asyncio.to_thread(measure, url, data, todo)
    else:
        say("directory: no PostgreSQL named (--postgres or GATEHOUSE_TEST_POSTGRES_URL); SQLite only")
    for name, got in figures.items():
        rows.append((name, f"{got['import_s']:.1f}", f"{got['per_s']:,.0f}", f"{got['p50_ms']:.1f}",
                     f"{got['p99_ms']:.1f}", f"{got['max_ms']:.1f}", f"{got['median_results']:.0f}"))
    if len(figures) == 2:
        a, b = figures["postgresql"], figures["sqlite"]
        say(f"ratios PostgreSQL / SQLite: search p50 {a['p50_ms'] / b['p50_ms']:.2f}, "
            f"p99 {a['p99_ms'] / b['p99_ms']:.2f}, import {a['import_s'] / b['import_s']:.2f}")
    results["directory"] = {"services": count, "searches": asked, **figures}
    return rows


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--services", type=int, default=20_000, help="services in the directory")
    parser.add_argument("--directory-searches", type=int, default=400, help="searches per database")
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL (SQLAlchemy form)")


async def _alone(args: argparse.Namespace) -> None:
    rows = await directory_section(args, {})
    say("")
    say("| " + " | ".join(rows[0]) + " |")
    say("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        say("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    options = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_options(options)
    asyncio.run(_alone(options.parse_args()))
