"""Administration: staff accounts, terminals, units and inmates, as rows ready to show and actions audited.

Queries run in a worker thread; every change is recorded with the acting administrator. Rows handed to
templates are plain dataclasses, never ORM objects (nothing lazy is loaded while a page renders).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from gatehouse import staff as accounts
from gatehouse.audit import AuditEvent, Tag
from gatehouse.bus import SessionEnded
from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate, InmateSession, InmateStatus, StaffAccount, Terminal, Unit
from gatehouse.errors import Conflict, NotFound
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate, find_inmate, set_groups, set_pin
from gatehouse.kernel import Kernel
from gatehouse.learning import enrolment
from gatehouse.learning.models import EnrolmentStatus
from gatehouse.roster import RosterReport, apply_roster, parse_roster
from gatehouse.sessions import EndReason
from gatehouse.terminals import add_terminal, ensure_unit, remove_terminal
from portal.admin.forms import InmateEdit, NewInmate, NewStaff, NewTerminal
from portal.auth.services import announce, record
from portal.learning import services as learning

PAGE = 50


class Refused(Exception):
    """An action the rules do not allow (e.g. an administrator removing their own last way in)."""


@dataclass(frozen=True, slots=True)
class StaffRow:
    username: str
    display_name: str
    roles: tuple[str, ...]
    language: str
    enrolled: bool
    disabled: bool


@dataclass(frozen=True, slots=True)
class TerminalRow:
    name: str
    address: str
    kind: str
    unit: str
    in_use_by: str


@dataclass(frozen=True, slots=True)
class UnitRow:
    name: str
    terminals: int


@dataclass(frozen=True, slots=True)
class InmateRow:
    number: str
    name: str
    language: str
    groups: tuple[str, ...]
    status: str
    has_pin: bool
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class InmatePage:
    rows: list[InmateRow]
    next_after: str
    """The number to continue after (keyset pagination); empty on the last page."""


def _event(tag: Tag, actor: str, address: str, reason: str) -> AuditEvent:
    return AuditEvent(tag, "portal", actor=actor, client_addr=address, reason=reason)


# Staff accounts

def _staff_row(account: StaffAccount) -> StaffRow:
    return StaffRow(account.username, account.display_name, tuple(account.role_names), account.language,
                    account.totp_enrolled_at is not None, account.disabled)


def _staff_rows(kernel: Kernel) -> list[StaffRow]:
    with kernel.factory() as session:
        return [_staff_row(a) for a in accounts.list_staff(session)]


async def staff_rows(kernel: Kernel) -> list[StaffRow]:
    return await asyncio.to_thread(_staff_rows, kernel)


def _staff_detail(kernel: Kernel, username: str) -> StaffRow:
    with kernel.factory() as session:
        return _staff_row(accounts.find_staff(session, username))


async def staff_detail(kernel: Kernel, username: str) -> StaffRow:
    return await asyncio.to_thread(_staff_detail, kernel, username)


def _add_staff(kernel: Kernel, form: NewStaff) -> None:
    with kernel.factory.begin() as session:
        accounts.add_staff(session, username=form.username, roles=form.roles, password=form.password,
                           display_name=form.display_name, language=form.language, now=utcnow())


async def add_staff(kernel: Kernel, form: NewStaff, actor: str, address: str) -> None:
    """Raises Conflict if the username is taken. The person enrols their app at first login."""
    await asyncio.to_thread(_add_staff, kernel, form)
    await record(kernel, _event(Tag.ADMIN_STAFF_ADDED, actor, address,
                                f"{form.username} roles={','.join(form.roles)}"))


def _change_staff(kernel: Kernel, username: str, actor: str, *, roles: list[str] | None = None,
                  disabled: bool | None = None, reset_2fa: bool = False) -> str:
    now = utcnow()
    with kernel.factory.begin() as session:
        account = accounts.find_staff(session, username)
        own = account.username == actor
        if own and disabled:
            raise Refused("self-disable")
        if own and roles is not None and "admin" in account.role_names and "admin" not in roles:
            raise Refused("self-demote")
        if roles is not None:
            before = ",".join(account.role_names)
            accounts.set_roles(account, roles)
            session.flush()
            return f"{account.username} roles {before} -> {','.join(account.role_names)}"
        if disabled is not None:
            account.disabled = disabled
            if disabled:
                accounts.end_sessions_of(session, account.id, accounts.EndReason.DISABLED, now)
            return f"{account.username} {'disabled' if disabled else 'enabled'}"
        if reset_2fa:
            accounts.reset_totp(session, account, now)
            return account.username
        return ""


async def set_staff_roles(kernel: Kernel, username: str, roles: list[str], actor: str, address: str) -> None:
    reason = await asyncio.to_thread(_change_staff, kernel, username, actor, roles=roles)
    await record(kernel, _event(Tag.ADMIN_STAFF_CHANGED, actor, address, reason))


async def set_staff_disabled(kernel: Kernel, username: str, disabled: bool, actor: str, address: str) -> None:
    reason = await asyncio.to_thread(_change_staff, kernel, username, actor, disabled=disabled)
    await record(kernel, _event(Tag.ADMIN_STAFF_CHANGED, actor, address, reason))


async def reset_staff_2fa(kernel: Kernel, username: str, actor: str, address: str) -> None:
    reason = await asyncio.to_thread(_change_staff, kernel, username, actor, reset_2fa=True)
    await record(kernel, _event(Tag.ADMIN_STAFF_2FA_RESET, actor, address, reason))


# Terminals and units

def _terminal_rows(kernel: Kernel) -> list[TerminalRow]:
    with kernel.factory() as session:
        open_by = dict(session.execute(
            select(InmateSession.terminal_id, Inmate.number).join(Inmate, Inmate.id == InmateSession.inmate_id)
            .where(InmateSession.ended_at.is_(None))).all())
        return [TerminalRow(t.name, t.address, t.kind, t.unit, open_by.get(t.id, ""))
                for t in session.scalars(select(Terminal).order_by(Terminal.name))]


async def terminal_rows(kernel: Kernel) -> list[TerminalRow]:
    return await asyncio.to_thread(_terminal_rows, kernel)


def _add_terminal(kernel: Kernel, form: NewTerminal) -> None:
    with kernel.factory.begin() as session:
        add_terminal(session, ensure_facility(session, kernel.settings), name=form.name, address=form.address,
                     kind=form.kind, unit=form.unit)


async def add_terminal_now(kernel: Kernel, form: NewTerminal, actor: str, address: str) -> None:
    await asyncio.to_thread(_add_terminal, kernel, form)
    await record(kernel, _event(Tag.ADMIN_TERMINAL_ADDED, actor, address,
                                f"{form.name} {form.address} {form.kind} unit={form.unit}"))


def _remove_terminal(kernel: Kernel, name: str) -> list[tuple[str, str]]:
    with kernel.factory.begin() as session:
        terminal = session.scalar(select(Terminal).where(Terminal.name == name))
        if terminal is None:
            raise NotFound(name)
        cut = [(terminal.address, token) for token in session.scalars(select(InmateSession.token).where(
            InmateSession.terminal_id == terminal.id, InmateSession.ended_at.is_(None)))]
        remove_terminal(session, name)
        return cut


async def remove_terminal_now(kernel: Kernel, name: str, actor: str, address: str) -> None:
    """The terminal goes, and so does any session open on it: its connections close at once."""
    cut = await asyncio.to_thread(_remove_terminal, kernel, name)
    for terminal_address, token in cut:
        await announce(kernel, SessionEnded(terminal_address, token, EndReason.REPLACED))
    await record(kernel, _event(Tag.ADMIN_TERMINAL_REMOVED, actor, address,
                                f"{name} sessions-ended={len(cut)}"))


def _unit_rows(kernel: Kernel) -> list[UnitRow]:
    with kernel.factory() as session:
        counts = dict(session.execute(select(Terminal.unit, func.count()).group_by(Terminal.unit)).all())
        return [UnitRow(u.name, counts.get(u.name, 0)) for u in session.scalars(select(Unit).order_by(Unit.name))]


async def unit_rows(kernel: Kernel) -> list[UnitRow]:
    return await asyncio.to_thread(_unit_rows, kernel)


def _add_unit(kernel: Kernel, name: str) -> None:
    with kernel.factory.begin() as session:
        facility = ensure_facility(session, kernel.settings)
        if session.scalar(select(Unit.id).where(Unit.facility_id == facility.id, Unit.name == name)):
            raise Conflict(name)
        ensure_unit(session, facility, name)


async def add_unit(kernel: Kernel, name: str, actor: str, address: str) -> None:
    await asyncio.to_thread(_add_unit, kernel, name)
    await record(kernel, _event(Tag.ADMIN_UNIT_ADDED, actor, address, name))


def _remove_unit(kernel: Kernel, name: str) -> None:
    with kernel.factory.begin() as session:
        unit = session.scalar(select(Unit).where(Unit.name == name))
        if unit is None:
            raise NotFound(name)
        if session.scalar(select(func.count()).select_from(Terminal).where(Terminal.unit == name)):
            raise Refused("unit-in-use")
        session.delete(unit)


async def remove_unit(kernel: Kernel, name: str, actor: str, address: str) -> None:
    await asyncio.to_thread(_remove_unit, kernel, name)
    await record(kernel, _event(Tag.ADMIN_UNIT_REMOVED, actor, address, name))


# Inmates

def _inmate_row(inmate: Inmate) -> InmateRow:
    return InmateRow(inmate.number, inmate.name, inmate.language, tuple(inmate.group_names), inmate.status,
                     inmate.pin_hash is not None, inmate.locked_until)


def _inmate_page(kernel: Kernel, query: str, after: str) -> InmatePage:
    """Ordered by number, PAGE at a time, continuing after a number: as fast on page 100 as on page 1."""
    statement = select(Inmate).order_by(Inmate.number).limit(PAGE + 1)
    if query:
        like = f"%{query.replace('%', '').replace('_', '')}%"
        statement = statement.where(or_(Inmate.number.ilike(like), Inmate.name.ilike(like)))
    if after:
        statement = statement.where(Inmate.number > after)
    with kernel.factory() as session:
        rows = [_inmate_row(i) for i in session.scalars(statement)]
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return InmatePage(rows, rows[-1].number if more else "")


async def inmate_page(kernel: Kernel, query: str, after: str) -> InmatePage:
    return await asyncio.to_thread(_inmate_page, kernel, query, after)


def _inmate_detail(kernel: Kernel, number: str) -> InmateRow:
    with kernel.factory() as session:
        return _inmate_row(find_inmate(session, number))


async def inmate_detail(kernel: Kernel, number: str) -> InmateRow:
    return await asyncio.to_thread(_inmate_detail, kernel, number)


def _add_inmate(kernel: Kernel, form: NewInmate) -> None:
    with kernel.factory.begin() as session:
        add_inmate(session, ensure_facility(session, kernel.settings), number=form.number, name=form.name,
                   language=form.language, groups=form.groups, pin=form.pin or None)


async def add_inmate_now(kernel: Kernel, form: NewInmate, actor: str, address: str) -> None:
    await asyncio.to_thread(_add_inmate, kernel, form)
    await record(kernel, _event(Tag.ADMIN_INMATE_ADDED, actor, address, form.number))


def _save_inmate(kernel: Kernel, number: str, form: InmateEdit
                 ) -> tuple[str, list[tuple[str, str]], enrolment.Outcome]:
    with kernel.factory.begin() as session:
        inmate = find_inmate(session, number)
        before = f"{inmate.name}|{inmate.language}|{','.join(inmate.group_names)}|{inmate.status}"
        inmate.name, inmate.language, inmate.status = form.name, form.language, form.status
        set_groups(inmate, form.groups)
        if form.unlock:
            inmate.failed_attempts, inmate.locked_until = 0, None
        if form.pin:
            set_pin(session, inmate.number, form.pin)
        released = form.status == InmateStatus.RELEASED.value and not before.endswith(f"|{form.status}")
        closed = enrolment.close_all(session, inmate, EnrolmentStatus.ENDED, "released", utcnow()) if released \
            else enrolment.Outcome()
        after = f"{inmate.name}|{inmate.language}|{','.join(inmate.group_names)}|{inmate.status}"
        reason = f"{inmate.number} {before} -> {after}" + (" pin-set" if form.pin else "") + (
            " unlocked" if form.unlock else "")
        cut: list[tuple[str, str]] = []
        if form.status != InmateStatus.ACTIVE.value:
            now = utcnow()
            for row in session.scalars(select(InmateSession).where(InmateSession.inmate_id == inmate.id,
                                                                    InmateSession.ended_at.is_(None))):
                row.ended_at, row.end_reason = now, EndReason.SUSPENDED.value
                cut.append((row.terminal.address, row.token))
        return reason, cut, closed


async def save_inmate(kernel: Kernel, number: str, form: InmateEdit, actor: str, address: str) -> None:
    """A suspended or released inmate's open session ends at once, and with it their connections."""
    reason, cut, closed = await asyncio.to_thread(_save_inmate, kernel, number, form)
    for terminal_address, token in cut:
        await announce(kernel, SessionEnded(terminal_address, token, EndReason.SUSPENDED))
    await learning.closed(kernel, closed, actor, "released")
    tag = Tag.ADMIN_INMATE_PIN_SET if form.pin and reason.endswith("pin-set") else Tag.ADMIN_INMATE_CHANGED
    await record(kernel, _event(tag, actor, address, reason + (f" sessions-ended={len(cut)}" if cut else "")))


def _import(kernel: Kernel, text: str, source: str) -> RosterReport:
    report = parse_roster(text, source)
    if report.errors:
        return report
    with kernel.factory.begin() as session:
        apply_roster(session, ensure_facility(session, kernel.settings), report)
    return report


async def import_roster(kernel: Kernel, text: str, source: str, actor: str, address: str) -> RosterReport:
    """All rows or none: any bad row imports nothing, and every bad row is reported with its line."""
    report = await asyncio.to_thread(_import, kernel, text, source)
    if not report.errors:
        await record(kernel, _event(Tag.ADMIN_INMATE_IMPORTED, actor, address,
                                    f"{source}: {report.added} added, {report.updated} updated"))
    return report
