"""Daily minutes through the running gateway: spent once per minute, refused with a page when used up, open
tunnels metered while bytes flow and closed when the budget, the hours or the policy run out; the home page shows
what is left."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from gatehouse.quota import local_minute
from gateway.blockpage import regional
from tests.conftest import POLICY, Origin, platform_settings
from tests.helpers import (
    CELL,
    INMATE,
    OTHER_INMATE,
    OTHER_PIN,
    Platform,
    curl,
    eventually_records,
    get_over,
    tls_tunnel,
)

QUOTAS = """
quotas:
  default: {general: 2, learning: unlimited}
  groups:
    school: {general: 5}
    night: {general: 3}
"""
LEARNING = """
rules:
  - id: learning
    allow: [other.test]
    quota: learning
"""


@pytest.fixture
async def metered(tmp_path: Path, origin: Origin) -> AsyncIterator[Platform]:
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin)
    (settings.policy_dir / "test.yaml").write_text(POLICY + QUOTAS, encoding="utf-8")
    (settings.policy_dir / "learning.yaml").write_text(LEARNING, encoding="utf-8")
    await _clear_of_minute_edge()
    async with running(settings) as up:
        yield Platform(up, origin, settings)


async def _clear_of_minute_edge() -> None:
    """These tests spend the current minute; start them well inside one so they do not straddle two."""
    second = datetime.now(UTC).second
    if second > 50:
        await asyncio.sleep(61 - second)


def _today(platform: Platform, at: datetime | None = None) -> tuple[object, int]:
    minute = local_minute(at or datetime.now(UTC), ZoneInfo(platform.settings["facility.timezone"]))
    return minute.day, minute.index


async def _spend_earlier(platform: Platform, inmate: str, category: str, minutes: int) -> None:
    """Minutes spent earlier today (by this or another node), written into the store the gateway reads."""
    day, index = _today(platform)
    for back in range(1, minutes + 1):
        mark = await platform.up.kernel.quota.check_and_mark(inmate, category, day, (index - back * 7) % 1380, None)
        assert mark.allowed and not mark.already_marked


async def test_a_minute_counts_once_however_many_requests_fall_in_it(metered: Platform) -> None:
    gate = metered.up.gateway.quota
    async with metered.client(CELL) as browser:
        await metered.login(browser)
        for n in range(6):
            assert (await curl(metered, f"https://allowed.test/page-{n}")).status == 200
            assert (await curl(metered, f"http://allowed.test/plain-{n}")).status == 200
    day, _index = _today(metered)
    assert await metered.up.kernel.quota.usage(INMATE, "general", day) == 1
    assert gate.asked == 1, "every request after the minute's first is answered from the node's memory"


async def test_used_up_minutes_refuse_with_a_page_saying_when_new_ones_come(metered: Platform) -> None:
    await _spend_earlier(metered, INMATE, "general", 2)
    async with metered.client(CELL) as browser:
        await metered.login(browser)
        refused = await curl(metered, "https://allowed.test/over-budget")
        plain = await curl(metered, "http://allowed.test/over-budget-plain")
        learning = await curl(metered, "https://other.test/course")
    assert refused.status == 403 and "Your time for today is used up" in refused.body
    zone = ZoneInfo(metered.settings["facility.timezone"])
    tomorrow = datetime.now(zone).date() + timedelta(days=1)
    assert f"New minutes from {format_date(tomorrow, 'full', locale=regional('en', zone))}, 00:00" in refused.body
    assert "code: quota-exhausted" in refused.body
    assert plain.status == 403 and "Your time for today is used up" in plain.body
    assert learning.status == 200, "an unlimited category is not held back by a spent one"
    assert not metered.origin.saw("GET", "allowed.test", "/over-budget")
    assert not metered.origin.saw("GET", "allowed.test", "/over-budget-plain")
    denied = await eventually_records(metered, 2, tag="gateway:request:denied", host="allowed.test")
    assert {r.path for r in denied} == {"/over-budget", "/over-budget-plain"}
    assert all(r.reason.startswith("quota-exhausted: the 2 minutes of general") for r in denied)
    day, _index = _today(metered)
    assert await metered.up.kernel.quota.usage_many(INMATE, ["general", "learning"], day) == {
        "general": 2, "learning": 1}


async def test_a_group_profile_is_more_generous_and_an_inmate_override_wins(metered: Platform) -> None:
    from gatehouse.inmates import find_inmate, set_groups

    with metered.up.kernel.factory.begin() as db:
        set_groups(find_inmate(db, INMATE), ["night", "school"])  # 3 and 5 minutes: the most generous holds
    await _spend_earlier(metered, INMATE, "general", 4)
    async with metered.client(CELL) as browser:
        await metered.login(browser)
        assert (await curl(metered, "https://allowed.test/school-budget")).status == 200  # 5th of 5
    overrides = metered.settings.policy_dir / "override.yaml"
    overrides.write_text(f"quotas:\n  inmates:\n    {INMATE.lower()}: {{general: 3}}\n", encoding="utf-8")
    assert await asyncio.to_thread(metered.up.kernel.policies.load)
    assert (await curl(metered, "https://allowed.test/same-minute")).status == 200, "a minute spent stays spent"
    later = datetime.now(UTC) + timedelta(seconds=61)
    metered.up.gateway.clock = lambda: later
    refused = await curl(metered, "https://allowed.test/override")
    assert refused.status == 403 and "code: quota-exhausted" in refused.body


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    started = time.monotonic()
    try:
        rest = await asyncio.wait_for(reader.read(), seconds)
    except (ConnectionError, ssl.SSLError):
        rest = b""
    assert rest == b""
    return time.monotonic() - started


async def test_an_open_tunnel_is_metered_while_bytes_flow_and_closed_when_the_budget_runs_out(
        metered: Platform) -> None:
    await _spend_earlier(metered, INMATE, "general", 1)
    gateway = metered.up.gateway
    async with metered.client(CELL) as browser:
        await metered.login(browser)
        reader, writer = await tls_tunnel(metered, "passthrough.test")  # spends this minute: 2 of 2
        assert (await get_over(reader, writer, "passthrough.test", "/first")).startswith(b"origin passthrough.test GET")
        idle, idle_writer = await tls_tunnel(metered, "passthrough.test")
        await asyncio.sleep(1.3)  # a look at the tunnels counts the bytes so far in this minute
        later = datetime.now(UTC) + timedelta(seconds=61)
        gateway.clock = lambda: later  # the next minute: bytes through `reader` must spend it
        assert await get_over(reader, writer, "passthrough.test", "/next-minute") != b""
        await _closed_within(reader, 3.0)
        writer.close()
        await asyncio.sleep(1.3)  # another look at every tunnel
        assert not idle.at_eof(), "an idle tunnel spends nothing and stays open"
        refused = await curl(metered, "https://allowed.test/after-the-cut")
        assert refused.status == 403 and "Your time for today is used up" in refused.body
        idle_writer.close()
    cut = await eventually_records(metered, tag="gateway:tunnel:cut")
    assert cut[0].actor == INMATE and cut[0].host == "passthrough.test"
    assert cut[0].reason.startswith("quota-exhausted: the 2 minutes of general")


async def test_an_open_tunnel_closes_when_the_terminal_closes_or_the_policy_no_longer_allows_it(
        metered: Platform) -> None:
    gateway = metered.up.gateway
    zone = ZoneInfo(metered.settings["facility.timezone"])
    hours = metered.settings.policy_dir / "hours.yaml"
    hours.write_text("hours:\n  cell: [mon-sun 07:00-22:00]\n", encoding="utf-8")
    assert await asyncio.to_thread(metered.up.kernel.policies.load)
    evening = datetime.now(zone).replace(hour=21, minute=59, second=30, microsecond=0).astimezone(UTC)
    gateway.clock = lambda: evening
    async with metered.client(CELL) as browser:
        await metered.login(browser)
        reader, writer = await tls_tunnel(metered, "passthrough.test")
        assert await get_over(reader, writer, "passthrough.test", "/evening") != b""
        await asyncio.sleep(1.3)
        closing = evening + timedelta(seconds=45)
        gateway.clock = lambda: closing
        await _closed_within(reader, 3.0)
        writer.close()
        refused = await curl(metered, "https://allowed.test/at-night")
        assert refused.status == 403 and "This terminal is closed now" in refused.body
        assert "It opens again on" in refused.body

        gateway.clock = lambda: evening
        reader, writer = await tls_tunnel(metered, "passthrough.test")
        policy = metered.settings.policy_dir / "test.yaml"
        policy.write_text(POLICY.replace("    mode: passthrough\n", "") + QUOTAS, encoding="utf-8")
        assert await _closed_within(reader, 4.0) < 4.0  # the file watch reloads within 2 s, then it is cut
        writer.close()
    cut = await eventually_records(metered, 2, tag="gateway:tunnel:cut")
    assert cut[0].reason.startswith("terminal-closed: cell terminals are closed now")
    assert "passthrough.test is now inspect" in cut[1].reason


async def test_the_home_page_shows_the_minutes_left_in_each_category(metered: Platform) -> None:
    await _spend_earlier(metered, OTHER_INMATE, "general", 1)
    async with metered.client(CELL) as browser:
        await metered.login(browser, OTHER_INMATE, OTHER_PIN)  # reads French
        assert (await curl(metered, "https://other.test/lesson")).status == 200
        async with browser.get(f"{metered.portal}/home") as page:
            html = await page.text()
    assert html.count('data-testid="minutes"') == 1 and "<title>" in html
    assert html.split("<title>", 1)[1].split("</title>", 1)[0].startswith("Accueil")
    assert '<tr data-category="general"><th scope="row">Général</th>' in html
    assert 'data-left="1">1 sur 2 minutes</td>' in html and 'data-used="1">1 minute</td>' in html
    assert '<tr data-category="learning"><th scope="row">Apprentissage</th>' in html
    assert 'data-left="">sans limite</td>' in html


async def test_a_quota_store_that_does_not_answer_refuses_and_recovers_by_itself(tmp_path: Path) -> None:
    from gatehouse.quota import RedisQuotaStore
    from gateway.metering import QuotaGate
    from policies.decision import ReasonCode, Subject
    from policies.snapshot import Snapshot
    from tests.helpers import free_port, start_redis

    port = free_port()
    server = await start_redis(port)
    store = RedisQuotaStore.from_url(f"redis://127.0.0.1:{port}/0")
    gate = QuotaGate(store, lambda: Snapshot.build((), version="v1"))
    who = Subject(INMATE, frozenset(), "cell-1", "cell", "s")
    try:
        assert await gate.spend(who, "general", datetime.now(UTC)) is None
        server.kill()
        await server.wait()
        refusal = await gate.spend(who, "general", datetime.now(UTC) + timedelta(minutes=1))
        assert refusal is not None and refusal.reasons[0].code is ReasonCode.QUOTA_UNAVAILABLE
        server = await start_redis(port)
        assert await gate.spend(who, "general", datetime.now(UTC) + timedelta(minutes=2)) is None
    finally:
        await store.close()
        server.kill()
        await server.wait()
