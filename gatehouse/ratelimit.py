"""Rate limits shared by every portal worker: fixed windows and paces, counted in Redis or in process by default.

Every count is a reservation: one atomic increment that returns the new count, taken before any password hash
or OTP is computed, so of a hundred concurrent attempts no more than the limit reach the hash (a check before
and a count after let them all through). An attempt that turns out right gives its reservation back
(`release`). A `Pace` never locks: past its free attempts each one waits longer than the last, up to a cap.
A limiter that cannot answer refuses: `RateLimitUnavailable`, never a silent pass (Warehouse's limiter allows
on Redis errors; ours does not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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
class Pace:
    """A growing wait instead of a lock: `free` attempts, then each must come `first` seconds after the one
    before it, twice as long each time, at most `longest`; forgotten `window` seconds after the last one."""

    name: str
    free: int
    first: float
    longest: float
    window: float

    def wait(self, count: int) -> float:
        """Seconds the attempt after the `count`-th must wait."""
        if count < self.free:
            return 0.0
        return min(self.first * 2.0 ** min(count - self.free, 40), self.longest)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: float
    """Limit: seconds until the window ends (0 when nothing was counted). Pace: seconds until the next attempt
    may come (refused: from now; allowed: the wait this attempt put on the next one)."""


class RateLimiter(Protocol):
    async def hit(self, limit: Limit, key: str) -> Verdict:
        """Reserve one attempt: one atomic increment; the new count says whether it is within the limit."""

    async def peek(self, limit: Limit, key: str) -> Verdict:
        """Say whether one more attempt would be within the limit, counting nothing."""

    async def pace(self, pace: Pace, key: str) -> Verdict:
        """Reserve one attempt if its wait is over (counted, and the next wait starts), else refuse, counting
        nothing: atomic, so concurrent attempts after a wait cannot all pass."""

    async def release(self, limit: Limit | Pace, key: str) -> None:
        """Give back one reservation of an attempt that was right (never below zero); for a pace, the wait that
        attempt put on the next ends too."""

    async def clear(self, limit: Limit | Pace, key: str) -> None: ...

    async def clear_prefix(self, limit: Limit | Pace, prefix: str) -> int:
        """Clear every key of `limit` that starts with `prefix` (an admin lifting an account's limits from
        every address); the number cleared."""

    async def close(self) -> None: ...


class InProcessLimiter:
    """The embedded default: one process, one dictionary, the same semantics as Redis. Each operation reads and
    writes without awaiting in between, so on one event loop it is as atomic as a Redis script."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._paces: dict[str, tuple[int, float, float]] = {}
        """slot -> (count, next attempt not before, forgotten at)."""
        self._clock = clock

    def _current(self, slot: str, now: float) -> tuple[int, float]:
        """The count and end of the slot's window, (0, 0) once it has ended."""
        count, ends = self._windows.get(slot, (0, 0.0))
        if ends <= now:
            self._windows.pop(slot, None)
            return 0, 0.0
        return count, ends

    def _pace_state(self, slot: str, now: float) -> tuple[int, float, float]:
        count, after, forgotten = self._paces.get(slot, (0, 0.0, 0.0))
        if forgotten <= now:
            self._paces.pop(slot, None)
            return 0, 0.0, 0.0
        return count, after, forgotten

    async def hit(self, limit: Limit, key: str) -> Verdict:
        slot, now = f"{limit.name}:{key}", self._clock()
        count, ends = self._current(slot, now)
        if ends == 0.0:
            ends = now + limit.window
        self._windows[slot] = (count + 1, ends)  # the window keeps the end its first hit gave it
        if len(self._windows) > 100_000:
            self._sweep()
        return Verdict(count + 1 <= limit.limit, count + 1, ends - now)

    async def peek(self, limit: Limit, key: str) -> Verdict:
        now = self._clock()
        count, ends = self._current(f"{limit.name}:{key}", now)
        return Verdict(count < limit.limit, count, ends - now if count else 0.0)

    async def pace(self, pace: Pace, key: str) -> Verdict:
        slot, now = f"{pace.name}:{key}", self._clock()
        count, after, _forgotten = self._pace_state(slot, now)
        if now < after:
            return Verdict(False, count, after - now)
        wait = pace.wait(count + 1)
        self._paces[slot] = (count + 1, now + wait, now + max(pace.window, wait))
        if len(self._paces) > 100_000:
            self._sweep()
        return Verdict(True, count + 1, wait)

    async def release(self, limit: Limit | Pace, key: str) -> None:
        slot, now = f"{limit.name}:{key}", self._clock()
        if isinstance(limit, Pace):
            count, _after, forgotten = self._pace_state(slot, now)
            if count:
                self._paces[slot] = (count - 1, 0.0, forgotten)
            return
        count, ends = self._current(slot, now)
        if count:
            self._windows[slot] = (count - 1, ends)

    async def clear(self, limit: Limit | Pace, key: str) -> None:
        self._windows.pop(f"{limit.name}:{key}", None)
        self._paces.pop(f"{limit.name}:{key}", None)

    async def clear_prefix(self, limit: Limit | Pace, prefix: str) -> int:
        start = f"{limit.name}:{prefix}"
        table: dict[str, Any] = self._paces if isinstance(limit, Pace) else self._windows
        slots = [slot for slot in table if slot.startswith(start)]
        for slot in slots:
            del table[slot]
        return len(slots)

    def _sweep(self) -> None:
        now = self._clock()
        for slot in [s for s, (_, ends) in self._windows.items() if ends <= now]:
            del self._windows[slot]
        for slot in [s for s, (_, _after, forgotten) in self._paces.items() if forgotten <= now]:
            del self._paces[slot]

    async def close(self) -> None:
        self._windows.clear()
        self._paces.clear()


# One round trip: count, start the window's clock on the first hit (a count given back to zero keeps its
# window), and say how long the window still runs.
_HIT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""

# Give one back, never below zero; the window keeps its end.
_RELEASE_COUNT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return n
"""

# A pace as a hash {n, after}: Redis's own clock, so every node measures the wait the same way. ARGV: free,
# first wait, longest wait, window (milliseconds). Returns {allowed, count, milliseconds}.
_PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local after = tonumber(redis.call('HGET', KEYS[1], 'after') or '0')
if now < after then return {0, n, after - now} end
n = n + 1
local free, first, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
if n >= free then wait = math.floor(math.min(first * 2 ^ math.min(n - free, 40), longest)) end
redis.call('HSET', KEYS[1], 'n', n, 'after', now + wait)
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[4]), wait))
return {1, n, wait}
"""

_RELEASE_PACE = """
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n > 0 then redis.call('HSET', KEYS[1], 'n', n - 1, 'after', 0) end
return n
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisLimiter:
    """Counters every node shares; each check is one atomic script call."""

    def __init__(self, redis: Redis, prefix: str = "gh:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._hit = redis.register_script(_HIT)
        self._release_count = redis.register_script(_RELEASE_COUNT)
        self._pace = redis.register_script(_PACE)
        self._release_pace = redis.register_script(_RELEASE_PACE)
        self._failing = False

    @classmethod
    def from_url(cls, url: str) -> RedisLimiter:
        return cls(bounded_redis(url))

    def _key(self, limit: Limit | Pace, key: str) -> str:
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

    async def pace(self, pace: Pace, key: str) -> Verdict:
        try:
            allowed, count, wait = await self._pace(
                keys=[self._key(pace, key)],
                args=[pace.free, _ms(pace.first), _ms(pace.longest), _ms(pace.window)])
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()
        return Verdict(bool(allowed), int(count), max(int(wait), 0) / 1000)

    async def release(self, limit: Limit | Pace, key: str) -> None:
        script = self._release_pace if isinstance(limit, Pace) else self._release_count
        try:
            await script(keys=[self._key(limit, key)])
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()

    async def clear(self, limit: Limit | Pace, key: str) -> None:
        try:
            await self._redis.delete(self._key(limit, key))
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()

    async def clear_prefix(self, limit: Limit | Pace, prefix: str) -> int:
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self._key(limit, prefix)) + "*"
        try:
            keys = [key async for key in self._redis.scan_iter(match=pattern, count=1000)]
            if keys:
                await self._redis.delete(*keys)
        except RedisError as exc:
            raise self._down(exc) from exc
        self._up()
        return len(keys)

    async def close(self) -> None:
        await self._redis.aclose()


def limiter_for(redis_url: str) -> RateLimiter:
    return RedisLimiter.from_url(redis_url) if redis_url else InProcessLimiter()
