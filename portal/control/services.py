"""Live control for security staff: the portal side of `gatehouse/control.py` (the same actions as the CLI).

Each action changes the database and its event in one transaction (every gateway node reads it within half a
second), is announced on the bus, and is recorded with who did it, why and what it cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse import control
from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.models import Inmate, InmateStatus, Lockdown, Terminal, Unit
from gatehouse.facility import ensure_facility
from gatehouse.kernel import Kernel
from portal import i18n
from portal.auth.services import announce, record


@dataclass(frozen=True, slots=True)
class State:
    lockdowns: list[tuple[str, str, str, str]]
    """(unit, or "" for the whole facility; reason; by; since)."""
    suspended: list[tuple[str, str]]
    """(number, name)."""
    switched_off: list[tuple[str, str]]
    """(terminal, reason)."""
    units: list[str]
    terminals: list[str]


def _state(kernel: Kernel, zone: ZoneInfo) -> State:
    with kernel.factory() as session:
        facility = ensure_facility(session, kernel.settings)
        lockdowns = [(row.unit, row.reason, row.started_by, i18n.format_datetime(row.started_at, zone, "short"))
                     for row in session.scalars(select(Lockdown).where(
                         Lockdown.facility_id == facility.id, Lockdown.lifted_at.is_(None)).order_by(Lockdown.unit))]
        suspended = [(row.number, row.name) for row in session.scalars(select(Inmate).where(
            Inmate.status == InmateStatus.SUSPENDED.value).order_by(Inmate.number).limit(500))]
        terminals = list(session.scalars(select(Terminal).order_by(Terminal.name)))
        units = list(session.scalars(select(Unit.name).where(Unit.facility_id == facility.id).order_by(Unit.name)))
        return State(lockdowns, suspended, [(t.name, t.disabled_reason) for t in terminals if t.disabled_reason],
                     units, [t.name for t in terminals if not t.disabled_reason])


async def state(kernel: Kernel) -> State:
    return await asyncio.to_thread(_state, kernel, ZoneInfo(kernel.settings["facility.timezone"]))


def _run(kernel: Kernel, action: Callable[[Session], control.Outcome]) -> control.Outcome:
    with kernel.factory.begin() as session:
        return action(session)


async def act(kernel: Kernel, tag: Tag, action: Callable[[Session], control.Outcome], subject: str, actor: str,
              address: str, why: str = "") -> control.Outcome:
    """Raises the kernel's NotFound, Conflict or InvalidInput for the caller to show; nothing changes then."""
    outcome = await asyncio.to_thread(_run, kernel, action)
    await record(kernel, AuditEvent(tag, "control", actor=actor, client_addr=address,
                                    decision="deny" if why else "allow",
                                    reason=f"{subject}: {outcome.summary}" + (f"; why: {why}" if why else "")))
    for event in outcome.events:
        await announce(kernel, event)
    return outcome


def facility_name(kernel: Kernel) -> str:
    return str(kernel.settings["facility.name"])
