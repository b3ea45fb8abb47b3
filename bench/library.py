"""Offline libraries beside kiwix-serve (a ZIM of 100,000 articles) and directory search (20,000 services), one run.

Run: python bench/library.py [--articles 100000] [--work DIR] [--rounds 3] [--seconds 15] [--connections 16]
     [--searches 200] [--search-connections 4] [--redis URL] [--no-pin] [--sections library,directory]
     [--services 20000] [--postgres URL] [--json FILE]
Needs Debian's kiwix-tools (`apt-get install kiwix-tools`, for /usr/bin/kiwix-serve).

The ZIM is written with libzim's own Creator: articles shaped like an encyclopedia's (a title, an infobox,
sections of prose, ~15 links to other articles, a "See also" list, references that leave the archive, a figure in
one article of four, the stylesheet and script link a Wikipedia ZIM has), a few KB of HTML each, redirects from
bare names, a main page, the title index and the full-text index; the words of each article are drawn by rank,
so a query word is in most articles, in some or in one or two in a hundred. It is kept in `--work DIR` under a
name that says its size and the generator's version, with the seconds its build took beside it, so a second run
with the same --work does not build it again (without --work, a temp dir that goes at the end: built every run).

Gatehouse runs in this process as `gatehouse run` starts it (portal and gateway; the audit log on, every article
and search recorded and made durable; the `library` quota metered, 600 minutes a day), with the ZIM put on the
shelf by the shelf service (hard-linked into a fresh data dir) and one inmate logged in at a cell terminal.
kiwix-serve serves the same file in the same run. When the machine has two cores or more, both servers are
pinned to core 1 and the load to core 0, so each server has the same one core. The load comes from a child
process (this script with --client), an aiohttp client; in each round, for each server in turn (the order
alternating round by round):
  articles  --connections keep-alive connections requesting random articles (uniform over the archive, the same
            sequence for both servers in a round) for --seconds after a 2 s warm-up: pages/s, p50 and p99
  search    --search-connections connections running --searches realistic queries (common words, two-word
            queries, names, title prefixes, a miss): Gatehouse's search page (full-text results and title
            suggestions in one page); kiwix-serve's full-text page and its title suggestions, asked one after
            the other as one search, each also timed alone
Each answer must be a 200 (for Gatehouse, not a way to the login), or it counts as an error. Figures are medians
over the rounds; the ratios are Gatehouse / kiwix-serve: pages/s (the goal is at least 0.5), pages per CPU second
(the same ratio with the server's CPU in the denominator, steadier on a shared machine), and search p50 and p99.
Each server's CPU is read over exactly the counted part of a measure (the load process says when it starts and
ends) and printed in cores and in CPU milliseconds per page. The two searches do not do the same work: the
portal's page lists titles, kiwix-serve's counts every match and shows a snippet of each result.

main() runs its sections in order (`SECTIONS`) and prints each one's table; a section is an async function of
the options that returns its rows. The second section, `directory` (bench/directory_search.py), measures search
in the directory of release services: 20,000 HSDS services on SQLite and PostgreSQL (`--services`,
`--directory-searches`, `--postgres`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import itertools
import json
import os
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from directory_search import add_options, directory_section  # noqa: E402
from proxies import cpu_seconds, free_port, tree, wait_port  # noqa: E402

FORMAT = 2
"""The generator's version, in the cached file's name: a change to the articles makes a new file."""
LIBRARY = "encyclopedia"
SERVER_CORE, CLIENT_CORE = 1, 0
WARMUP = 2.0
RESULTS = 20
"""Results per search, as the portal asks for them (portal.library.services.RESULTS)."""
KIWIX = "/usr/bin/kiwix-serve"
INMATE, PIN, CELL = "A100", "2468", "127.0.0.1"


def say(text: str) -> None:
    print(text, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- the articles ------------------------------------------------------------------------------------------------

OPENINGS = ("ka", "re", "do", "ma", "vi", "to", "bre", "su", "lo", "ga", "ne", "ha", "ry", "be", "se", "fa", "ze",
            "ra", "te", "ve", "co", "li", "bo", "me", "sta", "gri", "pe", "dra", "mu", "fe", "ta", "wy", "lu", "ni",
            "so", "de", "pa", "gu", "tho", "ki", "na", "fro", "sva", "ji", "ro", "cle", "mi", "ple")
"""Consonants then one vowel: two of these and an ending read back one way only, so names never collide."""
ENDINGS = ("dol", "mar", "vis", "tor", "sel", "wick", "dun", "gar", "nes", "mont", "ber", "ith", "ul", "ov", "an",
           "el", "os", "rin", "tem", "vel", "cor", "ath", "lin", "mer", "ton", "hal", "drak", "ia", "sk", "fen",
           "ore", "tal", "wyn", "stad", "holm", "burg", "dal", "ness", "ey", "mouth", "ford", "by", "thorpe", "wald",
           "heim", "gaard", "ac", "ix", "um")
FIRST_NAMES = ("Anna", "Pieter", "Marie", "Jan", "Sofia", "Karim", "Elena", "Tomas", "Ingrid", "Samuel", "Lucia",
               "Hendrik", "Amira", "Viktor", "Greta", "Omar")
KINDS = ("{n}", "{n} River", "{n} (village)", "History of {n}", "{n} Abbey", "Battle of {n}", "{n} language",
         "{n} railway station", "{f} {n}", "{n} (plant)", "{n} Castle", "Lake {n}")
"""Title shapes, taken in turn; the first has no redirect, the others get one from the bare name now and then."""
NOUNS = ("town", "century", "population", "family", "church", "war", "village", "city", "river", "king", "queen",
         "trade", "railway", "school", "museum", "language", "species", "plant", "bird", "mountain", "harbour",
         "bridge", "festival", "music", "painter", "writer", "castle", "abbey", "valley", "battle", "army", "treaty",
         "province", "district", "island", "coast", "forest", "farm", "mill", "market", "road", "canal", "port",
         "university", "library", "hospital", "station", "line", "dynasty", "empire", "republic",
         "council", "election", "law", "court", "bishop", "monastery", "cathedral", "tower", "wall", "gate",
         "garden", "park", "lake", "glacier", "climate", "rainfall", "winter", "summer", "harvest", "wheat",
         "barley", "wine", "cheese", "bread", "fish", "sheep", "cattle", "horse", "wool", "cloth", "iron", "coal",
         "copper", "salt", "glass", "pottery", "coin", "tax", "census", "dialect", "grammar", "alphabet", "poem",
         "novel", "theatre", "opera", "film", "newspaper", "football", "team", "league", "season", "record",
         "engine", "factory", "industry", "workers", "strike", "union", "flood", "fire", "earthquake", "plague",
         "famine", "migration", "settlement", "colony", "border", "frontier", "siege", "fortress", "navy",
         "ship", "voyage", "map", "survey", "leaf", "flower", "seed", "root", "bark", "insect", "beetle", "moth",
         "wolf", "bear", "deer", "fox", "owl", "eagle", "heron", "salmon", "trout")
ADJECTIVES = ("northern", "southern", "eastern", "western", "ancient", "medieval", "modern", "small", "large",
              "coastal", "royal", "rural", "urban", "early", "late", "famous", "local", "national", "regional",
              "wooden", "stone", "narrow", "broad", "deep", "high", "low", "old", "new", "common", "rare",
              "important", "main", "former", "historic", "traditional", "popular", "public", "private", "annual",
              "religious", "military", "agricultural", "industrial", "cultural", "wild", "native", "seasonal")
VERBS = ("was built", "was founded", "was destroyed", "was rebuilt", "is described", "is known", "is located",
         "was named", "was recorded", "was mentioned", "was restored", "was extended", "was sold", "was given",
         "was opened", "was closed", "is used", "was studied", "was painted", "was written")
PLACES = ("in the north", "near the coast", "on the river", "in the hills", "along the old road", "in the valley",
          "by the lake", "at the border", "in the capital", "on the island", "in the forest", "under the castle")
TIMES = ("in the twelfth century", "in 1348", "during the war", "after the flood", "in the reign of the king",
         "before the railway came", "in 1871", "in the early modern period", "in the nineteenth century",
         "after 1945", "in 1603", "during the famine", "in the middle ages", "in 1923")
HEADINGS = ("Etymology", "History", "Geography", "Economy", "Culture", "Population", "Transport", "Notable people",
            "Description", "Distribution", "Legacy", "Architecture")
NAME_SPACE = len(OPENINGS) ** 2 * len(ENDINGS)
"""112,896 names, one per article (see `name`)."""
STRIDE = 7919
"""Prime, so i -> i * STRIDE mod NAME_SPACE is one to one: article i's name is unique and names look scattered."""
STYLE = ("body{font-family:sans-serif;max-width:60em;margin:auto;line-height:1.5}"
         ".infobox{float:right;border:1px solid #aaa;margin:0 0 1em 1em;font-size:90%}"
         ".infobox th{text-align:left;padding-right:1em}figure{margin:1em 0}.references{font-size:90%}")
FIGURES = 64


def name(i: int) -> str:
    """The proper name of article `i` (0 <= i < NAME_SPACE), unique to it."""
    j = (i * STRIDE + 12345) % NAME_SPACE
    first, rest = divmod(j, len(OPENINGS) * len(ENDINGS))
    second, ending = divmod(rest, len(ENDINGS))
    return (OPENINGS[first] + OPENINGS[second] + ENDINGS[ending]).capitalize()


def title(i: int) -> str:
    return KINDS[i % len(KINDS)].format(n=name(i), f=FIRST_NAMES[i // len(KINDS) % len(FIRST_NAMES)])


def path_of(text: str) -> str:
    return text.replace(" ", "_")


def article_path(i: int) -> str:
    return path_of(title(i))


def redirects(i: int) -> bool:
    """Whether the bare name of article `i` leads to it (one article in 25 whose title is more than the name)."""
    return i % 25 == 0 and i % len(KINDS) != 0


def link(i: int) -> str:
    shown = html.escape(title(i))
    return f'<a href="{html.escape(quote(article_path(i)))}" title="{shown}">{shown}</a>'


NOUN_WEIGHTS = tuple(itertools.accumulate(1 / rank for rank in range(1, len(NOUNS) + 1)))
ADJECTIVE_WEIGHTS = tuple(itertools.accumulate(1 / rank for rank in range(1, len(ADJECTIVES) + 1)))


@dataclass(frozen=True, slots=True)
class Words:
    """What one article talks about: a dozen nouns drawn by rank (Zipf: the first nouns of NOUNS are in most
    articles, the last in one or two in a hundred), some adjectives, two places and two times."""

    rng: random.Random
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    places: tuple[str, ...]
    times: tuple[str, ...]

    @classmethod
    def drawn(cls, rng: random.Random) -> Words:
        return cls(rng, tuple(rng.choices(NOUNS, cum_weights=NOUN_WEIGHTS, k=12)),
                   tuple(rng.choices(ADJECTIVES, cum_weights=ADJECTIVE_WEIGHTS, k=8)),
                   tuple(rng.sample(PLACES, 2)), tuple(rng.sample(TIMES, 2)))

    def noun(self) -> str:
        return self.rng.choice(self.nouns)

    def adjective(self) -> str:
        return self.rng.choice(self.adjectives)

    def place(self) -> str:
        return self.rng.choice(self.places)

    def time(self) -> str:
        return self.rng.choice(self.times)


def sentence(w: Words, links: list[int]) -> str:
    """One sentence of encyclopedia prose; some nouns are links to other articles (taken from `links`)."""
    rng = w.rng
    words = [f"The {w.adjective()} {w.noun()}", rng.choice(VERBS), w.place(), w.time()]
    if links and rng.random() < 0.6:
        words.append(f"by the {w.noun()} of {link(links.pop())}")
    if rng.random() < 0.5:
        words.append(f"and the {w.noun()} {rng.choice(VERBS)} with {w.noun()} and {w.noun()}")
    if rng.random() < 0.3:
        words.append(f"({rng.randrange(2, 9000):,} {w.noun()}s in {rng.randrange(1800, 2024)})")
    return " ".join(words) + "."


def article_html(i: int, count: int) -> str:
    """Article `i` of `count`: ~3-6 KB of HTML, as a Wikipedia ZIM's article is laid out."""
    rng = random.Random(i)
    w = Words.drawn(rng)
    heading = html.escape(title(i))
    links = [rng.randrange(count) for _ in range(15)]
    parts = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{heading}</title>'
             '<link rel="stylesheet" href="-/style.css"><script src="-/script.js"></script></head>'
             f'<body class="mw-body"><div id="content"><h1 class="section-heading">{heading}</h1>'
             '<table class="infobox">']
    for label in rng.sample(("Country", "Region", "Founded", "Area", "Population", "Language", "Type", "Length"), 4):
        value = link(links.pop()) if rng.random() < 0.4 else f"{rng.randrange(10, 99_999):,}"
        parts.append(f"<tr><th>{label}</th><td>{value}</td></tr>")
    parts.append(f"</table><p><b>{heading}</b> is a {w.adjective()} {w.noun()} {w.place()}. "
                 + " ".join(sentence(w, links) for _ in range(3)) + "</p>")
    if i % 4 == 0:
        figure = i // 4 % FIGURES
        parts.append(f'<figure><img src="I/figure_{figure}.png" alt="{heading}" width="64" height="64">'
                     f"<figcaption>The {w.noun()} {w.place()}.</figcaption></figure>")
    for section in rng.sample(HEADINGS, rng.randrange(3, 6)):
        parts.append(f'<h2 id="{section.replace(" ", "_")}">{section}</h2>')
        for _ in range(rng.randrange(1, 3)):
            parts.append("<p>" + " ".join(sentence(w, links) for _ in range(rng.randrange(2, 5))) + "</p>")
    parts.append('<h2 id="See_also">See also</h2><ul>')
    parts += [f"<li>{link(rng.randrange(count))}</li>" for _ in range(5)]
    parts.append('</ul><h2 id="References">References</h2><ol class="references">')
    for n in range(rng.randrange(2, 6)):
        parts.append(f'<li><a class="external" href="https://www.example.org/{quote(article_path(i))}/{n}">'
                     f"{w.adjective().capitalize()} {w.noun()}s of {heading}</a>, "
                     f"{rng.randrange(1890, 2024)}.</li>")
    parts.append("</ol></div></body></html>")
    return "".join(parts)


def main_page(count: int) -> str:
    items = "".join(f"<li>{link(i)}</li>" for i in range(0, count, max(1, count // 200)))
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Encyclopedia</title>'
            f'<link rel="stylesheet" href="-/style.css"></head><body><h1>Encyclopedia</h1>'
            f"<p>{count:,} articles.</p><ul>{items}</ul></body></html>")


def png(rgb: bytes, size: int = 64) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + rgb * size for _ in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def queries(count: int) -> list[str]:
    """What readers type: words in most articles (town, river), in some (church, trade) and in one or two in a
    hundred (salmon, heron), two words, an article's name or whole title, a title's first letters, and a word the
    archive does not have."""
    some = [count // 7, count // 3, count // 2, count * 5 // 6, 17, count - 3]
    return ["town", "river", "castle", "battle", "history", "railway station", "medieval church", "wool trade",
            "population census", "northern coast", "salmon", "plague", "heron", "glacier",
            *(name(i) for i in some[:3]), *(title(i) for i in some[3:]),
            *(name(i)[:4] for i in some[:2]), "zyzzogeton"]


# -- building the ZIM with libzim's Creator ---------------------------------------------------------------------

def build_zim(target: Path, count: int) -> None:
    """Write `count` articles and their redirects, figures, stylesheet and main page, indexed for full text."""
    from libzim.writer import Creator, Hint, Item, StringProvider  # type: ignore[import-untyped]

    class Entry(Item):  # type: ignore[misc]
        def __init__(self, path: str, title: str, mimetype: str, content: str | bytes, front: bool) -> None:
            super().__init__()
            self.path, self.title, self.mimetype, self.content, self.front = path, title, mimetype, content, front

        def get_path(self) -> str:
            return self.path

        def get_title(self) -> str:
            return self.title

        def get_mimetype(self) -> str:
            return self.mimetype

        def get_contentprovider(self) -> StringProvider:
            return StringProvider(self.content)

        def get_hints(self) -> dict[Hint, int]:
            return {Hint.FRONT_ARTICLE: self.front, Hint.COMPRESS: not self.mimetype.startswith("image/")}

    partial = target.with_suffix(".part")
    partial.unlink(missing_ok=True)
    creator = Creator(str(partial)).config_indexing(True, "eng").config_nbworkers(max(2, os.cpu_count() or 2))
    began, step = time.perf_counter(), max(1, count // 10)
    with creator:
        creator.set_mainpath("Main_Page")
        for key, value in (("Title", "Encyclopedia"), ("Language", "eng"), ("Name", LIBRARY),
                           ("Description", f"{count:,} encyclopedia articles for the library benchmark"),
                           ("Creator", "Gatehouse"), ("Publisher", "Gatehouse"),
                           ("Date", datetime.now(UTC).date().isoformat())):
            creator.add_metadata(key, value)
        creator.add_illustration(48, png(b"\x1d\x4f\x91", 48))
        creator.add_item(Entry("Main_Page", "Encyclopedia", "text/html", main_page(count), True))
        creator.add_item(Entry("-/style.css", "", "text/css", STYLE, False))
        creator.add_item(Entry("-/script.js", "", "application/javascript", "document.body.className+=' js';", False))
        for k in range(FIGURES):
            creator.add_item(Entry(f"I/figure_{k}.png", "", "image/png", png(bytes((k * 4, 90, 255 - k * 3))), False))
        for i in range(count):
            creator.add_item(Entry(article_path(i), title(i), "text/html", article_html(i, count), True))
            if redirects(i):
                creator.add_redirection(name(i), name(i), article_path(i), {Hint.FRONT_ARTICLE: False})
            if (i + 1) % step == 0:
                say(f"  {i + 1:,} articles added ({time.perf_counter() - began:.0f} s)")
        say("  writing the indexes and clusters...")
    partial.replace(target)


def cached_zim(work: Path, count: int) -> tuple[Path, float, bool]:
    """The ZIM of `count` articles in `work`, built when it is not there: (file, seconds its build took, cached)."""
    if count > NAME_SPACE:
        raise SystemExit(f"--articles: at most {NAME_SPACE:,} (one unique name each)")
    target = work / f"{LIBRARY}-{count}-v{FORMAT}.zim"
    facts = target.with_suffix(".json")
    if target.is_file() and facts.is_file():
        return target, float(json.loads(facts.read_text())["build_seconds"]), True
    work.mkdir(parents=True, exist_ok=True)
    say(f"building {target.name}: {count:,} articles with libzim's Creator (full-text and title indexes)")
    began = time.perf_counter()
    build_zim(target, count)
    took = time.perf_counter() - began
    facts.write_text(json.dumps({"build_seconds": took, "articles": count, "bytes": target.stat().st_size,
                                 "built": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n")
    return target, took, False


# -- the load, in the child process ------------------------------------------------------------------------------

@dataclass
class Measure:
    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0

    def summary(self, elapsed: float) -> dict[str, Any]:
        return {"requests": len(self.seconds), "per_s": len(self.seconds) / elapsed if elapsed else 0.0,
                "p50_ms": percentile(self.seconds, 0.5) * 1e3, "p99_ms": percentile(self.seconds, 0.99) * 1e3,
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
                "kb_per_page": self.bytes / 1024 / max(len(self.seconds), 1)}


@dataclass(frozen=True, slots=True)
class Target:
    """Where a server answers: its articles and its search, as URLs made from an article path or a query."""

    server: str
    base: str
    cookie: str
    book: str
    """kiwix-serve's name for the archive in its addresses: the file's name without .zim."""

    def article(self, path: str) -> str:
        if self.server == "gatehouse":
            return f"{self.base}/library/{LIBRARY}/{quote(path)}"
        return f"{self.base}/{self.book}/{quote(path)}"

    def searches(self, query: str) -> list[tuple[str, str]]:
        """(part, URL) of each request one search makes."""
        q = quote(query)
        if self.server == "gatehouse":
            return [("search", f"{self.base}/library/{LIBRARY}/search?q={q}")]
        return [("full-text", f"{self.base}/search?content={self.book}&pattern={q}&pageLength={RESULTS}"),
                ("titles", f"{self.base}/suggest?content={self.book}&term={q}&count={RESULTS}")]


async def fetch(client: aiohttp.ClientSession, url: str, measure: Measure | None) -> bool:
    """One GET, timed into `measure` (None: not counted); anything but a 200 is an error."""
    started = time.perf_counter()
    try:
        async with client.get(url, allow_redirects=False) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        if measure is not None:
            measure.errors[type(exc).__name__] += 1
        return False
    if measure is not None:
        measure.seconds.append(time.perf_counter() - started)
        measure.bytes += len(body)
        if status != 200:
            measure.errors[f"status {status}"] += 1
    return status == 200


async def read_articles(client: aiohttp.ClientSession, target: Target, rng: random.Random, count: int,
                        measure: Measure, counting: asyncio.Event, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await fetch(client, target.article(article_path(rng.randrange(count))), measure if counting.is_set() else None)


async def run_searches(client: aiohttp.ClientSession, target: Target, todo: Iterator[str],
                       measures: dict[str, Measure]) -> None:
    """Each query as one search: its requests one after the other, timed together (and each alone when a search
    takes more than one)."""
    for query in todo:
        started = time.perf_counter()
        parts = target.searches(query)
        fine = True
        for part, url in parts:
            fine = await fetch(client, url, measures.setdefault(part, Measure()) if len(parts) > 1 else None) and fine
        if fine:
            measures["search"].seconds.append(time.perf_counter() - started)
        else:
            measures["search"].errors["not a 200"] += 1


async def client_main(args: argparse.Namespace) -> None:
    target = Target(args.server, args.client, args.cookie, args.book)
    connector = aiohttp.TCPConnector(limit=0, local_addr=(CELL, 0))
    headers = {"Cookie": target.cookie} if target.cookie else {}
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=60)) as client:
        if not await fetch(client, target.article(article_path(0)), None):
            raise SystemExit(f"{target.server}: {target.article(article_path(0))} does not answer 200")
        measures: dict[str, Measure] = {}
        if args.measure == "articles":
            measures["articles"] = Measure()
            counting, stop = asyncio.Event(), asyncio.Event()
            loops = [asyncio.create_task(read_articles(client, target, random.Random(f"{args.seed}/{n}"),
                                                       args.articles, measures["articles"], counting, stop))
                     for n in range(args.connections)]
            await asyncio.sleep(WARMUP)
            mark("start")
            cpu, began = cpu_of_self(), time.perf_counter()
            counting.set()
            await asyncio.sleep(args.seconds)
            counting.clear()
            elapsed = time.perf_counter() - began
            mark("end")
            stop.set()
            await asyncio.gather(*loops)
        else:
            measures["search"] = Measure()
            asked = queries(args.articles)
            random.Random(args.seed).shuffle(asked)
            todo = iter([asked[n % len(asked)] for n in range(args.searches)])
            mark("start")
            cpu, began = cpu_of_self(), time.perf_counter()
            await asyncio.gather(*(run_searches(client, target, todo, measures)
                                   for _ in range(args.connections)))
            elapsed = time.perf_counter() - began
            mark("end")
    print(json.dumps({"elapsed": elapsed, "client_cores": (cpu_of_self() - cpu) / elapsed,
                      "measures": {k: m.summary(elapsed) for k, m in measures.items()}}), flush=True)


def mark(moment: str) -> None:
    """Tell the parent that the counted part starts or ends, so it reads the server's CPU over exactly that."""
    print(json.dumps({"mark": moment}), flush=True)


def cpu_of_self() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


# -- the servers -------------------------------------------------------------------------------------------------

def pin_everything(*cores: int) -> None:
    """Every thread of this process (and those it starts later) on `cores`."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), set(cores))


@dataclass
class Server:
    name: str
    base: str
    cookie: str
    book: str
    cpu: Callable[[], float]
    shipped: Callable[[], Awaitable[None]]


async def no_backlog() -> None:
    return None


@contextlib.asynccontextmanager
async def gatehouse(zim_file: Path, folder: Path, args: argparse.Namespace) -> AsyncIterator[Server]:
    """The portal and gateway in this process, the ZIM on the shelf, one inmate logged in at a cell terminal."""
    from gatehouse.cli.ops import initialise
    from gatehouse.cli.serve import running
    from gatehouse.db.engine import utcnow
    from gatehouse.facility import ensure_facility
    from gatehouse.inmates import add_inmate
    from gatehouse.kernel import Kernel
    from gatehouse.library import shelf
    from gatehouse.terminals import add_terminal

    overrides: dict[str, Any] = {"portal.port": 0, "proxy.port": 0}
    if args.redis:
        overrides["redis.url"] = args.redis
    settings = initialise(folder / "data", overrides, quiet=True)
    (settings.policy_dir / "quotas.yaml").write_text("quotas:\n  default: {library: 600}\n", encoding="utf-8")
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            facility = ensure_facility(session, settings)
            add_terminal(session, facility, name="cell-1", address=CELL, kind="cell", unit="A")
            add_inmate(session, facility, number=INMATE, name="Jan Peeters", language="en", pin=PIN)
            link = zim_file.stat().st_dev == settings.data_dir.stat().st_dev
            added = shelf.add(session, settings.data_dir, zim_file, name=LIBRARY, by="bench", now=utcnow(), link=link)
    finally:
        kernel.engine.dispose()
    say(f"gatehouse: {added.name} on the shelf ({added.article_count:,} articles, "
        f"{'hard-linked' if link else 'copied'})")
    async with running(settings) as up:
        assert up.portal is not None
        base = f"http://{up.portal[0]}:{up.portal[1]}"
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as client:
            async with client.get(f"{base}/login") as page:
                text = await page.text()
            token = text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            async with client.post(f"{base}/login", data={"inmate_number": INMATE, "pin": PIN, "csrf_token": token},
                                   allow_redirects=False) as resp:
                if resp.status != 303 or resp.headers.get("Location") != "/home":
                    raise SystemExit(f"gatehouse: the login failed ({resp.status})")
        cookie = "; ".join(f"{c.key}={c.value}" for c in jar)
        say(f"gatehouse: portal at {base}, {INMATE} logged in at {CELL}")

        async def shipped(limit: float = 60.0) -> None:
            deadline = time.perf_counter() + limit
            while up.kernel.audit is not None and up.kernel.audit.backlog and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)

        yield Server("Gatehouse", base, cookie, "", cpu_of_self, shipped)


@contextlib.asynccontextmanager
async def kiwix(zim_file: Path, pin: bool) -> AsyncIterator[Server]:
    port = free_port()
    command = [KIWIX, "--address", "127.0.0.1", "--port", str(port), str(zim_file)]
    proc = subprocess.Popen((["taskset", "-c", str(SERVER_CORE)] if pin else []) + command,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_port, port)
        say(f"kiwix-serve: at http://127.0.0.1:{port} (pid {proc.pid})")
        yield Server("kiwix-serve", f"http://127.0.0.1:{port}", "", zim_file.stem, lambda: cpu_seconds(tree(proc.pid)),
                     no_backlog)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def load(server: Server, measure: str, args: argparse.Namespace, seed: str) -> dict[str, Any]:
    """One measure against one server from a child process; with the server's CPU over it, in cores."""
    await server.shipped()
    pin = [] if args.no_pin else ["taskset", "-c", str(CLIENT_CORE)]
    connections = args.connections if measure == "articles" else args.search_connections
    proc = await asyncio.create_subprocess_exec(
        *pin, sys.executable, __file__, "--client", server.base, "--server",
        "gatehouse" if server.name == "Gatehouse" else "kiwix", "--cookie", server.cookie, "--book", server.book,
        "--measure", measure,
        "--articles", str(args.articles), "--seconds", str(args.seconds), "--connections", str(connections),
        "--searches", str(args.searches), "--seed", seed, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    cpu = began = used = wall = 0.0
    got: dict[str, Any] = {}
    async for line in proc.stdout:
        message = json.loads(line)
        if message.get("mark") == "start":
            cpu, began = server.cpu(), time.perf_counter()
        elif message.get("mark") == "end":
            used, wall = server.cpu() - cpu, time.perf_counter() - began
        else:
            got = message
    if await proc.wait() != 0 or not got:
        raise SystemExit(f"{server.name}: the load process failed ({proc.returncode})")
    got["server_cores"] = used / wall if wall else float("nan")
    return got


# -- the library section -----------------------------------------------------------------------------------------

Row = tuple[str, ...]


def median_of(runs: list[dict[str, Any]], measure: str, key: str) -> float:
    values = [run["measures"][measure][key] for run in runs if measure in run["measures"]]
    return statistics.median(values) if values else float("nan")


Runs = dict[str, dict[str, list[dict[str, Any]]]]
"""Server -> measure -> one load result per round."""


def print_round(round_number: int, server: str, measure: str, got: dict[str, Any]) -> None:
    for part, m in got["measures"].items():
        say(f"round {round_number + 1} {server:<11} {measure:<8} {part:<9} {m['requests']:>7,} {m['per_s']:>8,.1f}/s  "
            f"p50 {m['p50_ms']:7.1f} ms  p99 {m['p99_ms']:7.1f} ms  errors {m['errors']}"
            + (f" {m['error_kinds']}" if m["errors"] else "")
            + (f"  {m['kb_per_page']:.1f} KB" if part == "articles" else ""))
    say(f"round {round_number + 1} {server:<11} {measure:<8} server {got['server_cores']:.2f} cores, client "
        f"{got['client_cores']:.2f}")


async def measure_servers(zim_file: Path, work: Path, args: argparse.Namespace, pin: bool) -> Runs:
    """Both servers up on the same file; each measure against each in turn, the order alternating by round."""
    runs: Runs = {}
    with tempfile.TemporaryDirectory(prefix="run-", dir=work) as scratch:
        async with gatehouse(zim_file, Path(scratch), args) as ours, kiwix(zim_file, pin) as theirs:
            for round_number in range(args.rounds):
                order = (ours, theirs) if round_number % 2 == 0 else (theirs, ours)
                for measure in ("articles", "search"):
                    for server in order:
                        got = await load(server, measure, args, f"{round_number}")
                        runs.setdefault(server.name, {}).setdefault(measure, []).append(got)
                        print_round(round_number, server.name, measure, got)
    return runs


def library_rows(runs: Runs, args: argparse.Namespace) -> tuple[list[Row], dict[str, float]]:
    """The table (medians over rounds) and the ratios Gatehouse / kiwix-serve."""
    ours, theirs = runs["Gatehouse"], runs["kiwix-serve"]
    rows: list[Row] = [("measure", "Gatehouse", "kiwix-serve", "Gatehouse / kiwix-serve")]

    def line(label: str, measure: str, key: str, fmt: str) -> float:
        a, b = median_of(ours[measure], measure, key), median_of(theirs[measure], measure, key)
        ratio = a / b if b else float("nan")
        rows.append((label, format(a, fmt), format(b, fmt), f"{ratio:.2f}"))
        return ratio

    ratios = {"pages_per_s": line(f"article pages/s ({args.connections} connections)", "articles", "per_s", ",.0f")}
    line("article p50 ms", "articles", "p50_ms", ".1f")
    line("article p99 ms", "articles", "p99_ms", ".1f")
    ratios["search_p50"] = line(f"search p50 ms ({args.search_connections} connections)", "search", "p50_ms", ".1f")
    ratios["search_p99"] = line("search p99 ms", "search", "p99_ms", ".1f")
    for part in ("full-text", "titles"):
        b50, b99 = median_of(theirs["search"], part, "p50_ms"), median_of(theirs["search"], part, "p99_ms")
        rows.append((f"  kiwix-serve {part} alone p50 / p99 ms", "-", f"{b50:.1f} / {b99:.1f}", "-"))
    cores = [statistics.median(run["server_cores"] for run in r["articles"]) for r in (ours, theirs)]
    per_page = [statistics.median(run["server_cores"] / run["measures"]["articles"]["per_s"] * 1e3
                                  for run in r["articles"]) for r in (ours, theirs)]
    rows.append(("server CPU while reading, cores", f"{cores[0]:.2f}", f"{cores[1]:.2f}", "-"))
    rows.append(("server CPU per page, ms", f"{per_page[0]:.2f}", f"{per_page[1]:.2f}",
                 f"{per_page[0] / per_page[1]:.2f}"))
    ratios["pages_per_cpu_second"] = per_page[1] / per_page[0]
    return rows, ratios


async def library_section(args: argparse.Namespace, results: dict[str, Any]) -> list[Row]:
    """The ZIM (built or cached), both servers measured on it, the table and the line of ratios."""
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gatehouse-bench-library-"))
    zim_file, build_seconds, cached = await asyncio.to_thread(cached_zim, work, args.articles)
    size = zim_file.stat().st_size
    say(f"ZIM: {zim_file} ({size / 2**20:,.0f} MiB), build {build_seconds:,.1f} s"
        + (" (cached from an earlier run)" if cached else ""))
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    cores = os.sched_getaffinity(0)
    if pin:
        pin_everything(SERVER_CORE)
    try:
        runs = await measure_servers(zim_file, work, args, pin)
    finally:
        pin_everything(*cores)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    rows, ratios = library_rows(runs, args)
    results["library"] = {"articles": args.articles, "zim_bytes": size, "build_seconds": build_seconds,
                          "cached": cached, "runs": runs, "ratios": ratios}
    say("")
    say(f"library: {args.articles:,} articles, {size / 2**20:,.0f} MiB, built in {build_seconds:,.1f} s"
        f"{' (cached)' if cached else ''}; medians of {args.rounds} rounds"
        f"{'; servers on core 1, load on core 0' if pin else ''}")
    pages = ratios["pages_per_s"]
    say(f"ratios Gatehouse / kiwix-serve: pages/s {pages:.2f} (goal >= 0.5: {'met' if pages >= 0.5 else 'not met'}), "
        f"pages per CPU second {ratios['pages_per_cpu_second']:.2f}, search p50 {ratios['search_p50']:.2f}, "
        f"search p99 {ratios['search_p99']:.2f}")
    return rows


Section = Callable[[argparse.Namespace, dict[str, Any]], Awaitable[list[Row]]]
SECTIONS: tuple[tuple[str, Section], ...] = (("library", library_section), ("directory", directory_section))
"""What main() runs, in order; each prints its progress and returns its table's rows (a header first)."""


def table(rows: list[Row]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return out


async def main(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {}
    tables: list[tuple[str, list[Row]]] = []
    say(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    for label, section in SECTIONS:
        if label in args.sections.split(","):
            tables.append((label, await section(args, results)))
    for label, rows in tables:
        say("")
        say(f"{label}:")
        for text in table(rows):
            say(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "machine": {"nproc": os.cpu_count(), "date": datetime.now(UTC).isoformat(timespec="seconds")},
            "options": {k: v for k, v in vars(args).items() if k not in ("client", "cookie")},
            "results": results}, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--work", default="", help="folder that keeps the built ZIM between runs (default: a temp dir)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each articles measure")
    parser.add_argument("--connections", type=int, default=16, help="connections reading articles")
    parser.add_argument("--searches", type=int, default=200, help="searches per server and round")
    parser.add_argument("--search-connections", type=int, default=4)
    parser.add_argument("--redis", default="", help="the quota store in Redis (default: in-process)")
    parser.add_argument("--no-pin", action="store_true", help="leave the servers and the load unpinned")
    parser.add_argument("--sections", default=",".join(name for name, _ in SECTIONS),
                        help="which sections to run, in the order of SECTIONS")
    parser.add_argument("--json", default="", help="write the figures to this file")
    add_options(parser)
    parser.add_argument("--client", default="", help=argparse.SUPPRESS)
    parser.add_argument("--server", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cookie", default="", help=argparse.SUPPRESS)
    parser.add_argument("--book", default="", help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="", help=argparse.SUPPRESS)
    parser.add_argument("--seed", default="0", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    try:
        import uvloop
        uvloop.run(client_main(arguments) if arguments.client else main(arguments))
    except ImportError:
        asyncio.run(client_main(arguments) if arguments.client else main(arguments))
