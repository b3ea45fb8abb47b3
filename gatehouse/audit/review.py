"""Reading the audit log for review: filtered search with keyset pages, and counts per hour and per reason.

Pages are ordered newest first by (at, id) and continue from a cursor, never with OFFSET, so page 1,000 of a
log with millions of records costs what page 1 costs (the `(at, id)` index serves both the order and the
cursor). Counting runs in the database; only the buckets come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, false, func, not_, or_, select, tuple_
from sqlalchemy.orm import Session

from gatehouse.db.models import AuditRecord

PAGE = 50
GATEWAY_TAGS = ("gateway:connect:allowed", "gateway:connect:denied", "gateway:request:allowed",
                "gateway:request:denied", "gateway:error:refused")
"""Decisions, one record per tunnel or request; closing records (bytes, duration) are not counted again."""


@dataclass(frozen=True, slots=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""
    terminal: str = ""
    host: str = ""
    tag: str = ""
    decision: str = ""

    def describe(self) -> str:
        """For the record of who looked at what."""
        parts = [f"{name}={value:%Y-%m-%dT%H:%M}" if isinstance(value, datetime) else f"{name}={value}"
                 for name, value in ((n, getattr(self, n)) for n in self.__slots__) if value]
        return " ".join(parts) or "all"


@dataclass(frozen=True, slots=True)
class Cursor:
    at: datetime
    id: int

    def token(self) -> str:
        return f"{self.at:%Y%m%dT%H%M%S.%f}_{self.id}"

    @classmethod
    def parse(cls, token: str) -> Cursor | None:
        stamp, _, ident = token.partition("_")
        try:
            return cls(datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f"), int(ident))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[AuditRecord]
    next: Cursor | None


def _where(filters: Filters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.since:
        clauses.append(AuditRecord.at >= filters.since)
    if filters.until:
        clauses.append(AuditRecord.at < filters.until)
    if filters.actor:
        clauses.append(AuditRecord.actor == filters.actor)
    if filters.terminal:
        clauses.append(AuditRecord.terminal == filters.terminal)
    if filters.host:
        host = filters.host.lower()
        clauses.append(or_(AuditRecord.host == host, AuditRecord.host.endswith("." + host)))
    if filters.tag:
        clauses.append(AuditRecord.tag == filters.tag if filters.tag.count(":") == 2 else
                       AuditRecord.tag.startswith(filters.tag.rstrip(":") + ":"))
    if filters.decision:
        clauses.append(AuditRecord.decision == filters.decision)
    return clauses


def search(session: Session, filters: Filters, after: Cursor | None = None, limit: int = PAGE) -> Page:
    query = select(AuditRecord).where(*_where(filters))
    if after is not None:
        # A row-value comparison, so the (at, id) index seeks straight to the cursor on both databases.
        query = query.where(tuple_(AuditRecord.at, AuditRecord.id) < tuple_(after.at, after.id))
    rows = list(session.scalars(query.order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, Cursor(rows[-1].at, rows[-1].id) if more else None)


def matching(session: Session, filters: Filters) -> Iterator[AuditRecord]:
    """Every matching record in chain order (node, seq), streamed: what an export of a search holds."""
    query = select(AuditRecord).where(*_where(filters)).order_by(AuditRecord.node, AuditRecord.seq)
    yield from session.scalars(query.execution_options(yield_per=2000))


def epoch_seconds(session: Session) -> ColumnElement[Any]:
    """Whole seconds since the epoch as an integer, as the database computes it (times are naive UTC); floor-
    divided (`//`, not `/`, which SQLAlchemy makes a true division) it buckets on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.floor(func.extract("epoch", AuditRecord.at)).cast(type_=AuditRecord.seq.type)
    return func.cast(func.strftime("%s", AuditRecord.at), AuditRecord.seq.type)


@dataclass(frozen=True, slots=True)
class Bar:
    start: datetime
    allowed: int
    denied: int


def _hour(session: Session) -> ColumnElement[Any]:
    """The hour a record falls in, computed cheaply per row: `date_trunc` on PostgreSQL, the first 13 characters
    of SQLite's stored text (`YYYY-MM-DD HH`)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", AuditRecord.at)
    return func.substr(AuditRecord.at, 1, 13)


def _as_hour(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.strptime(str(value), "%Y-%m-%d %H")


def per_hour(session: Session, filters: Filters, since: datetime, until: datetime) -> list[Bar]:
    """Gateway decisions per hour, allowed and denied, with empty hours present (a chart needs its gaps)."""
    hour = _hour(session).label("hour")
    denied = func.sum(case((AuditRecord.decision == "deny", 1), else_=0))
    rows = session.execute(
        select(hour, func.count(), denied)
        .where(*_where(filters), AuditRecord.tag.in_(GATEWAY_TAGS), AuditRecord.at >= since, AuditRecord.at < until)
        .group_by(hour)).all()
    counts = {_as_hour(h): (int(total), int(no or 0)) for h, total, no in rows}
    bars = []
    start = since.replace(minute=0, second=0, microsecond=0)
    while start < until:
        total, no = counts.get(start, (0, 0))
        bars.append(Bar(start, total - no, no))
        start += timedelta(hours=1)
    return bars


def denials_by_reason(session: Session, filters: Filters, since: datetime, until: datetime,
                      top: int = 10) -> list[tuple[str, int]]:
    """Denied decisions by reason code (`rule-deny`, `no-match`, `bad-host`, ...), largest first."""
    rows = session.execute(
        select(AuditRecord.reason, func.count())
        .where(*_where(filters), AuditRecord.tag.in_(GATEWAY_TAGS), AuditRecord.decision == "deny",
               AuditRecord.at >= since, AuditRecord.at < until)
        .group_by(AuditRecord.reason)).all()
    totals: dict[str, int] = {}
    for reason, count in rows:
        code = reason_code(reason)
        totals[code] = totals.get(code, 0) + int(count)
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top]


def host_in(patterns: Iterable[str]) -> ColumnElement[bool]:
    """Records whose host is one of the names, or below one of the `*.domain` patterns (not domain itself)."""
    clauses = [AuditRecord.host.endswith(p[1:], autoescape=True) if p.startswith("*.") else AuditRecord.host == p
               for p in patterns]
    return or_(*clauses) if clauses else false()


def busiest_hosts(session: Session, filters: Filters, since: datetime, until: datetime, top: int = 10,
                  background: Iterable[str] = (), only_background: bool = False) -> list[tuple[str, int, int]]:
    """Hosts with the most gateway decisions: (host, allowed, denied). Hosts matching `background` (what the
    browser calls by itself) are left out, or with `only_background` are the only ones counted."""
    denied = func.sum(case((AuditRecord.decision == "deny", 1), else_=0))
    total = func.count()
    background = tuple(background)
    noise = [host_in(background) if only_background else not_(host_in(background))] if background or \
        only_background else []
    rows = session.execute(
        select(AuditRecord.host, total, denied)
        .where(*_where(filters), AuditRecord.tag.in_(GATEWAY_TAGS), AuditRecord.host != "",
               AuditRecord.at >= since, AuditRecord.at < until, *noise)
        .group_by(AuditRecord.host).order_by(total.desc(), AuditRecord.host).limit(top)).all()
    return [(host, int(n) - int(no or 0), int(no or 0)) for host, n, no in rows]


def reason_code(reason: str) -> str:
    """`rule-deny[no-mail]: ...` -> `rule-deny`."""
    return reason.split(":", 1)[0].split("[", 1)[0].strip() or "-"
