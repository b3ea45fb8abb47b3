"""Audit review screens against a running platform: real traffic through the gateway, real records, real pages."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gatehouse.audit import AuditEvent, Tag
from gatehouse.audit.alerts import local_day
from gatehouse.audit.verify import verify_export
from gatehouse.cli.audit import keyring
from gatehouse.db.engine import utcnow
from tests.conftest import Origin, platform_settings
from tests.helpers import CELL, INMATE, OTHER_INMATE, Platform, curl, staff_client

SECURITY_ADDR, OTHER_ADDR = "127.0.0.30", "127.0.0.31"


@pytest.fixture
async def review_platform(tmp_path: Path, origin: Origin, database_url: str) -> AsyncIterator[Platform]:
    """On SQLite and PostgreSQL (counting by hour is written per database), with low alert thresholds, so a test
    can cross them with a handful of requests."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin, database_url).replace(
        audit__alert_burst=8, audit__alert_daily_minutes=3)
    async with running(settings) as up:
        yield Platform(up, origin, settings)


async def page(client, url: str,  # type: ignore[no-untyped-def]
               platform: Platform | None = None) -> tuple[int, str]:
    """A page as text, after every durable record has reached the database (the shipper's next step)."""
    if platform is not None:
        await platform.up.kernel.ship()
    async with client.get(url) as resp:
        return resp.status, html.unescape(await resp.text())


async def write(platform: Platform, **fields: object) -> None:
    assert platform.up.kernel.audit is not None
    await platform.up.kernel.audit.write(AuditEvent(plane="gateway", **fields))  # type: ignore[arg-type]


async def test_only_security_staff_reach_the_review_screens(platform: Platform) -> None:
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam, \
            staff_client(platform, OTHER_ADDR, "ada", ["admin", "education", "supervisor"]) as ada:
        for url in ("/audit", "/audit/charts", "/audit/alerts", f"/audit/inmates/{INMATE}",
                    "/audit/export?format=csv"):
            assert (await page(sam, platform.portal + url, platform))[0] == 200, url
            assert (await page(ada, platform.portal + url, platform))[0] == 403, url
        status, body = await page(sam, platform.portal + "/staff")
        assert all(f'href="{link}"' in body for link in ("/audit", "/audit/charts", "/audit/alerts"))
        assert 'href="/admin/staff"' not in body


async def test_search_filters_pages_and_is_itself_recorded(platform: Platform) -> None:
    async with platform.client(CELL) as inmate:
        await platform.login(inmate)
    for path in ("/lesson", "/notes"):
        assert (await curl(platform, f"http://allowed.test{path}")).status == 200
    assert (await curl(platform, "http://mail.test/inbox")).status == 403
    now = utcnow()
    for n in range(120):
        await write(platform, tag=Tag.GATEWAY_REQUEST_ALLOWED, actor=OTHER_INMATE, host="bulk.test",
                    path=f"/{n}", decision="allow", at=now - timedelta(seconds=n))
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        status, body = await page(sam, f"{platform.portal}/audit?actor={INMATE}&decision=deny", platform)
        assert status == 200
        assert "mail.test/inbox" in body and "rule-deny[no-mail]" in body and "allowed.test/lesson" not in body

        status, body = await page(sam, f"{platform.portal}/audit?host=allowed.test&tag=gateway:request", platform)
        assert "allowed.test/lesson" in body and "allowed.test/notes" in body and "mail.test" not in body

        seen: list[str] = []
        url = f"{platform.portal}/audit?host=bulk.test"
        while url:
            status, body = await page(sam, url)
            seen += re.findall(r"bulk\.test(/\d+)", body)
            more = re.search(r'href="(/audit\?[^"]*after=[^"]+)" rel="next"', body)
            url = platform.portal + more.group(1) if more else ""
        assert seen == [f"/{n}" for n in range(120)]  # newest first, three pages, nothing twice or missed

        status, body = await page(sam, f"{platform.portal}/audit?since=yesterday&tag=nonsense", platform)
        assert status == 400
        assert "Enter a date and time like 2026-11-24 08:30." in body and "Choose a kind of record" in body

    viewed = platform.records(tag="audit:records:viewed", actor="sam")
    assert viewed[0].reason == f"search actor={INMATE} decision=deny"
    assert len(viewed) == 5  # two searches and three pages; the refused one shows nothing and is not a view


async def test_timeline_groups_an_inmates_records_by_day(platform: Platform) -> None:
    zone = ZoneInfo(platform.settings["facility.timezone"])
    today_start, _ = local_day(utcnow(), zone)
    await write(platform, tag=Tag.GATEWAY_REQUEST_ALLOWED, actor=INMATE, host="old.test", path="/yesterday",
                decision="allow", at=today_start - timedelta(hours=2))
    await write(platform, tag=Tag.GATEWAY_REQUEST_DENIED, actor=INMATE, host="new.test", path="/today",
                decision="deny", at=today_start + timedelta(minutes=1))
    await write(platform, tag=Tag.GATEWAY_REQUEST_ALLOWED, actor=OTHER_INMATE, host="other.test", path="/x",
                decision="allow")
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        status, body = await page(sam, f"{platform.portal}/audit/inmates/{INMATE.lower()}", platform)
    assert status == 200
    sections = re.findall(r'<section class="day">\s*<h2>([^<]+)</h2>(.*?)</section>', body, re.S)
    assert len(sections) == 2
    assert "new.test/today" in sections[0][1] and "old.test/yesterday" in sections[1][1]
    assert "other.test" not in body
    assert platform.records(tag="audit:records:viewed")[0].reason == f"timeline actor={INMATE}"


async def test_charts_are_images_with_their_numbers(review_platform: Platform) -> None:
    platform = review_platform
    hour = utcnow().replace(minute=30, second=0, microsecond=0)
    for n in range(7):
        await write(platform, tag=Tag.GATEWAY_REQUEST_ALLOWED, actor=INMATE, host="charts.test", path=f"/{n}",
                    decision="allow", at=hour - timedelta(hours=2))
    for n in range(3):
        await write(platform, tag=Tag.GATEWAY_REQUEST_DENIED, actor=INMATE, host="charts.test", path=f"/d{n}",
                    decision="deny", reason="no-match: no rule allows charts.test", at=hour - timedelta(hours=2))
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        status, body = await page(sam, f"{platform.portal}/audit/charts?days=1&host=charts.test", platform)
        assert status == 200
        svgs = re.findall(r'<svg [^>]*role="img"[^>]*>.*?</svg>', body, re.S)
        assert len(svgs) == 3
        assert "Allowed: 7. Denied: 3." in svgs[0]
        assert ": 7 allowed, 3 denied</title>" in svgs[0]  # the hour's own bar
        assert "<title>no-match: 0 allowed, 3 denied</title>" in svgs[1]
        assert "<title>charts.test: 7 allowed, 3 denied</title>" in svgs[2]
        tables = re.findall(r"<tbody>(.*?)</tbody>", body, re.S)
        assert re.search(r"<td>7</td><td>3</td>", tables[0])
        status, body = await page(sam, f"{platform.portal}/audit/charts?days=7&host=nothing.test", platform)
        assert status == 200 and "Allowed: 0. Denied: 0." in body


async def test_alerts_are_raised_once_for_bursts_heavy_use_and_bypass_attempts(review_platform: Platform) -> None:
    platform = review_platform
    async with platform.client(CELL) as inmate:
        await platform.login(inmate)
    for n in range(8):
        assert (await curl(platform, f"http://mail.test/{n}")).status == 403
    assert (await curl(platform, "http://0x7f.1/")).status == 403  # an IP literal spelled to look harmless
    now = utcnow()
    zone = ZoneInfo(platform.settings["facility.timezone"])
    day_start, _ = local_day(now, zone)
    base = now if now - day_start > timedelta(minutes=6) else day_start - timedelta(minutes=1)
    for n in range(4):  # four active minutes in one facility day, over the limit of 3
        await write(platform, tag=Tag.GATEWAY_REQUEST_ALLOWED, actor=OTHER_INMATE, host="allowed.test",
                    path="/", decision="allow", at=base - timedelta(minutes=n))
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        status, body = await page(sam, f"{platform.portal}/audit/alerts", platform)
        assert status == 200
        assert f'data-testid="alert-denied-burst-{INMATE}"' in body
        assert f'data-testid="alert-bypass-attempt-{INMATE}"' in body and "ip-literal" in body
        assert f'data-testid="alert-daily-usage-{OTHER_INMATE}"' in body
        assert "Burst of denied attempts" in body
        status, again = await page(sam, f"{platform.portal}/audit/alerts?rule=daily-usage", platform)
        assert f"alert-daily-usage-{OTHER_INMATE}" in again and "alert-denied-burst" not in again
    raised = platform.records(tag="audit:alert:raised")
    assert sorted((r.actor, r.reason.split()[0]) for r in raised) == sorted([
        (INMATE, "denied-burst"), (INMATE, "bypass-attempt"), (OTHER_INMATE, "daily-usage")])


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ecs", "squid"])
async def test_export_of_a_search_is_recorded_and_the_copy_verifies(platform: Platform, fmt: str,
                                                                    tmp_path: Path) -> None:
    async with platform.client(CELL) as inmate:
        await platform.login(inmate)
    for path in ("/a", "/b", "/c"):
        await curl(platform, f"http://allowed.test{path}")
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        async with sam.get(f"{platform.portal}/audit/export?format={fmt}&host=allowed.test") as resp:
            assert resp.status == 200
            assert "attachment" in resp.headers["Content-Disposition"]
            count = int(resp.headers["X-Record-Count"])
            data = await resp.read()
        assert (await page(sam, f"{platform.portal}/audit/export?format=pdf", platform))[0] == 400
    assert count >= 3
    copy = tmp_path / f"copy.{fmt}"
    copy.write_bytes(data)
    text = data.decode()
    if fmt == "squid":
        assert len(text.splitlines()) == count and "allowed.test/a" in text and "hash=" in text
    else:
        if fmt == "csv":
            assert text.splitlines()[0].startswith("id,") and len(text.splitlines()) == count + 1
        if fmt in ("jsonl", "ecs"):
            assert all(json.loads(line) for line in text.splitlines())
        report = verify_export(copy, keyring(platform.settings, []), None)
        assert report.findings == [], report.findings
    exported = platform.records(tag="audit:records:exported")
    assert [(r.actor, r.reason) for r in exported] == [("sam", f"format={fmt} host=allowed.test")]


async def test_a_burst_across_the_edge_of_a_counting_window_is_still_one_alert(review_platform: Platform) -> None:
    platform = review_platform
    now = utcnow()
    edge = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(minutes=5)
    for n in range(8):  # four denials just before the edge, four just after: 8 within 1 minute
        await write(platform, tag=Tag.GATEWAY_REQUEST_DENIED, actor=OTHER_INMATE, host="games.test", path=f"/{n}",
                    decision="deny", reason="no-match: no rule allows games.test",
                    at=edge + timedelta(seconds=-28 + n * 8))
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        status, body = await page(sam, f"{platform.portal}/audit/alerts?rule=denied-burst", platform)
        assert status == 200 and body.count(f'data-testid="alert-denied-burst-{OTHER_INMATE}"') == 1
        status, body = await page(sam, f"{platform.portal}/audit/alerts?rule=denied-burst", platform)
        assert body.count(f'data-testid="alert-denied-burst-{OTHER_INMATE}"') == 1
    raised = platform.records(tag="audit:alert:raised")
    assert [(r.actor, r.reason.split()[:2]) for r in raised] == [(OTHER_INMATE, ["denied-burst", "count=8"])]
