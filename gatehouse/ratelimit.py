"""Rate limits shared by every portal worker: fixed windows counted in Redis, or in process by default.

Login forms count attempts per address and globally, and failures per account, before any password hash or
OTP is computed (so a flood costs the attacker more than it costs us). A limiter that cannot answer refuses:
`RateLimitUnavailable`, never a silent pass (Warehouse's limiter allows on Redis errors; ours does not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gatehouse.errors import GatehouseError
from gatehouse.redisconn import bounded_redis

log = logging.getLogger(__name__)


class RateLimitUnavailable(GatehouseError):
    """The shared counter store did not answer; callers refuse the attempt."""


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    limit: int
    window: float
    """Seconds; the count starts again when the window that began with the first hit ends."""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: float
    """Seconds until the window ends (0 when nothing was counted)."""


class RateLimiter(Protocol):
    async def hit(self, limit: Limit, key: str) -> Verdict:
        """Count one attempt and say whether it is within the limit."""

    async def peek(self, limit: Limit, key: str) -> Verdict:
        """Say whether one more attempt would be within the limit, counting nothing."""

    async def clear(self, limit: Limit, key: str) -> None: ...

    async def close(self) -> None: ...


class InProcessLimiter:
    """The embedded default: one process, one dictionary, the same semantics as Redis."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._clock = clock

    def _current(self, slot: str, now: float) -> tuple[int, float]:
        """The count and end of the slot's window, (0, 0) once it has ended."""
        count, ends = self._windows.get(slot, (0, 0.0))
        if ends <= now:
            self._windows.pop(slot, None)
            return 0, 0.0
        return count, ends

    async def hit(self, limit: Limit, key: str) -> Verdict:
        slot, now = f"{limit.name}:{key}", self._clock()
        count, ends = self._current(slot, now)
        if count == 0:
            ends = now + limit.window
        self._windows[slot] = (count + 1, ends)  # the window keeps the end its first hit gave it
        if len(self._windows) > 100_000:
            self._sweep()
        return Verdict(count + 1 <= limit.limit, count + 1, ends - now)

    async def peek(self, limit: Limit, key: str) -> Verdict:
        now = self._clock()
        count, ends = self._current(f"{limit.name}:{key}", now)
        return Verdict(count < limit.limit, count, ends - now if count else 0.0)

    async def clear(self, limit: Limit, key: str) -> None:
        self._windows.pop(f"{limit.name}:{key}", None)

    def _sweep(self) -> None:
        now = self._clock()
        for slot in [s for s, (_, ends) in self._windows.items() if ends <= now]:
            del self._windows[slot]

    async def close(self) -> None:
        self._windows.clear()


# One round trip: count, start the window's clock on the first hit, and say how long the window still runs.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


class RedisLimiter:
    """Counters every node shares; each check is one atomic script call."""

    def __init__(self, redis: Redis, prefix: str = "gh:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._hit = redis.register_script(_HIT)
        self._failing = False

    @classmethod
    def from_url(cls, url: str) -> RedisLimiter:
        return cls(bounded_redis(url))

    def _key(self, limit: Limit, key: str) -> str:
        return f"{self._prefix}{limit.name}:{key}"

    def _down(self, exc: RedisError) -> RateLimitUnavailable:
        if not self._failing:
            log.error("rate limits: Redis does not answer (%s); logins are refused until it does", exc)
            self._failing = True
        return RateLimitUnavailable("the rate-limit store does not answer")

    def _up(self) -> None:
        if self._failing:
            log.warning("rate limits: Redis answers again")
            self._failing = False

    async def hit(self, limit: Limit, key: str) -> Verdict:
        try:
            count, ttl = await self._hit(keys=[self._key(limit, key)], args=[int(limit.window * 1000)])
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()
        return Verdict(int(count) <= limit.limit, int(count), max(int(ttl), 0) / 1000)

    async def peek(self, limit: Limit, key: str) -> Verdict:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._key(limit, key))
                pipe.pttl(self._key(limit, key))
                count, ttl = await pipe.execute()
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()
        used = int(count or 0)
        return Verdict(used < limit.limit, used, max(int(ttl), 0) / 1000 if used else 0.0)

    async def clear(self, limit: Limit, key: str) -> None:
        try:
            await self._redis.delete(self._key(limit, key))
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()

    async def close(self) -> None:
        await self._redis.aclose()


def limiter_for(redis_url: str) -> RateLimiter:
    return RedisLimiter.from_url(redis_url) if redis_url else InProcessLimiter()
