"""Login limits, reserved before any password hash or OTP is computed: one mechanism for every kind of login.

Four counters: attempts per minute across the portal, attempts per client address, failures for one account
from one address (a hard limit), and failures for one account from anywhere (a pace: past the free ones each
attempt waits longer, never a lock, so an attacker who knows a username cannot shut its holder out). An
address where the account logged in with every factor within `KNOWN_FOR` skips the pace (its hard limit
still holds): an attacker who keeps taking each turn as it opens still cannot keep the holder out there.

Each counter is reserved by one atomic increment before the secret is checked; a check before and a count
after let 100 concurrent wrong passwords all reach the hash. Staff accounts are the `staff` realm; another
kind of account (visitors) names its own realm, so their keys never meet.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatehouse.errors import GatehouseError
from gatehouse.ratelimit import Limit, Pace, RateLimiter, Verdict
from gatehouse.settings import Settings

STAFF = "staff"
KNOWN_FOR = 30 * 24 * 3600
"""Seconds an address stays known for an account after a login there with every factor."""


class Throttled(GatehouseError):
    """Too many attempts; `scope` is `portal`, `address`, `account-address` (this account from this address) or
    `account` (a wait for the account from anywhere); `retry_after` in seconds."""

    def __init__(self, scope: str, retry_after: float) -> None:
        super().__init__(f"too many login attempts ({scope}); retry in {retry_after:.0f} s")
        self.scope, self.retry_after = scope, retry_after


@dataclass(frozen=True, slots=True)
class LoginLimits:
    portal: Limit
    address: Limit
    pair: Limit
    """Failures for one account from one address: past it that address waits for the window's end."""
    account: Pace
    """Failures for one account from every address: past the free ones, a growing wait."""
    known: Limit
    """Logins with every factor per account and address: one within its window makes the address known."""

    @classmethod
    def of(cls, settings: Settings) -> LoginLimits:
        values = settings.values
        window, failures = values["login.window_minutes"] * 60, values["login.staff_failures_per_account"]
        return cls(Limit("login-portal", values["login.attempts_per_minute"], 60),
                   Limit("login-address", values["login.attempts_per_address"], window),
                   Limit("login-account-address", failures, window),
                   Pace("login-account", failures, float(values["login.staff_wait_seconds"]),
                        float(values["login.staff_wait_max_seconds"]), window),
                   Limit("login-known", 1, KNOWN_FOR))


def _raise(scope: str, verdict: Verdict) -> None:
    if not verdict.allowed:
        raise Throttled(scope, verdict.retry_after)


def pair_key(realm: str, account: str, address: str) -> str:
    return f"{realm}:{account}|{address}"


def account_key(realm: str, account: str) -> str:
    return f"{realm}:{account}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One reserved attempt. A wrong secret needs nothing more: its reservation is the failure counted."""

    limiter: RateLimiter
    limits: LoginLimits
    address: str
    account: str
    realm: str
    paced: bool
    """Whether the account's pace reserved this attempt (not at a known address)."""

    async def right(self) -> None:
        """The secret was right: the reservations are given back, and the wait this attempt began ends."""
        if self.account:
            await self.limiter.release(self.limits.pair, pair_key(self.realm, self.account, self.address))
            if self.paced:
                await self.limiter.release(self.limits.account, account_key(self.realm, self.account))

    async def logged_in(self) -> None:
        """Every factor passed: this account's failures from this address are forgotten, and the address is known
        to it for `KNOWN_FOR` from now. The account's wait ends only for a login it paced: a login at a known
        address says nothing of the failures elsewhere, and ending their wait would give them fresh turns."""
        if self.account:
            pair = pair_key(self.realm, self.account, self.address)
            await self.limiter.clear(self.limits.pair, pair)
            if self.paced:
                await self.limiter.clear(self.limits.account, account_key(self.realm, self.account))
            await self.limiter.clear(self.limits.known, pair)
            await self.limiter.hit(self.limits.known, pair)


async def reserve(limiter: RateLimiter, limits: LoginLimits, address: str, account: str = "",
                  realm: str = STAFF) -> Attempt:
    """Reserve this attempt for the portal, the address and, with `account`, the account from this address and
    (unless the address is known to it) from anywhere; raise `Throttled` if any is over (`RateLimitUnavailable`
    if the counters do not answer). A refusal by the account's wait gives the address's reservation back, so
    the holder who tries again too soon is not locked out by it."""
    _raise("portal", await limiter.hit(limits.portal, "all"))
    _raise("address", await limiter.hit(limits.address, address))
    if not account:
        return Attempt(limiter, limits, address, account, realm, paced=False)
    pair = pair_key(realm, account, address)
    _raise("account-address", await limiter.hit(limits.pair, pair))
    if (await limiter.peek(limits.known, pair)).count:
        return Attempt(limiter, limits, address, account, realm, paced=False)
    paced = await limiter.pace(limits.account, account_key(realm, account))
    if not paced.allowed:
        await limiter.release(limits.pair, pair)
        raise Throttled("account", paced.retry_after)
    return Attempt(limiter, limits, address, account, realm, paced=True)


async def unlock(limiter: RateLimiter, limits: LoginLimits, account: str, realm: str = STAFF) -> int:
    """An administrator lifts an account's limits: its wait, and its failures from every address (the number of
    addresses that had some). Known addresses stay known."""
    cleared = await limiter.clear_prefix(limits.pair, pair_key(realm, account, ""))
    await limiter.clear(limits.account, account_key(realm, account))
    return cleared
