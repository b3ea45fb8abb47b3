"""Reading ZIM files with python-libzim: metadata, entries (redirects followed), full-text search and title
suggestions; and writing small ones (the demo's and the tests').

An `Archive` is opened once per file and kept (libzim caches clusters inside it); calls block, so the portal
runs them off the event loop.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from libzim.reader import Archive, set_cluster_cache_max_size  # type: ignore[import-untyped]
from libzim.search import Query, Searcher  # type: ignore[import-untyped]
from libzim.suggestion import SuggestionSearcher  # type: ignore[import-untyped]
from libzim.writer import Creator, Hint, Item, StringProvider  # type: ignore[import-untyped]

from gatehouse.errors import InvalidInput

MAX_REDIRECTS = 8
MAGIC = b"ZIM\x04"
"""The first four bytes of every ZIM file (0x044D495A, little-endian)."""


@dataclass(frozen=True, slots=True)
class Metadata:
    title: str
    language: str
    description: str
    article_count: int
    main_path: str


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    title: str
    mimetype: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Page:
    """One article, as a result list shows it."""

    path: str
    title: str


_lock = threading.Lock()


def use_cache(megabytes: int) -> None:
    """How much decompressed archive the process keeps (libzim's cluster cache, one for every archive): articles
    sit in compressed clusters of many, and a cluster read once is not decompressed again while it is kept."""
    set_cluster_cache_max_size(megabytes * 2**20)


@functools.lru_cache(maxsize=32)
def _archive(path: str, stamp: float) -> Archive:
    return Archive(path)


def archive(path: Path) -> Archive:
    """The open archive of a file, opened again when the file changed."""
    with _lock:
        return _archive(str(path), path.stat().st_mtime)


def _text(zim: Archive, key: str) -> str:
    try:
        return bytes(zim.get_metadata(key)).decode("utf-8", "replace").strip()
    except RuntimeError:
        return ""


def metadata(path: Path) -> Metadata:
    """What the catalogue shows of a file; a file that is not a readable ZIM raises `InvalidInput`."""
    with path.open("rb") as handle:
        if handle.read(4) != MAGIC:
            raise InvalidInput(f"file: {path.name} is not a ZIM file (it does not start as one); "
                               f"give a .zim file made by Kiwix or zimwriterfs")
    try:
        zim = Archive(str(path))
    except RuntimeError as exc:
        raise InvalidInput(f"file: {path.name} cannot be read as a ZIM file ({exc})") from exc
    main = zim.main_entry.get_item().path if zim.has_main_entry else ""
    return Metadata(_text(zim, "Title") or path.stem, _text(zim, "Language"), _text(zim, "Description"),
                    int(zim.article_count), main)


def main_path(path: Path) -> str:
    zim = archive(path)
    return str(zim.main_entry.get_item().path) if zim.has_main_entry else ""


def entry(path: Path, inside: str) -> Entry | None:
    """The item at `inside`, redirects followed (a bounded number of them); None when there is none."""
    zim = archive(path)
    try:
        found = zim.get_entry_by_path(inside)
    except KeyError:
        return None
    for _hop in range(MAX_REDIRECTS):
        if not found.is_redirect:
            break
        found = found.get_redirect_entry()
    else:
        return None
    item = found.get_item()
    return Entry(str(item.path), str(item.title), str(item.mimetype), bytes(item.content))


def redirect_target(path: Path, inside: str) -> str | None:
    """Where a redirect entry leads (so the browser's address names the article really shown)."""
    zim = archive(path)
    try:
        found = zim.get_entry_by_path(inside)
    except KeyError:
        return None
    return str(found.get_redirect_entry().path) if found.is_redirect else None


def _pages(zim: Archive, paths: Iterable[str]) -> list[Page]:
    found = []
    for one in paths:
        try:
            item = zim.get_entry_by_path(one)
        except KeyError:
            continue
        found.append(Page(str(one), str(item.title)))
    return found


def search(path: Path, query: str, limit: int) -> list[Page]:
    """Full-text results, best first; none when the file has no full-text index."""
    zim = archive(path)
    if not zim.has_fulltext_index or not query.strip():
        return []
    try:
        results = Searcher(zim).search(Query().set_query(query))
        return _pages(zim, results.getResults(0, limit))
    except RuntimeError:  # Xapian refusing the query's syntax: nothing found, as for any other miss
        return []


def suggest(path: Path, query: str, limit: int) -> list[Page]:
    """Articles whose titles match what was typed."""
    zim = archive(path)
    if not query.strip():
        return []
    try:
        results = SuggestionSearcher(zim).suggest(query)
        return _pages(zim, results.getResults(0, limit))
    except RuntimeError:
        return []


@dataclass(frozen=True, slots=True)
class Source:
    """An item to write into a new ZIM file."""

    path: str
    title: str
    mimetype: str
    content: str | bytes
    article: bool = True


class _Item(Item):  # type: ignore[misc]
    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def get_path(self) -> str:
        return self.source.path

    def get_title(self) -> str:
        return self.source.title

    def get_mimetype(self) -> str:
        return self.source.mimetype

    def get_contentprovider(self) -> StringProvider:
        return StringProvider(self.source.content)

    def get_hints(self) -> dict[Hint, int]:
        return {Hint.FRONT_ARTICLE: self.source.article, Hint.COMPRESS: self.source.mimetype.startswith("text/")}


def build(target: Path, sources: Sequence[Source], *, title: str, language: str = "eng", description: str = "",
          main: str = "", index: bool = True) -> Path:
    """Write a ZIM file (with a full-text index unless told otherwise)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    creator = Creator(str(target)).config_indexing(index, language)
    with creator:
        if main:
            creator.set_mainpath(main)
        for key, value in (("Title", title), ("Language", language), ("Description", description or title),
                           ("Name", target.stem), ("Creator", "Gatehouse"), ("Publisher", "Gatehouse")):
            creator.add_metadata(key, value)
        for source in sources:
            creator.add_item(_Item(source))
    return target
