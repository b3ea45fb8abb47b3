"""Inmate login and logout at a terminal; the terminal is the client address the request came from."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gatehouse.audit import AuditEvent, Tag
from gatehouse.bus import BusUnavailable, ControlEvent, LanguageChanged, SessionEnded, SessionStarted
from gatehouse.db.engine import utcnow
from gatehouse.inmates import set_language
from gatehouse.kernel import Kernel
from gatehouse.quota import QuotaUnavailable, local_minute
from gatehouse.sessions import ActiveSession, EndReason, LoginRefused, end_session, login, resolve
from portal import i18n, throttle
from portal.i18n import _, ngettext

log = logging.getLogger(__name__)


SESSION_SECONDS = 1.0
"""How long this portal reuses a terminal's session between pages, as a gateway node reuses an identity: a change
made here (a login, a logout, a language, anything announced) applies at once, one made elsewhere within this."""
_sessions: dict[tuple[str, str], tuple[float, ActiveSession]] = {}


def forget_sessions() -> None:
    _sessions.clear()


async def announce(kernel: Kernel, event: ControlEvent) -> None:
    """Tell every gateway node. The database already holds the change; if the bus is down, the nodes that
    cannot hear it refuse all traffic until it is back (and then read the database), so this only logs."""
    forget_sessions()
    try:
        await kernel.bus.publish(event)
    except BusUnavailable as exc:
        log.error("portal: %s not announced to the gateways: %s", type(event).__name__, exc)


async def record(kernel: Kernel, event: AuditEvent) -> None:
    if kernel.audit is not None:
        await kernel.audit.write(event)


def refusal_message(refused: LoginRefused, zone: ZoneInfo) -> str:
    """The refusal in the inmate's language; the kernel's English text stays for the CLI and the log."""
    if refused.code == "unknown-terminal":
        return _("This computer is not registered as a terminal; ask staff.")
    if refused.code == "wrong-pin" and refused.left:
        return _("Wrong inmate number or PIN.") + " " + ngettext(
            "%(num)d attempt left before the account is locked.",
            "%(num)d attempts left before the account is locked.", refused.left) % {"num": refused.left}
    if refused.code.startswith("locked") and refused.until is not None:
        return _("Too many wrong PINs. This account is locked until %(time)s; try again then.") % {
            "time": i18n.format_time(refused.until, zone)}
    if refused.code in ("lockdown", "terminal-off"):
        return _("This terminal cannot be used now. Ask staff.")
    if refused.code == "not-active":
        return _("This account cannot log in now; ask staff.")
    if refused.code == "race":
        return _("Another login on this terminal happened at the same moment; try again.")
    return _("Wrong inmate number or PIN.")


async def log_in(kernel: Kernel, address: str, number: str, pin: str) -> ActiveSession:
    """Raises Throttled or LoginUnavailable before any PIN is hashed, LoginRefused after."""
    await throttle.before_attempt(kernel, address)
    try:
        active, replaced = await asyncio.to_thread(
            login, kernel.factory, kernel.session_policy, address=address, number=number, pin=pin, now=utcnow())
    except LoginRefused as refused:
        tag = Tag.PORTAL_LOGIN_LOCKED if refused.code.startswith("locked") else Tag.PORTAL_LOGIN_FAILURE
        await record(kernel, AuditEvent(tag, "portal", actor=refused.inmate, terminal=refused.terminal,
                                        client_addr=address, reason=refused.code))
        raise
    for old in replaced:
        await announce(kernel, SessionEnded(old.terminal_address, old.token, EndReason.REPLACED))
    await announce(kernel, SessionStarted(active.terminal_address, active.token))
    await record(kernel, AuditEvent(Tag.PORTAL_LOGIN_SUCCESS, "portal", actor=active.inmate_number,
                                    terminal=active.terminal_name, client_addr=address))
    return active


async def log_out(kernel: Kernel, active: ActiveSession, address: str) -> None:
    forget_sessions()
    await asyncio.to_thread(end_session, kernel.factory, active.token, EndReason.LOGOUT, utcnow())
    await announce(kernel, SessionEnded(active.terminal_address, active.token, EndReason.LOGOUT))
    await record(kernel, AuditEvent(Tag.PORTAL_LOGOUT, "portal", actor=active.inmate_number,
                                    terminal=active.terminal_name, client_addr=address))


async def choose_language(kernel: Kernel, active: ActiveSession, language: str) -> None:
    """Remembered per inmate: the next login, on any terminal, opens in this language; the gateway nodes drop
    what they hold of this terminal, so its next block page is in this language too."""
    await asyncio.to_thread(_store_language, kernel, active.inmate_number, language)
    forget_sessions()
    await announce(kernel, LanguageChanged(active.terminal_address, active.token, language))


def _store_language(kernel: Kernel, number: str, language: str) -> None:
    with kernel.factory.begin() as session:
        set_language(session, number, language)


def opening(kernel: Kernel, kind: str, today: date) -> tuple[list[str] | None, list[str]]:
    """The weekly hours of this kind of terminal (None: open at any time) and the closed days of the next four
    weeks, as the inmate reads them."""
    hours = kernel.policies.snapshot.hours
    windows = hours.kinds.get(kind)
    weekly = None if windows is None else [i18n.format_weekly(w.days, w.start, w.end) for w in windows]
    soon = sorted(d for d in hours.closed if today <= d < today + timedelta(days=28))
    zone = ZoneInfo(kernel.settings["facility.timezone"])
    return weekly, [i18n.format_day(d, zone) for d in soon]


@dataclass(frozen=True, slots=True)
class Minutes:
    category: str
    used: int
    budget: int | None
    """None: unlimited."""

    @property
    def left(self) -> int | None:
        return None if self.budget is None else max(self.budget - self.used, 0)


async def minutes_today(kernel: Kernel, active: ActiveSession, now: datetime) -> list[Minutes] | None:
    """Minutes used and left today in each category that has a budget or was used; None if the quota store does
    not answer (the gateway refuses metered traffic meanwhile)."""
    policy = kernel.policies.snapshot
    who = active.subject
    budgeted = policy.budgets.categories(who.inmate, who.groups)
    candidates = sorted(budgeted | {rule.quota for rule in policy.rules})
    try:
        used = await kernel.quota.usage_many(who.inmate, candidates, local_minute(now, policy.timezone).day)
    except QuotaUnavailable:
        return None
    return [Minutes(c, used[c], policy.budgets.budget(who.inmate, who.groups, c)) for c in candidates
            if c in budgeted or used[c]]


async def current(kernel: Kernel, address: str, token: str | None) -> ActiveSession | None:
    """The session of this terminal, if the browser holds its cookie; looked up again after `SESSION_SECONDS`."""
    if not token:
        return None
    key, now = (address, token), time.monotonic()
    if (kept := _sessions.get(key)) is not None and now - kept[0] < SESSION_SECONDS:
        return kept[1]
    _terminal, active = await asyncio.to_thread(resolve, kernel.factory, kernel.session_policy, address, utcnow(),
                                                touch=True)
    if active is None or active.token != token:
        _sessions.pop(key, None)
        return None
    if len(_sessions) > 10_000:
        _sessions.clear()
    _sessions[key] = (now, active)
    return active
