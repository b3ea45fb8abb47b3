"""Staff login in two steps (password, then TOTP or a recovery code), enrolment, and the account page's actions.

Every step is rate limited before any hash or OTP work and recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import segno
from sqlalchemy import select

from gatehouse import otp
from gatehouse import staff as accounts
from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffAccount
from gatehouse.kernel import Kernel
from gatehouse.staff import EndReason, NoticeKind, StaffIdentity, StaffSessionPolicy
from portal import throttle
from portal.auth.services import record


class WrongCredentials(Exception):
    """Unknown user, wrong password or disabled account: one message for all, so none is revealed."""


class CodeRefused(Exception):
    """`reason`: invalid, out-of-sync (with `steps`), replayed, or recovery (unknown or used recovery code)."""

    def __init__(self, reason: str, steps: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.steps = reason, steps


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    uri: str
    qr: str
    """The provisioning URI as an SVG data URI, drawn here: terminals and staff PCs need no outside service."""


def _event(tag: Tag, who: str, address: str, reason: str = "") -> AuditEvent:
    return AuditEvent(tag, "portal", actor=who, client_addr=address, reason=reason)


async def _before_attempt(kernel: Kernel, address: str, username: str) -> throttle.Attempt:
    """Reserve the attempt and refuse it, recorded, if a limit is reached: before any hash or OTP is computed.
    A wrong secret then needs nothing more (its reservation is the failure); a right one gives it back."""
    try:
        return await throttle.before_attempt(kernel, address, username)
    except throttle.Throttled as exc:
        await record(kernel, _event(Tag.STAFF_LOGIN_THROTTLED, username, address, exc.scope))
        raise


async def password_step(kernel: Kernel, policy: StaffSessionPolicy, address: str, username: str,
                        password: str) -> str:
    """A session token at the password stage; raises Throttled, LoginUnavailable or WrongCredentials."""
    username = username.strip().lower()
    attempt = await _before_attempt(kernel, address, username)
    account_id = await asyncio.to_thread(accounts.verify_password, kernel.factory, username, password)
    if account_id is None:
        await record(kernel, _event(Tag.STAFF_LOGIN_FAILURE, username, address, "password"))
        raise WrongCredentials(username)
    await attempt.right()
    await record(kernel, _event(Tag.STAFF_LOGIN_PASSWORD, username, address))
    return await asyncio.to_thread(accounts.start_session, kernel.factory, policy, account_id, address, utcnow())


def _secret(kernel: Kernel, account_id: int) -> tuple[str, int | None]:
    with kernel.factory() as session:
        row = session.execute(select(StaffAccount.totp_secret, StaffAccount.totp_last_step)
                              .where(StaffAccount.id == account_id)).one()
        return row[0], row[1]


async def enrolment(kernel: Kernel, who: StaffIdentity) -> Enrolment:
    secret, _last = await asyncio.to_thread(_secret, kernel, who.account_id)
    uri = otp.provisioning_uri(secret, who.username, f"Gatehouse {kernel.settings['facility.name']}")
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="#000", light="#fff")
    return Enrolment(secret, uri, qr)


async def _check_code(kernel: Kernel, who: StaffIdentity, address: str, code: str) -> None:
    """Accept a TOTP code once: pure check, then the atomic step update; a loser of a race is a replay."""
    secret, last = await asyncio.to_thread(_secret, kernel, who.account_id)
    now = utcnow()
    try:
        step = otp.matching_step(secret, code, time.time(), last)
        if not await asyncio.to_thread(accounts.accept_step, kernel.factory, who.account_id, step, now,
                                       who.session_id):
            raise otp.Replayed("another submission of this code won")
    except otp.Replayed:
        if await _double_click(kernel, who, secret, code):
            raise CodeRefused("double") from None
        await asyncio.to_thread(accounts.add_notice, kernel.factory, who.account_id, NoticeKind.TOTP_REPLAYED,
                                address, now)
        await record(kernel, _event(Tag.STAFF_TOTP_REPLAYED, who.username, address))
        raise CodeRefused("replayed") from None
    except otp.OutOfSync as drift:
        await record(kernel, _event(Tag.STAFF_TOTP_FAILURE, who.username, address, f"clock {drift.steps:+d} steps"))
        raise CodeRefused("out-of-sync", drift.steps) from None
    except otp.InvalidCode:
        await record(kernel, _event(Tag.STAFF_TOTP_FAILURE, who.username, address, "invalid"))
        raise CodeRefused("invalid") from None


async def _checked(attempt: throttle.Attempt, kernel: Kernel, who: StaffIdentity, address: str,
                   code: str) -> None:
    """`_check_code` under a reservation: a double click is no failure, so it gives its reservation back."""
    try:
        await _check_code(kernel, who, address, code)
    except CodeRefused as refused:
        if refused.reason == "double":
            await attempt.right()
        raise


async def _double_click(kernel: Kernel, who: StaffIdentity, secret: str, code: str) -> bool:
    """The same login sending the code it just had accepted: the first request logs in, this one is no replay."""
    try:
        step = otp.matching_step(secret, code, time.time())
    except otp.InvalidCode:
        return False
    return await asyncio.to_thread(accounts.submitted_again, kernel.factory, who.account_id, step, who.session_id)


async def second_step(kernel: Kernel, policy: StaffSessionPolicy, who: StaffIdentity, token: str, address: str,
                      code: str) -> str:
    """A TOTP code or a recovery code; the full session's new token on success."""
    attempt = await _before_attempt(kernel, address, who.username)
    if otp.looks_like_recovery_code(code):
        now = utcnow()
        if not await asyncio.to_thread(accounts.use_recovery_code, kernel.factory, who.account_id, code, now):
            await record(kernel, _event(Tag.STAFF_TOTP_FAILURE, who.username, address, "recovery code"))
            raise CodeRefused("recovery")
        await asyncio.to_thread(accounts.add_notice, kernel.factory, who.account_id,
                                NoticeKind.RECOVERY_CODE_USED, address, now)
        await record(kernel, _event(Tag.STAFF_RECOVERY_USED, who.username, address))
    else:
        await _checked(attempt, kernel, who, address, code)
    await attempt.logged_in()
    await record(kernel, _event(Tag.STAFF_LOGIN_SUCCESS, who.username, address))
    return await asyncio.to_thread(accounts.promote, kernel.factory, policy, token, utcnow())


async def enrol(kernel: Kernel, policy: StaffSessionPolicy, who: StaffIdentity, token: str, address: str,
                code: str) -> tuple[str, list[str]]:
    """The first code from the app confirms enrolment; ten recovery codes are made, to be shown once."""
    attempt = await _before_attempt(kernel, address, who.username)
    await _checked(attempt, kernel, who, address, code)
    codes = await asyncio.to_thread(accounts.new_recovery_codes, kernel.factory, who.account_id, utcnow())
    await attempt.logged_in()
    await record(kernel, _event(Tag.STAFF_TOTP_ENROLLED, who.username, address))
    await record(kernel, _event(Tag.STAFF_LOGIN_SUCCESS, who.username, address))
    return await asyncio.to_thread(accounts.promote, kernel.factory, policy, token, utcnow()), codes


async def log_out(kernel: Kernel, who: StaffIdentity | None, token: str, address: str) -> None:
    await asyncio.to_thread(accounts.end_session, kernel.factory, token, EndReason.LOGOUT, utcnow())
    if who is not None:
        await record(kernel, _event(Tag.STAFF_LOGOUT, who.username, address))


def _change_password(kernel: Kernel, who: StaffIdentity, current: str, new: str) -> bool:
    if accounts.verify_password(kernel.factory, who.username, current) is None:
        return False
    with kernel.factory.begin() as session:
        account = session.get(StaffAccount, who.account_id)
        if account is None:
            return False
        now = utcnow()
        accounts.change_password(session, account, new, now)
        accounts.end_sessions_of(session, account.id, EndReason.PASSWORD_CHANGED, now, keep=who.session_id)
        return True


async def change_password(kernel: Kernel, who: StaffIdentity, token: str, address: str, current: str,
                          new: str) -> str | None:
    """Every session of the account ends (a stolen one too); this browser gets a new one. None: wrong password.

    The current password is checked under the login limits, so a stolen session cannot guess it without end.
    """
    attempt = await _before_attempt(kernel, address, who.username)
    if not await asyncio.to_thread(_change_password, kernel, who, current, new):
        await record(kernel, _event(Tag.STAFF_LOGIN_FAILURE, who.username, address, "password change"))
        return None
    await attempt.right()
    await record(kernel, _event(Tag.STAFF_PASSWORD_CHANGED, who.username, address))
    return await asyncio.to_thread(accounts.rotate, kernel.factory, token, EndReason.PASSWORD_CHANGED, utcnow())


async def regenerate_codes(kernel: Kernel, who: StaffIdentity, address: str, password: str) -> list[str] | None:
    attempt = await _before_attempt(kernel, address, who.username)
    if await asyncio.to_thread(accounts.verify_password, kernel.factory, who.username, password) is None:
        await record(kernel, _event(Tag.STAFF_LOGIN_FAILURE, who.username, address, "recovery codes"))
        return None
    await attempt.right()
    codes = await asyncio.to_thread(accounts.new_recovery_codes, kernel.factory, who.account_id, utcnow())
    await record(kernel, _event(Tag.STAFF_RECOVERY_REGENERATED, who.username, address))
    return codes



async def lift_limits(kernel: Kernel, username: str, actor: str, address: str) -> int:
    """An administrator lets an account log in again at once: its wait and its failures from every address
    are cleared, and who did it is recorded. The number of addresses that had failures."""
    cleared = await throttle.unlock(kernel, username)
    await record(kernel, AuditEvent(Tag.ADMIN_STAFF_UNLOCKED, "portal", actor=actor, client_addr=address,
                                    reason=f"{username} login limits lifted ({cleared} addresses)"))
    return cleared
