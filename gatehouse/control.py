"""Live control: suspend an inmate, switch a terminal off, lock down a unit or the facility, and undo each.

Each action changes the database (the truth every node reads) and, in the same transaction, appends its event
to `control_events`, which every gateway node reads every half second: the CLI reaches a running gateway with
no Redis at all, and a node that was away catches up. With Redis the event is also published on the bus, so
nodes act within milliseconds. Synchronous, like the rest of the kernel's storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.bus import (
    ControlEvent,
    InmateResumed,
    InmateSuspended,
    Lockdown,
    LockdownLifted,
    MalformedEvent,
    SessionEnded,
    TerminalDisabled,
    decode,
    encode,
)
from gatehouse.db.models import ControlEventRow, Facility, InmateSession, InmateStatus, Terminal
from gatehouse.db.models import Lockdown as LockdownRow
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.inmates import find_inmate
from gatehouse.sessions import EndReason
from gatehouse.terminals import ensure_unit
from gatehouse.visits import booking

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """What an action did: the events to announce, and what it cut (for the audit record and the person)."""

    events: list[ControlEvent] = field(default_factory=list)
    sessions_ended: int = 0
    visits_stopped: int = 0
    summary: str = ""


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("give a reason (--reason): it is recorded and shown to staff")
    return reason[:1000]


def append_event(session: Session, event: ControlEvent, now: datetime) -> None:
    """Add `event` to `control_events` in the caller's transaction: every node reads it within half a second."""
    session.add(ControlEventRow(at=now, payload=encode(event)))


def _emit(session: Session, outcome: Outcome, event: ControlEvent, now: datetime) -> None:
    outcome.events.append(event)
    append_event(session, event, now)


def _end_open(session: Session, outcome: Outcome, rows: list[InmateSession], now: datetime) -> None:
    for row in rows:
        row.ended_at, row.end_reason = now, EndReason.SUSPENDED.value
        _emit(session, outcome, SessionEnded(row.terminal.address, row.token, EndReason.SUSPENDED.value), now)
    outcome.sessions_ended += len(rows)


def _open_sessions(session: Session, *where: object) -> list[InmateSession]:
    return list(session.scalars(select(InmateSession).where(InmateSession.ended_at.is_(None), *where)))  # type: ignore[arg-type]


def suspend(session: Session, number: str, reason: str, by: str, now: datetime) -> Outcome:
    inmate = find_inmate(session, number)
    outcome = Outcome()
    reason = _reason(reason)
    if inmate.status == InmateStatus.SUSPENDED.value:
        raise Conflict(f"inmate {inmate.number} is suspended already")
    inmate.status = InmateStatus.SUSPENDED.value
    _end_open(session, outcome, _open_sessions(session, InmateSession.inmate_id == inmate.id), now)
    _emit(session, outcome, InmateSuspended(inmate.number, reason, by), now)
    outcome.summary = f"inmate {inmate.number} suspended; sessions ended: {outcome.sessions_ended}"
    return outcome


def resume(session: Session, number: str, by: str, now: datetime) -> Outcome:
    inmate = find_inmate(session, number)
    if inmate.status != InmateStatus.SUSPENDED.value:
        raise Conflict(f"inmate {inmate.number} is not suspended (status: {inmate.status})")
    inmate.status = InmateStatus.ACTIVE.value
    outcome = Outcome(summary=f"inmate {inmate.number} resumed")
    _emit(session, outcome, InmateResumed(inmate.number, by), now)
    return outcome


def _terminal(session: Session, name: str) -> Terminal:
    terminal = session.scalar(select(Terminal).where(Terminal.name == name.strip()))
    if terminal is None:
        raise NotFound(f"no terminal named {name.strip()!r}")
    return terminal


def disable_terminal(session: Session, name: str, reason: str, by: str, now: datetime) -> Outcome:
    terminal = _terminal(session, name)
    if terminal.disabled_reason:
        raise Conflict(f"terminal {terminal.name} is off already ({terminal.disabled_reason})")
    terminal.disabled_reason = _reason(reason)
    outcome = Outcome()
    _end_open(session, outcome, _open_sessions(session, InmateSession.terminal_id == terminal.id), now)
    _emit(session, outcome, TerminalDisabled(terminal.address, terminal.disabled_reason, by), now)
    outcome.summary = f"terminal {terminal.name} switched off; sessions ended: {outcome.sessions_ended}"
    return outcome


def enable_terminal(session: Session, name: str, by: str, now: datetime) -> Outcome:
    """Announced as TerminalDisabled with an empty reason: every node looks at the terminal again."""
    terminal = _terminal(session, name)
    if not terminal.disabled_reason:
        raise Conflict(f"terminal {terminal.name} is on already")
    terminal.disabled_reason = ""
    outcome = Outcome(summary=f"terminal {terminal.name} switched on")
    _emit(session, outcome, TerminalDisabled(terminal.address, "", by), now)
    return outcome


def _facility(session: Session, name: str) -> Facility:
    facility = session.scalar(select(Facility).where(Facility.name == name.strip()))
    if facility is None:
        names = ", ".join(session.scalars(select(Facility.name)))
        raise NotFound(f"no facility named {name.strip()!r} (known: {names or 'none'})")
    return facility


def lock_down(session: Session, facility_name: str, unit: str, reason: str, by: str, now: datetime) -> Outcome:
    """Unit "" locks the whole facility. Sessions on the terminals it covers end at once."""
    facility = _facility(session, facility_name)
    unit = " ".join(unit.split())
    if unit:
        ensure_unit(session, facility, unit)
    if session.scalar(select(LockdownRow.id).where(LockdownRow.facility_id == facility.id, LockdownRow.unit == unit,
                                                   LockdownRow.lifted_at.is_(None))):
        raise Conflict(f"{_scope(facility, unit)} is locked down already")
    reason = _reason(reason)
    session.add(LockdownRow(facility_id=facility.id, unit=unit, reason=reason, started_by=by, started_at=now))
    terminals = select(Terminal.id).where(Terminal.facility_id == facility.id)
    if unit:
        terminals = terminals.where(Terminal.unit == unit)
    outcome = Outcome()
    _end_open(session, outcome, _open_sessions(session, InmateSession.terminal_id.in_(terminals)), now)
    # video visits there, running or in the next day, stop in the same transaction; both sides are mailed why
    outcome.visits_stopped = len(booking.lockdown(session, unit, reason=reason, by=by, now=now))
    _emit(session, outcome, Lockdown(facility.name, unit, reason, by), now)
    outcome.summary = f"{_scope(facility, unit)} locked down; sessions ended: {outcome.sessions_ended}"
    if outcome.visits_stopped:
        outcome.summary += f"; video visits stopped: {outcome.visits_stopped}"
    return outcome


def lift(session: Session, facility_name: str, unit: str, by: str, now: datetime) -> Outcome:
    facility = _facility(session, facility_name)
    unit = " ".join(unit.split())
    row = session.scalar(select(LockdownRow).where(LockdownRow.facility_id == facility.id, LockdownRow.unit == unit,
                                                   LockdownRow.lifted_at.is_(None)))
    if row is None:
        raise NotFound(f"{_scope(facility, unit)} is not locked down")
    row.lifted_at, row.lifted_by = now, by
    outcome = Outcome(summary=f"{_scope(facility, unit)} lockdown lifted")
    _emit(session, outcome, LockdownLifted(facility.name, unit, by), now)
    return outcome


def _scope(facility: Facility, unit: str) -> str:
    return f"unit {unit!r} of {facility.name}" if unit else f"facility {facility.name}"


def events_after(session: Session, after: int, limit: int = 500) -> list[ControlEventRow]:
    return list(session.scalars(select(ControlEventRow).where(ControlEventRow.id > after)
                                .order_by(ControlEventRow.id).limit(limit)))


def last_event_id(session: Session) -> int:
    return int(session.scalar(select(func.max(ControlEventRow.id))) or 0)


def _last_id(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return last_event_id(session)


def _payloads_after(factory: sessionmaker[Session], after: int) -> list[tuple[int, str]]:
    with factory() as session:
        return [(row.id, row.payload) for row in events_after(session, after)]


async def follow_events(factory: sessionmaker[Session], handle: Callable[[ControlEvent], Awaitable[None]],
                        interval: float = 0.5) -> None:
    """Hand each control event appended after the start to `handle`, in order, reading every `interval` s.

    A database that does not answer is logged once when it goes and once when it is back, as a Redis outage is
    (a line every poll made 7,200 an hour), and reading resumes after the last event handled. A database away
    at the start is waited for as well: the events counted from are those of the first successful read.
    """
    last: int | None = None
    failing = False
    while True:
        try:
            if last is None:
                last, rows = await asyncio.to_thread(_last_id, factory), []
            else:
                rows = await asyncio.to_thread(_payloads_after, factory, last)
        except SQLAlchemyError as exc:
            if not failing:
                log.error("control: cannot read control events from the database (%s: %s); actions written by "
                          "other processes wait until it answers", exc.__class__.__name__,
                          str(exc).splitlines()[0][:200] if str(exc) else "")
                failing = True
            await asyncio.sleep(interval)
            continue
        if failing:
            log.warning("control: control events can be read from the database again")
            failing = False
        for row_id, payload in rows:
            last = row_id
            try:
                event = decode(payload)
            except MalformedEvent as exc:
                log.error("control: event %d skipped: %s", row_id, exc)
                continue
            await handle(event)
        await asyncio.sleep(interval)
