"""Login limits as the portal applies them: reserved before any password hash or OTP is computed (see
gatehouse.logins), each refusal telling the person when to try again, in their language. If the counters
cannot be read, logins are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gatehouse import logins
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.ratelimit import RateLimitUnavailable
from portal import i18n
from portal.i18n import _, ngettext


class Throttled(logins.Throttled):
    """Too many attempts (see `gatehouse.logins.Throttled`), said to the person in their language."""

    @property
    def retry_at(self) -> datetime:
        return utcnow() + timedelta(seconds=max(self.retry_after, 1))

    def message(self, zone: ZoneInfo) -> str:
        """What the person reads: which limit, and when (in the facility's zone, or in seconds) to try again."""
        if self.scope == "account":
            seconds = max(int(self.retry_after + 0.999), 1)
            return ngettext("Too many failed attempts for this account. Wait %(num)d second, then try again.",
                            "Too many failed attempts for this account. Wait %(num)d seconds, then try again.",
                            seconds) % {"num": seconds}
        at = i18n.format_time(self.retry_at + timedelta(seconds=59), zone)
        if self.scope == "account-address":
            return _("Too many failed attempts for this account. Try again at %(time)s.") % {"time": at}
        if self.scope == "address":
            return _("Too many login attempts from this computer. Try again at %(time)s.") % {"time": at}
        return _("The portal is receiving too many login attempts. Try again at %(time)s.") % {"time": at}


class LoginUnavailable(Exception):
    """The rate-limit store does not answer: refuse rather than let attempts through uncounted."""

    def message(self) -> str:
        return _("Logging in is not possible right now. Try again in a minute; if it goes on, tell staff.")


@dataclass(frozen=True, slots=True)
class Attempt:
    """A reserved attempt (see gatehouse.logins.Attempt), with an outage of the counters as LoginUnavailable."""

    reserved: logins.Attempt

    async def right(self) -> None:
        try:
            await self.reserved.right()
        except RateLimitUnavailable as exc:
            raise LoginUnavailable(str(exc)) from exc

    async def logged_in(self) -> None:
        try:
            await self.reserved.logged_in()
        except RateLimitUnavailable as exc:
            raise LoginUnavailable(str(exc)) from exc


async def before_attempt(kernel: Kernel, address: str, account: str = "", realm: str = logins.STAFF) -> Attempt:
    """Reserve this attempt for the portal, the address and, with `account`, the account; refuse if over."""
    try:
        return Attempt(await logins.reserve(kernel.limiter, logins.LoginLimits.of(kernel.settings), address,
                                            account, realm))
    except logins.Throttled as exc:
        raise Throttled(exc.scope, exc.retry_after) from None
    except RateLimitUnavailable as exc:
        raise LoginUnavailable(str(exc)) from exc


async def unlock(kernel: Kernel, account: str, realm: str = logins.STAFF) -> int:
    """An administrator lifts the account's limits (its wait, its failures from every address)."""
    try:
        return await logins.unlock(kernel.limiter, logins.LoginLimits.of(kernel.settings), account, realm)
    except RateLimitUnavailable as exc:
        raise LoginUnavailable(str(exc)) from exc
