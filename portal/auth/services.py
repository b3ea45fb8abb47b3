"""Inmate login and logout at a terminal; the terminal is the client address the request came from."""

from __future__ import annotations

import asyncio

from gatehouse.audit import AuditEvent, Tag
from gatehouse.bus import SessionEnded, SessionStarted
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.sessions import ActiveSession, EndReason, LoginRefused, end_session, login, resolve


async def _record(kernel: Kernel, event: AuditEvent) -> None:
    if kernel.audit is not None:
        await kernel.audit.write(event)


async def log_in(kernel: Kernel, address: str, number: str, pin: str) -> ActiveSession:
    try:
        active, replaced = await asyncio.to_thread(
            login, kernel.factory, kernel.session_policy, address=address, number=number, pin=pin, now=utcnow())
    except LoginRefused as refused:
        tag = Tag.PORTAL_LOGIN_LOCKED if refused.code.startswith("locked") else Tag.PORTAL_LOGIN_FAILURE
        await _record(kernel, AuditEvent(tag, "portal", actor=refused.inmate, terminal=refused.terminal,
                                         client_addr=address, reason=refused.code))
        raise
    for old in replaced:
        await kernel.bus.publish(SessionEnded(old.terminal_address, old.token, EndReason.REPLACED))
    await kernel.bus.publish(SessionStarted(active.terminal_address, active.token))
    await _record(kernel, AuditEvent(Tag.PORTAL_LOGIN_SUCCESS, "portal", actor=active.inmate_number,
                                     terminal=active.terminal_name, client_addr=address))
    return active


async def log_out(kernel: Kernel, active: ActiveSession, address: str) -> None:
    await asyncio.to_thread(end_session, kernel.factory, active.token, EndReason.LOGOUT, utcnow())
    await kernel.bus.publish(SessionEnded(active.terminal_address, active.token, EndReason.LOGOUT))
    await _record(kernel, AuditEvent(Tag.PORTAL_LOGOUT, "portal", actor=active.inmate_number,
                                     terminal=active.terminal_name, client_addr=address))


async def current(kernel: Kernel, address: str, token: str | None) -> ActiveSession | None:
    """The session of this terminal, if the browser holds its cookie."""
    if not token:
        return None
    _, active = await asyncio.to_thread(resolve, kernel.factory, kernel.session_policy, address, utcnow(),
                                        touch=True)
    if active is None or active.token != token:
        return None
    return active
