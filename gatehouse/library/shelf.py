"""The shelf: ZIM files added to `<data-dir>/library/`, who sees each, and the articles the facility hid.

Services for the portal and the CLI; `hidden_by` and `visible_to` are pure, so the reading path and the search
share one answer to "may this be shown".
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.library import zim
from gatehouse.library.models import Hidden, Library

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
GROUP = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
"""As inmate groups are named (gatehouse/inmates.py); names are taken in lower case."""
MAX_PATH = 1024


@dataclass(frozen=True, slots=True)
class Rule:
    """One hidden article (or, with `prefix`, everything under a path)."""

    id: int
    path: str
    prefix: bool
    note: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Shelved:
    """A library as the portal shows and serves it, read in one transaction."""

    name: str
    title: str
    language: str
    description: str
    article_count: int
    groups: tuple[str, ...]
    hidden: tuple[Rule, ...]
    file: Path


def folder(data_dir: Path) -> Path:
    return data_dir / "library"


def slug_of(filename: str) -> str:
    """A library name from a file name: `wikipedia_en_simple_2024-01.zim` → `wikipedia-en-simple-2024-01`."""
    stem = Path(filename).name.removesuffix(".zim")
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:63].rstrip("-")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidInput(f"name: {name!r} is not a library name; use lower-case letters, digits and '-' "
                           f"(at most 63), starting with a letter or digit")
    return name


def clean_path(path: str) -> str:
    """A path inside an archive as staff type it (with or without the leading '/')."""
    value = path.strip().lstrip("/")
    if not value:
        raise InvalidInput("path: give the path of an article inside the library, e.g. A/Bread")
    if len(value) > MAX_PATH:
        raise InvalidInput(f"path: at most {MAX_PATH} characters")
    return value


def clean_groups(text: str | Iterable[str]) -> list[str]:
    names = [n.lower() for n in (text.replace(",", " ").split() if isinstance(text, str) else list(text))]
    for name in names:
        if not GROUP.fullmatch(name):
            raise InvalidInput(f"groups: {name!r} is not a group name; separate group names with commas")
    return sorted(set(names))


def hidden_by(rules: Iterable[Rule], path: str) -> Rule | None:
    """The rule that hides `path`, if any."""
    for rule in rules:
        if path == rule.path or (rule.prefix and path.startswith(rule.path)):
            return rule
    return None


def visible_to(shelved: Shelved, groups: Iterable[str] | None) -> bool:
    """None: a staff member, who sees every library; otherwise an inmate in `groups`."""
    return groups is None or not shelved.groups or bool(set(shelved.groups) & set(groups))


def _shelved(row: Library, data_dir: Path) -> Shelved:
    return Shelved(row.name, row.title, row.language, row.description, row.article_count, tuple(row.groups),
                   tuple(Rule(h.id, h.path, h.prefix, h.note, h.hidden_by, h.hidden_at) for h in row.hidden),
                   folder(data_dir) / f"{row.name}.zim")


def _row(session: Session, name: str) -> Library:
    row = session.scalar(select(Library).where(Library.name == name))
    if row is None:
        raise NotFound(f"name: there is no library {name!r}; `gatehouse library list` shows them")
    return row


def shelf(session: Session, data_dir: Path) -> list[Shelved]:
    rows = session.scalars(select(Library).order_by(Library.language, Library.title))
    return [_shelved(row, data_dir) for row in rows]


def find(session: Session, data_dir: Path, name: str) -> Shelved | None:
    row = session.scalar(select(Library).where(Library.name == name))
    return None if row is None else _shelved(row, data_dir)


def add(session: Session, data_dir: Path, source: Path, *, name: str = "", by: str, now: datetime,
        link: bool = False) -> Shelved:
    """Put a ZIM file on the shelf: read its metadata (refusing what is not a ZIM), then copy or hard-link it in."""
    if not source.is_file():
        raise InvalidInput(f"file: {source} does not exist or is not a file")
    name = check_name(name or slug_of(source.name))
    if session.scalar(select(Library).where(Library.name == name)) is not None:
        raise Conflict(f"name: a library named {name!r} is on the shelf already; choose another --name")
    meta = zim.metadata(source)
    target = folder(data_dir) / f"{name}.zim"
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.resolve() != target.resolve():
        partial = target.with_suffix(".zim.part")
        if link:
            os.link(source, partial)
        else:
            shutil.copyfile(source, partial)
        partial.replace(target)
    row = Library(name=name, title=meta.title[:255], language=meta.language[:16], description=meta.description,
                  article_count=meta.article_count, groups=[], added_by=by, added_at=now)
    session.add(row)
    session.flush()
    return _shelved(row, data_dir)


def set_groups(session: Session, data_dir: Path, name: str, groups: str | Iterable[str]) -> tuple[Shelved, str]:
    """The groups that see a library (none: everyone); with what it was before, for the audit record."""
    row = _row(session, name)
    before = ", ".join(row.groups) or "everyone"
    row.groups = clean_groups(groups)
    session.flush()
    return _shelved(row, data_dir), before


def hide(session: Session, data_dir: Path, name: str, path: str, *, prefix: bool, note: str, by: str,
         now: datetime) -> Rule:
    row = _row(session, name)
    value = clean_path(path)
    if any(h.path == value and h.prefix == prefix for h in row.hidden):
        raise Conflict(f"path: {value} is hidden already")
    hidden = Hidden(path=value, prefix=prefix, note=" ".join(note.split())[:500], hidden_by=by, hidden_at=now)
    row.hidden.append(hidden)
    session.flush()
    return Rule(hidden.id, hidden.path, hidden.prefix, hidden.note, hidden.hidden_by, hidden.hidden_at)


def unhide(session: Session, name: str, rule_id: int) -> Rule:
    row = _row(session, name)
    found = next((h for h in row.hidden if h.id == rule_id), None)
    if found is None:
        raise NotFound("path: this article is not hidden (any more)")
    rule = Rule(found.id, found.path, found.prefix, found.note, found.hidden_by, found.hidden_at)
    row.hidden.remove(found)
    session.flush()
    return rule


def search(shelved: Shelved, query: str, limit: int) -> tuple[list[zim.Page], list[zim.Page]]:
    """Full-text results and title suggestions, with what the facility hid left out (asked for more, so a hidden
    article does not shorten the list)."""
    def shown(pages: list[zim.Page]) -> list[zim.Page]:
        return [p for p in pages if hidden_by(shelved.hidden, p.path) is None][:limit]
    extra = limit + len(shelved.hidden)
    return shown(zim.search(shelved.file, query, extra)), shown(zim.suggest(shelved.file, query, extra))
