"""One contract for both rate limiters (in process, and Redis shared by nodes): reservations, paces, releases;
Redis that does not answer refuses."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gatehouse.ratelimit import InProcessLimiter, Limit, Pace, RateLimiter, RateLimitUnavailable, RedisLimiter
from tests.conftest import REDIS_ENV
from tests.helpers import free_port, start_redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set")
    return url


@pytest.fixture(params=["in-process", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """Each test gets its own key prefix in Redis, so runs and tests never share a counter."""
    if request.param == "in-process":
        made: RateLimiter = InProcessLimiter()
        yield made
        await made.close()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"gh:test:{secrets.token_hex(6)}:"
    # generous timeouts: these tests are about counting under concurrency, not about a slow Redis
    redis = Redis.from_url(url, socket_timeout=15, socket_connect_timeout=15)
    made = RedisLimiter(redis, prefix=prefix)
    yield made
    cleanup = Redis.from_url(url)
    keys = [key async for key in cleanup.scan_iter(match=f"{prefix}*")]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()
    await made.close()


LOGIN = Limit("login", 3, 60)
EPS = 1e-6
"""Float seconds: a window of 60 may read 60.00000000001 left."""


async def test_hits_are_counted_up_to_the_limit_and_refused_after(limiter: RateLimiter) -> None:
    verdicts = [await limiter.hit(LOGIN, "alice") for _ in range(5)]
    assert [v.count for v in verdicts] == [1, 2, 3, 4, 5]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]


async def test_keys_and_limits_count_separately(limiter: RateLimiter) -> None:
    other = Limit("other", 3, 60)
    for _ in range(3):
        await limiter.hit(LOGIN, "alice")
    assert not (await limiter.hit(LOGIN, "alice")).allowed
    assert (await limiter.hit(LOGIN, "bob")).count == 1
    assert (await limiter.hit(other, "alice")).count == 1


async def test_retry_after_is_what_is_left_of_the_window(limiter: RateLimiter) -> None:
    first = await limiter.hit(LOGIN, "alice")
    assert 59 < first.retry_after <= 60 + EPS
    await asyncio.sleep(0.3)
    later = await limiter.hit(LOGIN, "alice")
    assert 58 < later.retry_after <= first.retry_after - 0.2 + EPS
    for _ in range(3):
        refused = await limiter.hit(LOGIN, "alice")
    assert not refused.allowed and 58 < refused.retry_after <= 60 + EPS


async def test_the_window_ends_and_counting_starts_again(limiter: RateLimiter) -> None:
    short = Limit("short", 2, 0.4)
    for _ in range(3):
        last = await limiter.hit(short, "alice")
    assert not last.allowed
    assert not (await limiter.peek(short, "alice")).allowed
    await asyncio.sleep(0.5)
    assert (await limiter.peek(short, "alice")).count == 0
    again = await limiter.hit(short, "alice")
    assert again.allowed and again.count == 1 and 0.3 < again.retry_after <= 0.4 + EPS


async def test_hits_do_not_extend_the_window(limiter: RateLimiter) -> None:
    """A fixed window: hitting again and again near its end does not push the end further away."""
    short = Limit("fixed", 100, 0.6)
    await limiter.hit(short, "alice")
    await asyncio.sleep(0.4)
    late = await limiter.hit(short, "alice")
    assert late.count == 2 and late.retry_after <= 0.25
    await asyncio.sleep(0.3)
    assert (await limiter.hit(short, "alice")).count == 1


async def test_peek_counts_nothing(limiter: RateLimiter) -> None:
    empty = await limiter.peek(LOGIN, "alice")
    assert empty.allowed and empty.count == 0 and empty.retry_after == 0
    for _ in range(10):
        assert (await limiter.peek(LOGIN, "alice")).count == 0
    await limiter.hit(LOGIN, "alice")
    await limiter.hit(LOGIN, "alice")
    seen = await limiter.peek(LOGIN, "alice")
    assert seen.allowed and seen.count == 2 and 59 < seen.retry_after <= 60 + EPS
    await limiter.hit(LOGIN, "alice")
    full = await limiter.peek(LOGIN, "alice")
    assert not full.allowed and full.count == 3, "one more attempt would be the fourth, over the limit of 3"
    assert (await limiter.hit(LOGIN, "alice")).count == 4


async def test_clear_starts_the_count_again(limiter: RateLimiter) -> None:
    for _ in range(4):
        await limiter.hit(LOGIN, "alice")
        await limiter.hit(LOGIN, "bob")
    await limiter.clear(LOGIN, "alice")
    assert (await limiter.peek(LOGIN, "alice")).count == 0
    assert (await limiter.hit(LOGIN, "alice")).count == 1
    assert (await limiter.peek(LOGIN, "bob")).count == 4, "clearing one key leaves the others"
    await limiter.clear(LOGIN, "nobody")


async def test_concurrent_hits_are_all_counted(limiter: RateLimiter) -> None:
    many = Limit("many", 25, 60)
    verdicts = await asyncio.gather(*(limiter.hit(many, "alice") for _ in range(50)))
    assert sorted(v.count for v in verdicts) == list(range(1, 51))
    assert sum(v.allowed for v in verdicts) == 25


async def test_a_reservation_given_back_is_not_counted_and_the_window_keeps_its_end(limiter: RateLimiter) -> None:
    short = Limit("given-back", 2, 0.6)
    first = await limiter.hit(short, "alice")
    await limiter.release(short, "alice")
    assert (await limiter.peek(short, "alice")).count == 0
    await asyncio.sleep(0.3)
    again = await limiter.hit(short, "alice")
    assert again.count == 1 and again.retry_after <= first.retry_after - 0.25 + EPS, "the window did not restart"
    await limiter.release(short, "alice")
    await limiter.release(short, "alice")
    await limiter.release(short, "nobody")
    assert (await limiter.peek(short, "alice")).count == 0, "never below zero"
    assert [(await limiter.hit(short, "alice")).allowed for _ in range(3)] == [True, True, False]


async def test_of_concurrent_reservations_only_the_limit_pass_and_each_release_gives_one_back(
        limiter: RateLimiter) -> None:
    many = Limit("reserved", 5, 60)
    verdicts = await asyncio.gather(*(limiter.hit(many, "alice") for _ in range(100)))
    assert sum(v.allowed for v in verdicts) == 5
    await asyncio.gather(*(limiter.release(many, "alice") for _ in range(96)))
    assert (await limiter.peek(many, "alice")).count == 4, "each release gives back one, even concurrently"
    assert (await limiter.hit(many, "alice")).allowed


PACE = Pace("pace", 2, 0.2, 0.5, 60)


async def test_a_pace_lets_its_free_attempts_through_then_waits_longer_each_time(limiter: RateLimiter) -> None:
    first, second = await limiter.pace(PACE, "alice"), await limiter.pace(PACE, "alice")
    assert (first.allowed, first.count, first.retry_after) == (True, 1, 0)
    assert (second.allowed, second.count) == (True, 2) and abs(second.retry_after - 0.2) < 0.01
    early = await limiter.pace(PACE, "alice")
    assert not early.allowed and early.count == 2 and 0.1 < early.retry_after <= 0.2 + EPS, "refusals count nothing"
    assert (await limiter.pace(PACE, "bob")).allowed, "each key has its own pace"
    await asyncio.sleep(0.25)
    third = await limiter.pace(PACE, "alice")
    assert third.allowed and third.count == 3 and abs(third.retry_after - 0.4) < 0.01, "the wait doubles"
    assert not (await limiter.pace(PACE, "alice")).allowed
    await asyncio.sleep(0.45)
    fourth = await limiter.pace(PACE, "alice")
    assert fourth.allowed and abs(fourth.retry_after - 0.5) < 0.01, "up to the longest wait, not 0.8"


async def test_of_concurrent_attempts_at_a_pace_only_the_free_ones_pass(limiter: RateLimiter) -> None:
    verdicts = await asyncio.gather(*(limiter.pace(Pace("burst", 5, 30, 60, 60), "alice") for _ in range(100)))
    assert sum(v.allowed for v in verdicts) == 5
    assert all(25 < v.retry_after <= 30 + EPS for v in verdicts if not v.allowed)


async def test_a_right_attempt_gives_back_its_turn_and_ends_the_wait(limiter: RateLimiter) -> None:
    for _ in range(2):
        await limiter.pace(PACE, "alice")
    assert not (await limiter.pace(PACE, "alice")).allowed
    await limiter.release(PACE, "alice")
    turn = await limiter.pace(PACE, "alice")
    assert turn.allowed and turn.count == 2, "one given back, and no wait left"
    await limiter.release(PACE, "nobody")


async def test_a_pace_is_forgotten_a_window_after_its_last_attempt(limiter: RateLimiter) -> None:
    quick = Pace("quick", 1, 0.1, 0.1, 0.4)
    await limiter.pace(quick, "alice")
    await asyncio.sleep(0.2)
    assert (await limiter.pace(quick, "alice")).count == 2
    await asyncio.sleep(0.5)
    assert (await limiter.pace(quick, "alice")).count == 1
    await limiter.clear(quick, "alice")
    assert (await limiter.pace(quick, "alice")).count == 1


async def test_clear_prefix_clears_the_keys_that_start_with_it_and_no_others(limiter: RateLimiter) -> None:
    for key in ("staff:ann|127.0.0.2", "staff:ann|::1", "staff:ann*x|1", "staff:anna|127.0.0.2"):
        await limiter.hit(LOGIN, key)
    await limiter.pace(PACE, "staff:ann|127.0.0.2")
    assert await limiter.clear_prefix(LOGIN, "staff:ann|") == 2
    assert [(await limiter.peek(LOGIN, k)).count for k in ("staff:ann|127.0.0.2", "staff:ann|::1")] == [0, 0]
    assert (await limiter.peek(LOGIN, "staff:ann*x|1")).count == 1, "a glob character is taken as itself"
    assert (await limiter.peek(LOGIN, "staff:anna|127.0.0.2")).count == 1
    assert (await limiter.pace(PACE, "staff:ann|127.0.0.2")).count == 2, "a pace of that name is another limit"
    assert await limiter.clear_prefix(PACE, "staff:ann") == 1
    assert await limiter.clear_prefix(LOGIN, "staff:nobody|") == 0


async def test_redis_limiters_of_two_nodes_share_counts(redis_url: str) -> None:
    prefix = f"gh:test:{secrets.token_hex(6)}:"
    one, two = (RedisLimiter(Redis.from_url(redis_url), prefix=prefix) for _ in range(2))
    try:
        await one.hit(LOGIN, "alice")
        await two.hit(LOGIN, "alice")
        assert (await one.hit(LOGIN, "alice")).count == 3
        assert not (await two.peek(LOGIN, "alice")).allowed
        await two.clear(LOGIN, "alice")
        assert (await one.peek(LOGIN, "alice")).count == 0
    finally:
        await one.close()
        await two.close()


@pytest.mark.parametrize("operation", ["hit", "peek", "clear", "release", "pace", "release-pace", "clear_prefix"])
async def test_redis_that_does_not_answer_refuses(operation: str, caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisLimiter.from_url("redis://127.0.0.1:1/0")
    name, limit = (operation.removesuffix("-pace"), PACE) if operation.endswith("pace") else (operation, LOGIN)
    try:
        with pytest.raises(RateLimitUnavailable, match="does not answer"):
            await getattr(limiter, name)(limit, "alice")
        with pytest.raises(RateLimitUnavailable):
            await limiter.hit(LOGIN, "alice")
    finally:
        await limiter.close()
    errors = [r for r in caplog.records if r.name == "gatehouse.ratelimit" and r.levelname == "ERROR"]
    assert len(errors) == 1, "the outage is logged once, not once per attempt"


async def test_redis_that_goes_away_refuses_then_counts_again() -> None:
    """A node whose Redis dies refuses at once (no attempt passes uncounted), and counts again when it is back."""
    port = free_port()
    server = await start_redis(port)
    limiter = RedisLimiter.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        assert (await limiter.hit(LOGIN, "alice")).count == 1
        server.kill()
        await server.wait()
        for operation in ("hit", "peek", "clear"):
            with pytest.raises(RateLimitUnavailable):
                await getattr(limiter, operation)(LOGIN, "alice")
        server = await start_redis(port)
        assert (await limiter.hit(LOGIN, "alice")).count == 1, "a new Redis without persistence starts at zero"
        assert (await limiter.hit(LOGIN, "alice")).count == 2
    finally:
        await limiter.close()
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_redis_that_accepts_but_never_answers_refuses_within_seconds() -> None:
    """A hung Redis must not hang every login: the socket timeout turns it into a refusal."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter.from_url(f"redis://127.0.0.1:{port}/0")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(RateLimitUnavailable):
            await asyncio.wait_for(limiter.hit(LOGIN, "alice"), 10)
        assert loop.time() - started < 5
    finally:
        await limiter.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
