"""Login rate limits, checked before any password hash or OTP is computed.

Three counters: attempts per minute across the portal, attempts per client address, and failures per staff
account. Each refusal says when to try again. If the counters cannot be read, logins are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.ratelimit import Limit, RateLimitUnavailable, Verdict
from portal import i18n
from portal.i18n import _


class Throttled(Exception):
    """Too many attempts; `scope` is `portal`, `address` or `account`; `retry_after` in seconds."""

    def __init__(self, scope: str, retry_after: float) -> None:
        super().__init__(f"too many login attempts ({scope}); retry in {retry_after:.0f} s")
        self.scope, self.retry_after = scope, retry_after

    @property
    def retry_at(self) -> datetime:
        return utcnow() + timedelta(seconds=max(self.retry_after, 1))

    def message(self, zone: ZoneInfo) -> str:
        """What the person reads: which limit, and the time (in the facility's zone) to try again."""
        at = i18n.format_time(self.retry_at + timedelta(seconds=59), zone)
        if self.scope == "account":
            return _("Too many failed attempts for this account. Try again at %(time)s.") % {"time": at}
        if self.scope == "address":
            return _("Too many login attempts from this computer. Try again at %(time)s.") % {"time": at}
        return _("The portal is receiving too many login attempts. Try again at %(time)s.") % {"time": at}


class LoginUnavailable(Exception):
    """The rate-limit store does not answer: refuse rather than let attempts through uncounted."""

    def message(self) -> str:
        return _("Logging in is not possible right now. Try again in a minute; if it goes on, tell staff.")


@dataclass(frozen=True, slots=True)
class Limits:
    portal: Limit
    address: Limit
    account: Limit

    @classmethod
    def of(cls, kernel: Kernel) -> Limits:
        values = kernel.settings.values
        window = values["login.window_minutes"] * 60
        return cls(Limit("login-portal", values["login.attempts_per_minute"], 60),
                   Limit("login-address", values["login.attempts_per_address"], window),
                   Limit("login-account", values["login.staff_failures_per_account"], window))


def _raise(scope: str, verdict: Verdict) -> None:
    if not verdict.allowed:
        raise Throttled(scope, verdict.retry_after)


async def before_attempt(kernel: Kernel, address: str, account: str = "") -> None:
    """Count this attempt for the portal and the address; refuse if they, or the account's failures, are over."""
    limits = Limits.of(kernel)
    try:
        _raise("portal", await kernel.limiter.hit(limits.portal, "all"))
        _raise("address", await kernel.limiter.hit(limits.address, address))
        if account:
            _raise("account", await kernel.limiter.peek(limits.account, account))
    except RateLimitUnavailable as exc:
        raise LoginUnavailable(str(exc)) from exc


async def failed(kernel: Kernel, account: str) -> None:
    try:
        await kernel.limiter.hit(Limits.of(kernel).account, account)
    except RateLimitUnavailable as exc:
        raise LoginUnavailable(str(exc)) from exc


async def succeeded(kernel: Kernel, account: str) -> None:
    try:
        await kernel.limiter.clear(Limits.of(kernel).account, account)
    except RateLimitUnavailable as exc:
        raise LoginUnavailable(str(exc)) from exc
