"""Alerts from rules over the audit log: bursts of denied attempts, heavy daily use, attempts at known bypasses.

Each rule counts in the database over fixed windows and yields findings; a finding is stored once (unique on
rule, actor and window start), so scanning the same time again raises nothing new. The caller records each new
alert in the audit log itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, not_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.audit.review import GATEWAY_TAGS, epoch_seconds, host_in
from gatehouse.db.models import AuditAlert, AuditRecord

BYPASS_REASONS = ("bad-host", "bad-request", "ip-literal", "bad-port", "websocket-not-allowed")
"""Denials that only a crafted request earns: a name or address spelled to slip past a rule, SNI or Host not
matching the tunnel, smuggled framing, odd ports, WebSocket where none is allowed (see tests/test_bypass.py)."""


class Rule(enum.StrEnum):
    DENIED_BURST = "denied-burst"
    DAILY_USAGE = "daily-usage"
    BYPASS = "bypass-attempt"


@dataclass(frozen=True, slots=True)
class Thresholds:
    burst: int = 20
    """Denied requests by one inmate within one burst window that raise an alert."""
    burst_minutes: int = 5
    daily_minutes: int = 240
    """Active minutes (minutes with at least one request) in one facility day that raise an alert."""
    background: tuple[str, ...] = ()
    """Hosts (names or `*.domain`) the browser calls by itself: recorded, but no burst or daily use of the
    inmate's (a kiosk browser left unconfigured made 116 of 170 denials in 15 minutes to Google's services)."""


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    actor: str
    window_start: datetime
    window_end: datetime
    count: int
    detail: str = ""


EPOCH = datetime(1970, 1, 1)


def _gateway(since: datetime, until: datetime, background: tuple[str, ...] = ()) -> list[ColumnElement[bool]]:
    clauses = [AuditRecord.tag.in_(GATEWAY_TAGS), AuditRecord.actor != "", AuditRecord.at >= since,
               AuditRecord.at < until]
    return clauses + [not_(host_in(background))] if background else clauses


def denied_bursts(session: Session, since: datetime, until: datetime, limits: Thresholds) -> list[Finding]:
    """Denials counted per inmate in buckets of the burst window; any two adjacent buckets together reaching the
    limit raise an alert, so a burst that straddles a bucket edge is not missed (every span of M minutes lies
    in two adjacent buckets of M). A run of such pairs is one alert, keyed by its first bucket, so later scans
    find the same alert again rather than a new one."""
    window = limits.burst_minutes * 60
    bucket = (epoch_seconds(session) // window).label("bucket")
    rows = session.execute(
        select(AuditRecord.actor, bucket, func.count())
        .where(*_gateway(since, until, limits.background), AuditRecord.decision == "deny")
        .group_by(AuditRecord.actor, bucket)).all()
    counts: dict[str, dict[int, int]] = {}
    for actor, number, count in rows:
        counts.setdefault(actor, {})[int(number)] = int(count)
    findings = []
    for actor, buckets in counts.items():
        runs: list[list[int]] = []
        for number in sorted(buckets):
            if buckets[number] + buckets.get(number + 1, 0) < limits.burst:
                continue
            if runs and number <= runs[-1][-1] + 1:
                runs[-1].append(number)
            else:
                runs.append([number])
        for run in runs:
            first, last = run[0], run[-1] + 1
            total = sum(buckets.get(n, 0) for n in range(first, last + 1))
            findings.append(Finding(Rule.DENIED_BURST, actor, EPOCH + timedelta(seconds=first * window),
                                    EPOCH + timedelta(seconds=(last + 1) * window), total))
    return findings


def daily_usage(session: Session, day_start: datetime, day_end: datetime, limits: Thresholds) -> list[Finding]:
    """Active minutes per inmate in the facility day [day_start, day_end) (UTC bounds of a local day)."""
    minute = (epoch_seconds(session) // 60).label("minute")
    per_minute = (select(AuditRecord.actor, minute).where(*_gateway(day_start, day_end, limits.background))
                  .group_by(AuditRecord.actor, minute).subquery())
    rows = session.execute(
        select(per_minute.c.actor, func.count()).group_by(per_minute.c.actor)
        .having(func.count() > limits.daily_minutes)).all()
    return [Finding(Rule.DAILY_USAGE, actor, day_start, day_end, int(count), f"limit {limits.daily_minutes}")
            for actor, count in rows]


def bypass_attempts(session: Session, since: datetime, until: datetime) -> list[Finding]:
    """Per inmate and hour: denials whose reason is a known bypass technique."""
    bucket = (epoch_seconds(session) // 3600).label("bucket")
    kinds = or_(*[AuditRecord.reason.startswith(code) for code in BYPASS_REASONS])
    rows = session.execute(
        select(AuditRecord.actor, bucket, func.count(), func.min(AuditRecord.reason))
        .where(*_gateway(since, until), AuditRecord.decision == "deny", kinds)
        .group_by(AuditRecord.actor, bucket)).all()
    found = []
    for actor, number, count, example in rows:
        start = EPOCH + timedelta(hours=int(number))
        found.append(Finding(Rule.BYPASS, actor, start, start + timedelta(hours=1), int(count), example[:500]))
    return found


def local_day(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC bounds of the facility-local day holding `moment` (23 or 25 hours long on a DST change)."""
    local = moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=1, hours=3)).replace(hour=0)
    utc = ZoneInfo("UTC")
    return (start.astimezone(utc).replace(tzinfo=None), end.astimezone(utc).replace(tzinfo=None))


def scan(session: Session, since: datetime, until: datetime, zone: ZoneInfo, limits: Thresholds) -> list[Finding]:
    findings = denied_bursts(session, since, until, limits) + bypass_attempts(session, since, until)
    day = local_day(since, zone)
    while day[0] < until:
        findings += daily_usage(session, *day, limits)
        day = local_day(day[1], zone)
    return findings


def raise_new(factory: sessionmaker[Session], findings: list[Finding], now: datetime) -> list[Finding]:
    """Store findings not stored before and return them (to be recorded in the audit log); a finding seen
    before only has its count brought up to date, so a daily usage alert is raised once per inmate and day."""
    if not findings:
        return []
    for attempt in (1, 2):
        try:
            return _store(factory, findings, now)
        except IntegrityError:  # another portal process stored the same finding a moment ago
            if attempt == 2:
                raise
    return []


def _store(factory: sessionmaker[Session], findings: list[Finding], now: datetime) -> list[Finding]:
    earliest = min(f.window_start for f in findings)
    with factory.begin() as session:
        known = {(a.rule, a.actor, a.window_start): a for a in session.scalars(
            select(AuditAlert).where(AuditAlert.window_start >= earliest))}
        new = []
        for finding in findings:
            stored = known.get((finding.rule.value, finding.actor, finding.window_start))
            if stored is not None:
                stored.count = max(stored.count, finding.count)
                continue
            session.add(AuditAlert(rule=finding.rule.value, actor=finding.actor, window_start=finding.window_start,
                                   window_end=finding.window_end, count=finding.count, detail=finding.detail,
                                   raised_at=now))
            new.append(finding)
    return new


def recent(session: Session, since: datetime, rule: str = "", limit: int = 200) -> list[AuditAlert]:
    query = select(AuditAlert).where(AuditAlert.raised_at >= since)
    if rule:
        query = query.where(AuditAlert.rule == rule)
    return list(session.scalars(query.order_by(AuditAlert.raised_at.desc(), AuditAlert.id.desc()).limit(limit)))
