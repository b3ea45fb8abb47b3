"""Audit review for security staff: search, an inmate's timeline, charts, alerts and exports.

Looking is itself recorded: every search, timeline, chart and export leaves a record with who looked and at
what. Queries run in a worker thread; rows reach templates as plain values in the facility's time zone.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO
from zoneinfo import ZoneInfo

from gatehouse.audit import AuditEvent, Tag, review
from gatehouse.audit import alerts as rules
from gatehouse.audit.exports import Export
from gatehouse.audit.review import Bar, Cursor, Filters
from gatehouse.audit.verify import stored_checkpoints
from gatehouse.db.engine import utcnow
from gatehouse.db.models import AuditAlert, AuditRecord
from gatehouse.kernel import Kernel
from portal import i18n
from portal.auth.services import record
from portal.tasks import repeat

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordRow:
    day: str
    at: str
    tag: str
    actor: str
    terminal: str
    method: str
    host: str
    path: str
    decision: str
    reason: str
    status: str
    node_seq: str


@dataclass(frozen=True, slots=True)
class ResultPage:
    rows: list[RecordRow]
    next: str
    """The cursor token for the next (older) page; empty on the last."""


@dataclass(frozen=True, slots=True)
class Charts:
    hours: list[Bar]
    reasons: list[tuple[str, int]]
    hosts: list[tuple[str, int, int]]
    background: list[tuple[str, int, int]]
    """Hosts the browser calls by itself (`audit.browser_service_hosts`), apart from the busiest sites."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    rule: str
    actor: str
    window: str
    count: int
    detail: str
    raised: str


def zone_of(kernel: Kernel) -> ZoneInfo:
    return ZoneInfo(kernel.settings["facility.timezone"])


def thresholds(kernel: Kernel) -> rules.Thresholds:
    values = kernel.settings.values
    return rules.Thresholds(values["audit.alert_burst"], values["audit.alert_burst_minutes"],
                            values["audit.alert_daily_minutes"], tuple(values["audit.browser_service_hosts"]))


def _row(row: AuditRecord, zone: ZoneInfo) -> RecordRow:
    return RecordRow(i18n.format_date(row.at, zone), i18n.format_datetime(row.at, zone, "short"), row.tag,
                     row.actor, row.terminal, row.method, row.host, row.path, row.decision, row.reason,
                     "" if row.status is None else str(row.status), f"{row.node}#{row.seq}")


async def _seen(kernel: Kernel, actor: str, address: str, what: str) -> None:
    await record(kernel, AuditEvent(Tag.AUDIT_VIEWED, "portal", actor=actor, client_addr=address, reason=what))


def _search(kernel: Kernel, filters: Filters, after: Cursor | None) -> tuple[list[AuditRecord], Cursor | None]:
    with kernel.factory() as session:
        page = review.search(session, filters, after)
        session.expunge_all()
        return page.rows, page.next


async def search(kernel: Kernel, filters: Filters, after: str, actor: str, address: str,
                 what: str = "search") -> ResultPage:
    """One page of matching records, newest first, continuing after the cursor `after`."""
    rows, more = await asyncio.to_thread(_search, kernel, filters, Cursor.parse(after) if after else None)
    await _seen(kernel, actor, address, f"{what} {filters.describe()}")
    zone = zone_of(kernel)
    return ResultPage([_row(r, zone) for r in rows], more.token() if more else "")


def labelled(kernel: Kernel, hours: list[Bar], days: int) -> list[tuple[str, int, int]]:
    """Each hour named as the reader expects in the facility's zone: the hour alone over one day, else the date."""
    zone = zone_of(kernel)
    return [(i18n.format_time(bar.start, zone) if days == 1 else i18n.format_datetime(bar.start, zone, "short"),
             bar.allowed, bar.denied) for bar in hours]


def _charts(kernel: Kernel, filters: Filters, since: datetime, until: datetime) -> Charts:
    background = kernel.settings["audit.browser_service_hosts"]
    with kernel.factory() as session:
        return Charts(review.per_hour(session, filters, since, until),
                      review.denials_by_reason(session, filters, since, until),
                      review.busiest_hosts(session, filters, since, until, background=background),
                      review.busiest_hosts(session, filters, since, until, background=background,
                                           only_background=True))


async def charts(kernel: Kernel, filters: Filters, days: int, actor: str, address: str) -> tuple[Charts, datetime]:
    until = (utcnow() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    since = until - timedelta(days=days)
    result = await asyncio.to_thread(_charts, kernel, filters, since, until)
    await _seen(kernel, actor, address, f"charts days={days} {filters.describe()}")
    return result, since


def _scan(kernel: Kernel, since: datetime, until: datetime) -> list[rules.Finding]:
    with kernel.factory() as session:
        findings = rules.scan(session, since, until, zone_of(kernel), thresholds(kernel))
    return rules.raise_new(kernel.factory, findings, utcnow())


async def scan_alerts(kernel: Kernel, lookback: timedelta = timedelta(hours=2)) -> int:
    """Look for new alerts in the recent log, store and record each once; how many were new."""
    now = utcnow()
    since = min(now - lookback, rules.local_day(now, zone_of(kernel))[0])
    new = await asyncio.to_thread(_scan, kernel, since, now + timedelta(seconds=1))
    for finding in new:
        await record(kernel, AuditEvent(
            Tag.AUDIT_ALERT_RAISED, "audit", actor=finding.actor, decision="alert",
            reason=f"{finding.rule} count={finding.count} from={finding.window_start:%Y-%m-%dT%H:%M} "
                   f"to={finding.window_end:%Y-%m-%dT%H:%M} {finding.detail}".strip()))
    return len(new)


async def scan_forever(kernel: Kernel, stop: asyncio.Event) -> None:
    """The portal's alert loop; a failing scan is logged once and tried again at the next interval."""
    await repeat(stop, kernel.settings["audit.alert_scan_seconds"], lambda: scan_alerts(kernel),
                 "audit alerts: scanning")


def _alerts(kernel: Kernel, since: datetime, rule: str) -> list[AuditAlert]:
    with kernel.factory() as session:
        rows = rules.recent(session, since, rule)
        session.expunge_all()
        return rows


async def alert_rows(kernel: Kernel, days: int, rule: str, actor: str, address: str) -> list[AlertRow]:
    await scan_alerts(kernel)
    rows = await asyncio.to_thread(_alerts, kernel, utcnow() - timedelta(days=days), rule)
    await _seen(kernel, actor, address, f"alerts days={days} rule={rule or 'any'}")
    zone = zone_of(kernel)
    return [AlertRow(a.rule, a.actor, f"{i18n.format_datetime(a.window_start, zone, 'short')} – "
                                      f"{i18n.format_time(a.window_end, zone)}", a.count, a.detail,
                     i18n.format_datetime(a.raised_at, zone, "short")) for a in rows]


def _export(kernel: Kernel, filters: Filters, fmt: str) -> tuple[IO[bytes], int]:
    """The matching records in chain order into a spooled file (memory up to 8 MiB, then disk)."""
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - handed to the response
    with kernel.factory() as session:
        export = Export(review.matching(session, filters), fmt, lambda: stored_checkpoints(session))
        for line in export:
            out.write(line.encode("utf-8"))
    out.seek(0)
    return out, export.count


async def export(kernel: Kernel, filters: Filters, fmt: str, actor: str, address: str) -> tuple[IO[bytes], int]:
    """Recorded before the file is handed over: an export that cannot be recorded is not made."""
    await record(kernel, AuditEvent(Tag.AUDIT_EXPORTED, "portal", actor=actor, client_addr=address,
                                    reason=f"format={fmt} {filters.describe()}"))
    return await asyncio.to_thread(_export, kernel, filters, fmt)
