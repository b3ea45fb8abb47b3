"""Terminals: the cell, classroom, library and booth computers, known by their network address."""

from __future__ import annotations

import ipaddress

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from gatehouse.db.engine import utcnow
from gatehouse.db.models import Facility, InmateSession, Lockdown, Terminal, TerminalKind, Unit
from gatehouse.errors import Conflict, InvalidInput, NotFound


def normalise_address(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise InvalidInput(f"terminal address {address!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


def add_terminal(session: Session, facility: Facility, *, name: str, address: str, kind: str,
                 unit: str = "") -> Terminal:
    name = name.strip()
    if not name:
        raise InvalidInput("terminal name is empty")
    try:
        kind = TerminalKind(kind).value
    except ValueError:
        raise InvalidInput(f"terminal kind {kind!r} is not one of {', '.join(k.value for k in TerminalKind)}") \
            from None
    address = normalise_address(address)
    if session.scalar(select(Terminal).where(Terminal.name == name)):
        raise Conflict(f"a terminal named {name!r} exists already")
    if other := session.scalar(select(Terminal).where(Terminal.address == address)):
        raise Conflict(f"address {address} belongs to terminal {other.name!r} already")
    unit = unit.strip()
    if unit:
        ensure_unit(session, facility, unit)
    terminal = Terminal(facility_id=facility.id, name=name, address=address, kind=kind, unit=unit,
                        created_at=utcnow())
    session.add(terminal)
    session.flush()
    return terminal


def ensure_unit(session: Session, facility: Facility, name: str) -> Unit:
    """The unit (wing, block) by name, made on first mention, so lockdowns can name every unit a terminal is in."""
    name = " ".join(name.split())
    if not name or len(name) > 64:
        raise InvalidInput("a unit name is 1 to 64 characters")
    unit = session.scalar(select(Unit).where(Unit.facility_id == facility.id, Unit.name == name))
    if unit is None:
        unit = Unit(facility_id=facility.id, name=name)
        session.add(unit)
        session.flush()
    return unit


def list_terminals(session: Session) -> list[Terminal]:
    return list(session.scalars(select(Terminal).order_by(Terminal.name)))


def remove_terminal(session: Session, name: str) -> Terminal:
    terminal = session.scalar(select(Terminal).where(Terminal.name == name))
    if terminal is None:
        raise NotFound(f"no terminal named {name!r}")
    # Session rows are working state; the audit log keeps the history of every login and logout.
    session.execute(delete(InmateSession).where(InmateSession.terminal_id == terminal.id))
    session.delete(terminal)
    session.flush()
    return terminal


def terminal_by_address(session: Session, address: str) -> Terminal | None:
    try:
        address = normalise_address(address)
    except InvalidInput:
        return None
    return session.scalar(select(Terminal).where(Terminal.address == address))


def block_of(session: Session, terminal: Terminal) -> tuple[str, str]:
    """Why nobody may use this terminal now, as (code, text); ("", "") when nothing stops it. Codes:
    `terminal-off` (switched off by staff) and `lockdown` (its unit or its whole facility)."""
    if terminal.disabled_reason:
        return "terminal-off", f"this terminal is switched off: {terminal.disabled_reason}"
    scope = [Lockdown.unit == ""] + ([Lockdown.unit == terminal.unit] if terminal.unit else [])
    lockdown = session.scalar(select(Lockdown).where(
        Lockdown.facility_id == terminal.facility_id, Lockdown.lifted_at.is_(None), or_(*scope))
        .order_by(Lockdown.started_at))
    if lockdown is None:
        return "", ""
    where = f"unit {lockdown.unit}" if lockdown.unit else "the facility"
    return "lockdown", f"lockdown of {where}: {lockdown.reason}"
