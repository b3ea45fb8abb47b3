"""Daily budgets of active minutes per inmate and category, metered as one bit per minute of the local day.

A minute counts once however many requests fall in it, so a page with 80 images costs what one request costs.
Check-and-mark is one atomic step (one Lua script call in Redis), so several gateway nodes never spend a minute
twice or go over a budget together. A store that cannot answer raises `QuotaUnavailable` and the gateway
denies: metering never fails open.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gatehouse.errors import GatehouseError
from gatehouse.redisconn import bounded_redis, once_more_on_reconnect

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
MINUTES_MAX = 2 * 24 * 60
"""Bound of a minute index: a DST day lasts 23 or 25 hours, but an offset change can stretch a local day further
(Antarctica/Vostok's 31-hour 31 January 1994)."""
RETENTION = 2 * 24 * 3600.0
"""Seconds a day's bitmap lives after its first minute is marked: the whole day (25 hours at most) and the next."""


class QuotaUnavailable(GatehouseError):
    """The minute store did not answer; the gateway denies metered traffic until it does."""


@dataclass(frozen=True, slots=True)
class LocalMinute:
    day: date
    """The facility-local date; with the inmate and category it names one bitmap."""
    index: int
    """Real minutes elapsed since the local day began: 0-1379 on a 23-hour day, 0-1499 on a 25-hour one."""
    minutes_in_day: int


@functools.lru_cache(maxsize=64)
def day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant (UTC) of a local day. fold=0 takes the first of a repeated midnight, and maps a skipped
    midnight (America/Santiago springs from 00:00 to 01:00) to the instant the clocks jumped."""
    return datetime.combine(day, clock_time(0), tzinfo=zone).astimezone(UTC)


def local_minute(at: datetime, zone: tzinfo) -> LocalMinute:
    """Which local day `at` falls in and its minute there; `at` is aware, or naive meaning UTC.

    Arithmetic is done in UTC: subtracting two times of the same zone would count wall-clock minutes and give
    02:30 twice on the day clocks go back.
    """
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    day = utc.astimezone(zone).date()
    start = day_start(day, zone)
    length = (day_start(day + timedelta(days=1), zone) - start) // MINUTE
    return LocalMinute(day, (utc - start) // MINUTE, length)


@dataclass(frozen=True, slots=True)
class Mark:
    allowed: bool
    used: int
    """Minutes used in the day after this check (the bit of an allowed minute included)."""
    already_marked: bool
    """The minute was already spent: allowed without spending again."""


def _check_inmate(inmate: str) -> None:
    """Inmate numbers name Redis keys (inside a `{...}` hash tag), so they cannot carry its separators."""
    if not inmate or any(c in inmate for c in ":{}"):
        raise ValueError(f"inmate {inmate!r} cannot be empty or contain ':', '{{' or '}}'")


def _checked(inmate: str, minute: int, budget: int | None) -> None:
    _check_inmate(inmate)
    if not 0 <= minute < MINUTES_MAX:
        raise ValueError(f"minute index {minute} is outside a day (0-{MINUTES_MAX - 1})")
    if budget is not None and budget < 0:
        raise ValueError(f"budget {budget} must be 0 or more minutes, or None for unlimited")


class QuotaStore(Protocol):
    async def check_and_mark(self, inmate: str, category: str, day: date, minute: int,
                             budget: int | None) -> Mark:
        """Spend `minute` of the day if it is not spent yet and the budget allows; None is unlimited (marked all
        the same, so usage can be shown)."""

    async def usage(self, inmate: str, category: str, day: date) -> int:
        """Minutes used in the day."""

    async def usage_many(self, inmate: str, categories: Sequence[str], day: date) -> dict[str, int]:
        """Minutes used in each category, in one round trip (the inmate's home page)."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Day:
    expires: float
    bits: int = 0
    used: int = 0


class InProcessQuotaStore:
    """The embedded default: one process, one event loop; no await between check and mark makes it atomic."""

    def __init__(self, retention: float = RETENTION, clock: Callable[[], float] = time.monotonic) -> None:
        if retention <= 0:
            raise ValueError("retention must be a positive number of seconds")
        self._days: dict[tuple[str, str, date], _Day] = {}
        self._retention = retention
        self._clock = clock
        self._next_sweep = clock() + min(retention, 60.0)

    def _live(self, slot: tuple[str, str, date], now: float) -> _Day | None:
        if now >= self._next_sweep:
            self._sweep(now)
        found = self._days.get(slot)
        if found is not None and found.expires <= now:
            del self._days[slot]
            return None
        return found

    def _sweep(self, now: float) -> None:
        for slot in [s for s, d in self._days.items() if d.expires <= now]:
            del self._days[slot]
        self._next_sweep = now + min(self._retention, 60.0)

    async def check_and_mark(self, inmate: str, category: str, day: date, minute: int,
                             budget: int | None) -> Mark:
        _checked(inmate, minute, budget)
        now, slot = self._clock(), (inmate, category, day)
        found = self._live(slot, now)
        if found is not None and found.bits >> minute & 1:
            return Mark(True, found.used, True)
        used = found.used if found is not None else 0
        if budget is not None and used >= budget:
            return Mark(False, used, False)
        if found is None:
            found = self._days[slot] = _Day(now + self._retention)
        found.bits |= 1 << minute
        found.used += 1
        return Mark(True, found.used, False)

    async def usage(self, inmate: str, category: str, day: date) -> int:
        _check_inmate(inmate)
        found = self._live((inmate, category, day), self._clock())
        return found.used if found is not None else 0

    async def usage_many(self, inmate: str, categories: Sequence[str], day: date) -> dict[str, int]:
        return {category: await self.usage(inmate, category, day) for category in categories}

    async def close(self) -> None:
        self._days.clear()


# KEYS[1]: the day's bitmap. ARGV: minute index, budget (-1: unlimited), retention in ms.
# Returns {allowed, used after, already marked}; the TTL starts with the day's first minute.
_CHECK_AND_MARK = """
local minute = tonumber(ARGV[1])
if redis.call('GETBIT', KEYS[1], minute) == 1 then
  return {1, redis.call('BITCOUNT', KEYS[1]), 1}
end
local used = redis.call('BITCOUNT', KEYS[1])
local budget = tonumber(ARGV[2])
if budget >= 0 and used >= budget then return {0, used, 0} end
redis.call('SETBIT', KEYS[1], minute, 1)
if used == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, used + 1, 0}
"""


class RedisQuotaStore:
    """Bitmaps every gateway node shares; each check is one script call, each read one round trip."""

    def __init__(self, redis: Redis, prefix: str = "gh:quota:", retention: float = RETENTION) -> None:
        if retention <= 0:
            raise ValueError("retention must be a positive number of seconds")
        self._redis = redis
        self._prefix = prefix
        self._retention_ms = max(int(retention * 1000), 1)
        self._check_and_mark = redis.register_script(_CHECK_AND_MARK)
        self._failing = False

    @classmethod
    def from_url(cls, url: str, prefix: str = "gh:quota:", retention: float = RETENTION,
                 connections: int = 50, timeout: float = 2.0) -> RedisQuotaStore:
        return cls(bounded_redis(url, connections, timeout), prefix, retention)

    def _key(self, inmate: str, category: str, day: date) -> str:
        """The inmate is the hash tag: all of one inmate's days and categories live in one cluster slot."""
        return f"{self._prefix}{{{inmate}}}:{day.isoformat()}:{category}"

    def _down(self, exc: RedisError) -> QuotaUnavailable:
        if not self._failing:
            log.error("quotas: Redis does not answer (%s); metered traffic is refused until it does", exc)
            self._failing = True
        return QuotaUnavailable("the quota store does not answer")

    def _up(self) -> None:
        if self._failing:
            log.warning("quotas: Redis answers again")
            self._failing = False

    async def check_and_mark(self, inmate: str, category: str, day: date, minute: int,
                             budget: int | None) -> Mark:
        _checked(inmate, minute, budget)
        key, args = self._key(inmate, category, day), [minute, -1 if budget is None else budget, self._retention_ms]
        try:
            # Run twice at most (a broken connection): a minute already marked by the first run is not spent again.
            allowed, used, marked = await once_more_on_reconnect(
                self._redis, lambda: self._check_and_mark(keys=[key], args=args))
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()
        return Mark(bool(allowed), int(used), bool(marked))

    async def usage(self, inmate: str, category: str, day: date) -> int:
        return (await self.usage_many(inmate, [category], day))[category]

    async def usage_many(self, inmate: str, categories: Sequence[str], day: date) -> dict[str, int]:
        _check_inmate(inmate)
        keys = [self._key(inmate, category, day) for category in categories]

        async def counted() -> list[int]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.bitcount(key)
                return list(await pipe.execute())

        try:
            counts = await once_more_on_reconnect(self._redis, counted)
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()
        return {category: int(n) for category, n in zip(categories, counts, strict=True)}

    async def close(self) -> None:
        await self._redis.aclose()


def quota_store_for(redis_url: str) -> QuotaStore:
    return RedisQuotaStore.from_url(redis_url) if redis_url else InProcessQuotaStore()
