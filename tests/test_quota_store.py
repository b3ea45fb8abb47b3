"""One contract for both minute stores (in process, and Redis shared by nodes): a minute counts once, budgets hold
under concurrency, days follow the facility's clock across DST, and a Redis that does not answer refuses."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from gatehouse.quota import (
    MINUTES_MAX,
    RETENTION,
    InProcessQuotaStore,
    LocalMinute,
    QuotaStore,
    QuotaUnavailable,
    RedisQuotaStore,
    local_minute,
    quota_store_for,
)
from tests.conftest import REDIS_ENV
from tests.helpers import free_port, start_redis

T = TypeVar("T")


async def together(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run the calls at once; if one fails, the others are cancelled and awaited rather than left running past the
    test's event loop (where their sockets would be reclaimed, and reported, during a later test)."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(call) for call in calls]
    return [task.result() for task in tasks]


BRUSSELS = ZoneInfo("Europe/Brussels")
SANTIAGO = ZoneInfo("America/Santiago")
DAY = date(2026, 11, 23)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set")
    return url


@dataclass
class Stores:
    """Makes stores of one kind; Redis ones made by one test share a key prefix (several nodes, one Redis)."""

    kind: str
    redis_url: str = ""
    prefix: str = field(default_factory=lambda: f"gh:test:{secrets.token_hex(6)}:")
    made: list[QuotaStore] = field(default_factory=list)

    def make(self, retention: float = RETENTION) -> QuotaStore:
        store: QuotaStore
        if self.kind == "in-process":
            store = InProcessQuotaStore(retention)
        else:
            # The contract is about counting, not speed: a loaded machine that stalls a connect for a couple of
            # seconds must not pass for a Redis that does not answer (the tests below that want that start their
            # own server, with the default timeout).
            store = RedisQuotaStore.from_url(self.redis_url, prefix=self.prefix, retention=retention, timeout=15.0)
        self.made.append(store)
        return store

    async def keys(self) -> list[bytes]:
        async with Redis.from_url(self.redis_url) as redis:
            return [key async for key in redis.scan_iter(match=f"{self.prefix}*")]


async def closed(made: Stores) -> None:
    for store in made.made:
        await store.close()
    if made.kind == "redis":
        keys = await made.keys()
        if keys:
            async with Redis.from_url(made.redis_url) as redis:
                await redis.delete(*keys)


@pytest.fixture(params=["in-process", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    made = Stores(request.param, request.getfixturevalue("redis_url") if request.param == "redis" else "")
    yield made
    await closed(made)


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[Stores]:
    """Redis stores of several gateway nodes, sharing one Redis and one key prefix."""
    made = Stores("redis", redis_url)
    yield made
    await closed(made)


@pytest.fixture
def store(stores: Stores) -> QuotaStore:
    return stores.make()


async def test_a_minute_counts_once_however_many_requests_fall_in_it(store: QuotaStore) -> None:
    marks = [await store.check_and_mark("A1", "general", DAY, 600, 60) for _ in range(5)]
    assert [(m.allowed, m.used, m.already_marked) for m in marks] == [(True, 1, False)] + [(True, 1, True)] * 4
    assert await store.usage("A1", "general", DAY) == 1
    assert (await store.check_and_mark("A1", "general", DAY, 601, 60)).used == 2


@pytest.mark.parametrize("budget", [0, 1, 2, 60])
async def test_the_budget_is_spent_exactly_and_spent_minutes_stay_open(store: QuotaStore, budget: int) -> None:
    marks = [await store.check_and_mark("A1", "jobs", DAY, minute, budget) for minute in range(budget + 3)]
    assert [m.allowed for m in marks] == [True] * budget + [False] * 3
    assert [m.used for m in marks] == [*range(1, budget + 1), budget, budget, budget]
    assert not any(m.already_marked for m in marks)
    assert await store.usage("A1", "jobs", DAY) == budget
    if budget:
        again = await store.check_and_mark("A1", "jobs", DAY, budget - 1, budget)
        assert (again.allowed, again.used, again.already_marked) == (True, budget, True), \
            "the minute in progress when the budget ran out goes on"


async def test_unlimited_marks_every_minute_of_a_25_hour_day(store: QuotaStore) -> None:
    """Budget None allows everything and still counts, so the home page can show time used."""
    day = date(2026, 10, 25)
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    for offset in range(1500):
        at = local_minute(start + timedelta(minutes=offset), BRUSSELS)
        assert at.day == day
        mark = await store.check_and_mark("A1", "learning", at.day, at.index, None)
        assert (mark.allowed, mark.used, mark.already_marked) == (True, offset + 1, False)
    assert await store.usage("A1", "learning", day) == 1500
    assert (await store.check_and_mark("A1", "learning", day, 1499, None)).already_marked


async def test_a_budget_lowered_during_the_day_refuses_new_minutes_only(store: QuotaStore) -> None:
    for minute in range(5):
        await store.check_and_mark("A1", "general", DAY, minute, None)
    refused = await store.check_and_mark("A1", "general", DAY, 5, 3)
    assert (refused.allowed, refused.used, refused.already_marked) == (False, 5, False)
    assert (await store.check_and_mark("A1", "general", DAY, 4, 3)).allowed
    assert await store.usage("A1", "general", DAY) == 5


async def test_inmates_categories_and_days_count_separately(store: QuotaStore) -> None:
    for minute in range(2):
        await store.check_and_mark("A1", "general", DAY, minute, 2)
    assert not (await store.check_and_mark("A1", "general", DAY, 2, 2)).allowed
    others = [("A2", "general", DAY), ("A1", "jobs", DAY), ("A1", "general", DAY + timedelta(days=1)),
              ("A1", "general", DAY - timedelta(days=1)), ("A1", "general:x", DAY), ("A10", "general", DAY)]
    for inmate, category, day in others:
        mark = await store.check_and_mark(inmate, category, day, 2, 2)
        assert (mark.allowed, mark.used) == (True, 1), (inmate, category, day)
    assert await store.usage_many("A1", ["general", "jobs", "learning"], DAY) == \
        {"general": 2, "jobs": 1, "learning": 0}
    assert await store.usage_many("A1", [], DAY) == {}
    assert await store.usage("nobody", "general", DAY) == 0


async def test_concurrent_checks_never_overspend(store: QuotaStore) -> None:
    marks = await together(store.check_and_mark("A1", "general", DAY, m, 60) for m in range(200))
    allowed = [m for m in marks if m.allowed]
    assert len(allowed) == 60
    assert sorted(m.used for m in allowed) == list(range(1, 61))
    assert all(m.used == 60 for m in marks if not m.allowed)
    assert await store.usage("A1", "general", DAY) == 60


async def test_concurrent_requests_in_one_minute_spend_it_once(store: QuotaStore) -> None:
    marks = await together(store.check_and_mark("A1", "general", DAY, 7, 1) for _ in range(100))
    assert all(m.allowed and m.used == 1 for m in marks)
    assert sum(not m.already_marked for m in marks) == 1


async def test_two_redis_nodes_never_overspend_together(nodes: Stores) -> None:
    one, two = nodes.make(), nodes.make()
    marks = await together((one if m % 2 else two).check_and_mark("A1", "general", DAY, m, 60) for m in range(200))
    assert sum(m.allowed for m in marks) == 60
    assert await one.usage("A1", "general", DAY) == await two.usage("A1", "general", DAY) == 60
    same = await together((one, two)[i % 2].check_and_mark("A2", "jobs", DAY, 9, 1) for i in range(50))
    assert all(m.allowed for m in same) and sum(not m.already_marked for m in same) == 1


async def test_a_day_is_forgotten_after_its_retention(stores: Stores) -> None:
    store = stores.make(retention=0.3)
    await store.check_and_mark("A1", "general", DAY, 0, 2)
    await asyncio.sleep(0.15)
    await store.check_and_mark("A1", "general", DAY, 1, 2)
    assert not (await store.check_and_mark("A1", "general", DAY, 2, 2)).allowed
    await asyncio.sleep(0.25)
    assert await store.usage("A1", "general", DAY) == 0, "the retention runs from the day's first minute"
    mark = await store.check_and_mark("A1", "general", DAY, 2, 2)
    assert (mark.allowed, mark.used, mark.already_marked) == (True, 1, False)


async def test_redis_bitmaps_carry_a_ttl_from_their_first_minute(nodes: Stores) -> None:
    store = nodes.make()
    for category in ("general", "jobs"):
        await store.check_and_mark("A1", category, DAY, 0, None)
    async with Redis.from_url(nodes.redis_url) as redis:
        keys = await nodes.keys()
        assert len(keys) == 2
        first = [await redis.pttl(key) for key in keys]
        assert all(RETENTION * 1000 - 10_000 < ttl <= RETENTION * 1000 for ttl in first)
        await asyncio.sleep(0.05)
        await store.check_and_mark("A1", "general", DAY, 1, None)
        later = [await redis.pttl(key) for key in keys]
        assert all(b < a for a, b in zip(first, later, strict=True)), "later minutes do not push the expiry back"


@pytest.mark.parametrize(("inmate", "minute", "budget"), [
    ("", 0, 1), ("A:1", 0, 1), ("{A1}", 0, 1), ("A1", -1, 1), ("A1", MINUTES_MAX, 1), ("A1", 0, -1)])
async def test_bad_arguments_are_refused_before_anything_is_marked(store: QuotaStore, inmate: str, minute: int,
                                                                   budget: int) -> None:
    with pytest.raises(ValueError):
        await store.check_and_mark(inmate, "general", DAY, minute, budget)
    assert await store.usage("A1", "general", DAY) == 0


BRUSSELS_DAYS = [  # (UTC instant, local day, minute index, minutes in that day)
    (datetime(2026, 3, 28, 23, 0), date(2026, 3, 29), 0, 1380),
    (datetime(2026, 3, 29, 0, 59), date(2026, 3, 29), 119, 1380),  # 01:59 CET
    (datetime(2026, 3, 29, 1, 0), date(2026, 3, 29), 120, 1380),  # 03:00 CEST: no gap in the index
    (datetime(2026, 3, 29, 21, 59, 59), date(2026, 3, 29), 1379, 1380),  # 23:59:59 CEST
    (datetime(2026, 3, 29, 22, 0), date(2026, 3, 30), 0, 1440),
    (datetime(2026, 10, 24, 22, 0), date(2026, 10, 25), 0, 1500),
    (datetime(2026, 10, 25, 0, 30), date(2026, 10, 25), 150, 1500),  # 02:30 CEST
    (datetime(2026, 10, 25, 1, 30), date(2026, 10, 25), 210, 1500),  # 02:30 CET, an hour later
    (datetime(2026, 10, 25, 22, 59), date(2026, 10, 25), 1499, 1500),  # 23:59 CET
    (datetime(2026, 10, 25, 23, 0), date(2026, 10, 26), 0, 1440),
    (datetime(2026, 11, 23, 9, 41, 30), date(2026, 11, 23), 641, 1440),  # 10:41:30 CET
]


@pytest.mark.parametrize(("at", "day", "index", "length"), BRUSSELS_DAYS)
def test_minute_of_the_local_day_in_brussels(at: datetime, day: date, index: int, length: int) -> None:
    expected = LocalMinute(day, index, length)
    assert local_minute(at, BRUSSELS) == expected, "a naive instant is UTC"
    assert local_minute(at.replace(tzinfo=UTC), BRUSSELS) == expected
    assert local_minute(at.replace(tzinfo=UTC).astimezone(BRUSSELS), BRUSSELS) == expected
    assert local_minute(at.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo")), BRUSSELS) == expected


@pytest.mark.parametrize(("zone", "first_utc", "length"), [
    (BRUSSELS, datetime(2026, 3, 28, 23, 0, tzinfo=UTC), 1380),
    (BRUSSELS, datetime(2026, 10, 24, 22, 0, tzinfo=UTC), 1500),
    (BRUSSELS, datetime(2026, 11, 22, 23, 0, tzinfo=UTC), 1440),
    (SANTIAGO, datetime(2026, 9, 6, 4, 0, tzinfo=UTC), 1380),  # midnight is skipped: the day starts at 01:00
    (SANTIAGO, datetime(2026, 4, 4, 3, 0, tzinfo=UTC), 1500),  # 23:00-24:00 comes twice
])
def test_minute_indexes_run_on_without_gap_or_repeat_through_the_day(zone: ZoneInfo, first_utc: datetime,
                                                                      length: int) -> None:
    seen = [local_minute(first_utc + timedelta(minutes=m), zone) for m in range(length)]
    day = first_utc.astimezone(zone).date()
    assert all(s.day == day and s.minutes_in_day == length for s in seen)
    assert [s.index for s in seen] == list(range(length))
    assert local_minute(first_utc - timedelta(seconds=1), zone).day == day - timedelta(days=1)
    after = local_minute(first_utc + timedelta(minutes=length), zone)
    assert (after.day, after.index) == (day + timedelta(days=1), 0)


OPERATIONS: dict[str, tuple[object, ...]] = {
    "check_and_mark": ("A1", "general", DAY, 0, 60),
    "usage": ("A1", "general", DAY),
    "usage_many": ("A1", ["general", "jobs"], DAY),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_redis_that_does_not_answer_refuses(operation: str, caplog: pytest.LogCaptureFixture) -> None:
    store = RedisQuotaStore.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(QuotaUnavailable, match="does not answer"):
            await getattr(store, operation)(*OPERATIONS[operation])
        with pytest.raises(QuotaUnavailable):
            await store.check_and_mark("A1", "general", DAY, 1, None)
    finally:
        await store.close()
    errors = [r for r in caplog.records if r.name == "gatehouse.quota" and r.levelname == "ERROR"]
    assert len(errors) == 1, "the outage is logged once, not once per request"


async def test_redis_that_goes_away_refuses_then_meters_again(caplog: pytest.LogCaptureFixture) -> None:
    """No minute passes unmetered while Redis is down; the script is loaded again into the new server."""
    port = free_port()
    server = await start_redis(port)
    store = RedisQuotaStore.from_url(f"redis://127.0.0.1:{port}/0")
    caplog.set_level(logging.WARNING, "gatehouse.quota")
    try:
        assert (await store.check_and_mark("A1", "general", DAY, 0, 60)).used == 1
        server.kill()
        await server.wait()
        for operation, args in [*OPERATIONS.items(), *OPERATIONS.items()]:
            with pytest.raises(QuotaUnavailable):
                await getattr(store, operation)(*args)
        server = await start_redis(port)
        mark = await store.check_and_mark("A1", "general", DAY, 1, 60)
        assert (mark.allowed, mark.used) == (True, 1), "a new Redis without persistence starts at zero"
        assert await store.usage("A1", "general", DAY) == 1
    finally:
        await store.close()
        if server.returncode is None:
            server.kill()
            await server.wait()
    levels = [r.levelname for r in caplog.records if r.name == "gatehouse.quota"]
    assert levels == ["ERROR", "WARNING"], "one line when Redis goes away, one when it is back"


async def test_a_redis_restarted_while_idle_costs_no_refusal(caplog: pytest.LogCaptureFixture) -> None:
    """Connections pooled before Redis went away are dead once it is back: the first use of each fails, and is
    tried once more on a fresh connection instead of refusing a request of an inmate."""
    port = free_port()
    server = await start_redis(port)
    store = RedisQuotaStore.from_url(f"redis://127.0.0.1:{port}/0")
    caplog.set_level(logging.WARNING, "gatehouse.quota")
    try:
        await together(store.check_and_mark(f"A{n}", "general", DAY, 0, 60) for n in range(8))
        server.kill()
        await server.wait()
        server = await start_redis(port)  # no request while it was away: the pool still holds the old sockets
        for minute in range(1, 4):
            mark = await store.check_and_mark("A1", "general", DAY, minute, 60)
            assert (mark.allowed, mark.used) == (True, minute)
        assert await store.usage_many("A2", ["general"], DAY) == {"general": 0}
    finally:
        await store.close()
        if server.returncode is None:
            server.kill()
            await server.wait()
    assert [r.getMessage() for r in caplog.records if r.name == "gatehouse.quota"] == []


SCRIPT_INNER = {"getbit", "bitcount", "setbit", "pexpire"}


async def test_one_check_is_one_round_trip_and_a_home_page_read_one_pipeline() -> None:
    """Counted by the server itself, on a Redis of our own so no other client adds to the figures."""
    port = free_port()
    server = await start_redis(port)
    store = RedisQuotaStore.from_url(f"redis://127.0.0.1:{port}/0")
    admin = Redis(port=port)

    async def commands() -> dict[str, int]:
        stats = await admin.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()
                if name.removeprefix("cmdstat_") not in {"info", "config|resetstat"}}

    try:
        await store.check_and_mark("A0", "general", DAY, 0, None)  # loads the script once
        await admin.config_resetstat()
        for minute in range(100):
            for _ in range(3):
                await store.check_and_mark("A1", "general", DAY, minute, 60)
        counted = await commands()
        assert counted.pop("evalsha") == 300
        assert set(counted) <= SCRIPT_INNER, "nothing but the script is sent"
        await admin.config_resetstat()
        assert await store.usage_many("A1", ["general", "jobs", "learning"], DAY) == \
            {"general": 60, "jobs": 0, "learning": 0}
        assert await commands() == {"bitcount": 3}
    finally:
        await store.close()
        await admin.aclose()
        server.kill()
        await server.wait()


def test_an_empty_redis_url_means_in_process() -> None:
    assert isinstance(quota_store_for(""), InProcessQuotaStore)
    assert isinstance(quota_store_for("redis://127.0.0.1:1/0"), RedisQuotaStore)


async def test_redis_that_accepts_but_never_answers_refuses_within_seconds() -> None:
    """A hung Redis must not hold every request: the socket timeout turns it into a refusal."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    store = RedisQuotaStore.from_url(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(QuotaUnavailable):
            await asyncio.wait_for(store.check_and_mark("A1", "general", DAY, 0, 60), 10)
        assert loop.time() - started < 5
    finally:
        await store.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
