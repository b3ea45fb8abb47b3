"""Inmate sessions: a PIN login binds a terminal to an inmate until logout, idle timeout or expiry.

At most one open session per terminal and per inmate; the database enforces it with partial unique indexes,
so two logins racing cannot both win.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.db.models import Inmate, InmateSession, InmateStatus, Terminal
from gatehouse.errors import GatehouseError
from gatehouse.learning.grants import active_courses
from gatehouse.pins import DUMMY_HASH, verify_pin
from gatehouse.settings import Settings
from gatehouse.terminals import block_of, terminal_by_address
from policies.decision import Subject


class EndReason(enum.StrEnum):
    LOGOUT = "logout"
    IDLE = "idle"
    EXPIRED = "expired"
    REPLACED = "replaced"
    SUSPENDED = "suspended"


class LoginRefused(GatehouseError):
    """Why a PIN login was refused: `code` (and `left`, `until`) let the portal say it in the inmate's language."""

    def __init__(self, message: str, *, code: str, inmate: str = "", terminal: str = "", left: int = 0,
                 until: datetime | None = None) -> None:
        super().__init__(message)
        self.code, self.inmate, self.terminal = code, inmate, terminal
        self.left, self.until = left, until


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta
    max_age: timedelta
    max_attempts: int
    lock: timedelta
    timezone: ZoneInfo
    language: str = "en"
    """The facility's language (`facility.language`): what a terminal speaks while nobody is logged in at it."""

    @property
    def touch_every(self) -> timedelta:
        """How stale `last_seen_at` may be before a request writes it again: a thirtieth of the idle time (30 s of
        15 minutes), so a session ends at most that much before its idle time after the last request, and a page
        of the portal is a read, not a write, while someone is busy on it."""
        return self.idle / 30

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(timedelta(minutes=settings["sessions.idle_minutes"]),
                   timedelta(hours=settings["sessions.max_hours"]), settings["login.max_attempts"],
                   timedelta(minutes=settings["login.lock_minutes"]), ZoneInfo(settings["facility.timezone"]),
                   settings["facility.language"])


@dataclass(frozen=True, slots=True)
class ActiveSession:
    token: str
    inmate_number: str
    inmate_name: str
    language: str
    terminal_name: str
    terminal_kind: str
    terminal_address: str
    started_at: datetime
    expires_at: datetime
    subject: Subject


def _active(row: InmateSession, courses: frozenset[str] = frozenset()) -> ActiveSession:
    subject = Subject(row.inmate.number, frozenset(row.inmate.group_names), row.terminal.name, row.terminal.kind,
                      row.token, courses)
    return ActiveSession(row.token, row.inmate.number, row.inmate.name, row.inmate.language, row.terminal.name,
                         row.terminal.kind, row.terminal.address, row.started_at, row.expires_at, subject)


def _end(session: Session, rows: list[InmateSession], reason: EndReason, now: datetime) -> list[ActiveSession]:
    ended = []
    for row in rows:
        row.ended_at, row.end_reason = now, reason.value
        ended.append(_active(row))
    session.flush()
    return ended


def _open_rows(session: Session, *conditions: ColumnElement[bool]) -> list[InmateSession]:
    return list(session.scalars(select(InmateSession).where(InmateSession.ended_at.is_(None), *conditions)))


def login(factory: sessionmaker[Session], policy: SessionPolicy, *, address: str, number: str, pin: str,
          now: datetime) -> tuple[ActiveSession, list[ActiveSession]]:
    """Bind the terminal at `address` to the inmate; returns the new session and the sessions it replaced.

    A refusal is raised after the transaction commits, so a wrong PIN's count and a lock are kept.
    """
    with factory.begin() as session:
        outcome = _login(session, policy, address, number.strip().upper(), pin, now)
    if isinstance(outcome, LoginRefused):
        raise outcome
    return outcome


def _login(session: Session, policy: SessionPolicy, address: str, number: str, pin: str,
           now: datetime) -> tuple[ActiveSession, list[ActiveSession]] | LoginRefused:
    terminal = terminal_by_address(session, address)
    if terminal is None:
        return LoginRefused("This computer is not registered as a terminal; ask staff.", code="unknown-terminal")
    code, why = block_of(session, terminal)
    if code:
        return LoginRefused(f"This terminal cannot be used now ({why}).", code=code, inmate=number,
                            terminal=terminal.name)
    inmate = session.scalar(select(Inmate).where(Inmate.number == number))
    if inmate is None:
        verify_pin(DUMMY_HASH, pin)
        return LoginRefused("Wrong inmate number or PIN.", code="wrong-pin", inmate=number, terminal=terminal.name)
    if inmate.locked_until and inmate.locked_until > now:
        return LoginRefused(_locked_message(inmate.locked_until, policy.timezone), code="locked", inmate=number,
                            terminal=terminal.name, until=inmate.locked_until)
    if inmate.status != InmateStatus.ACTIVE.value:
        return LoginRefused("This account cannot log in now; ask staff.", code="not-active", inmate=number,
                            terminal=terminal.name)
    if not verify_pin(inmate.pin_hash, pin):
        inmate.failed_attempts += 1
        left = policy.max_attempts - inmate.failed_attempts
        if left > 0:
            return LoginRefused(
                f"Wrong inmate number or PIN. {left} attempt(s) left before the account is locked.",
                code="wrong-pin", inmate=number, terminal=terminal.name, left=left)
        inmate.failed_attempts, inmate.locked_until = 0, now + policy.lock
        return LoginRefused(_locked_message(inmate.locked_until, policy.timezone), code="locked-now", inmate=number,
                            terminal=terminal.name, until=inmate.locked_until)
    inmate.failed_attempts, inmate.locked_until = 0, None
    replaced = _end(session, _open_rows(
        session, or_(InmateSession.terminal_id == terminal.id, InmateSession.inmate_id == inmate.id)),
        EndReason.REPLACED, now)
    session.flush()
    row = InmateSession(token=secrets.token_urlsafe(24), terminal=terminal, inmate=inmate, started_at=now,
                        last_seen_at=now, expires_at=now + policy.max_age)
    try:
        # Only the insert sits in the savepoint: a concurrent login that won leaves the rest of ours intact.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return LoginRefused("Another login on this terminal happened at the same moment; try again.",
                            code="race", inmate=number, terminal=terminal.name)
    return _active(row), replaced


def _locked_message(until: datetime, zone: ZoneInfo) -> str:
    local = until.replace(tzinfo=UTC).astimezone(zone)
    return f"Too many wrong PINs. This account is locked until {local:%H:%M}; try again then."


def end_session(factory: sessionmaker[Session], token: str, reason: EndReason, now: datetime) -> ActiveSession | None:
    with factory.begin() as session:
        rows = _open_rows(session, InmateSession.token == token)
        ended = _end(session, rows, reason, now)
    return ended[0] if ended else None


def resolve(factory: sessionmaker[Session], policy: SessionPolicy, address: str, now: datetime,
            *, touch: bool = False) -> tuple[Terminal | None, ActiveSession | None]:
    """Identity of a client address: its terminal and open session; a session past its time is ended here."""
    with factory.begin() as session:
        return _resolve(session, policy, address, now, touch)


def identify(factory: sessionmaker[Session], policy: SessionPolicy, address: str, now: datetime, *,
             touch: bool = False) -> tuple[Terminal | None, ActiveSession | None, tuple[str, str]]:
    """What the gateway needs of a client address, in one transaction: terminal, open session, and why the
    terminal may not be used now (`block_of`)."""
    with factory.begin() as session:
        terminal, active = _resolve(session, policy, address, now, touch)
        return terminal, active, block_of(session, terminal) if terminal is not None else ("", "")


def _resolve(session: Session, policy: SessionPolicy, address: str, now: datetime,
             touch: bool) -> tuple[Terminal | None, ActiveSession | None]:
    terminal = terminal_by_address(session, address)
    if terminal is None:
        return None, None
    rows = _open_rows(session, InmateSession.terminal_id == terminal.id)
    if not rows:
        return terminal, None
    row = rows[0]
    if row.expires_at <= now:
        _end(session, [row], EndReason.EXPIRED, now)
        return terminal, None
    if row.last_seen_at + policy.idle <= now:
        _end(session, [row], EndReason.IDLE, now)
        return terminal, None
    if row.inmate.status != InmateStatus.ACTIVE.value:
        _end(session, [row], EndReason.SUSPENDED, now)
        return terminal, None
    if touch and now - row.last_seen_at >= policy.touch_every:
        session.execute(update(InmateSession).where(InmateSession.id == row.id).values(last_seen_at=now))
    return terminal, _active(row, active_courses(session, row.inmate_id, now))
