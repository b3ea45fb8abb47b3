"""Pages read in a real browser: the sites an inmate may open now, and audit tables on a 320 px wide screen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from gatehouse.audit import AuditEvent, Tag
from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from policies.windows import DAYS
from tests.conftest import Origin
from tests.helpers import NEEDS_CHROMIUM, Platform, launched_chromium, populate
from tests.test_browser_portal import TOUCH_PX, as_staff, inmate_login, new_inmate, opened

pytestmark = [
    NEEDS_CHROMIUM,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.asyncio(loop_scope="module"),
]


def _policy(zone: ZoneInfo) -> str:
    """Rules for the home page: open ones in two categories, a pattern, and four that are not open to a cell
    terminal now (another day's window, classroom only, another group, denied by a rule)."""
    other_day = DAYS[(datetime.now(UTC).astimezone(zone).weekday() + 3) % 7]
    return f"""\
rules:
  - id: learning
    description: course platform
    allow: [learn.test]
    paths: [/courses]
    quota: learning
  - id: reentry
    description: job and housing resources
    allow: [jobs.test, housing.test]
    quota: jobs
  - id: encyclopedia
    description: an encyclopedia
    allow: ["*.wiki.test"]
  - id: evening
    description: only on another day
    allow: [later.test]
    windows: [{other_day} 00:00-23:59]
  - id: school
    allow: [school.test]
    terminals: [classroom]
  - id: workshop
    allow: [workshop.test]
    groups: [workshop]
  - id: mail-allowed
    allow: [mail.test]
  - id: no-mail
    deny: [mail.test]
quotas:
  default: {{general: 60, jobs: 120, learning: unlimited}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    data_dir = tmp_path_factory.mktemp("pages") / "data"
    settings = initialise(data_dir, {"portal.port": 0, "proxy.port": 0}, quiet=True)
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    (settings.policy_dir / "home.yaml").write_text(_policy(ZoneInfo(settings["facility.timezone"])),
                                                    encoding="utf-8")
    populate(settings)
    settings = settings.replace(login__attempts_per_address=1000)
    async with running(settings) as up:
        yield Platform(up, Origin(), settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as chromium:
        yield chromium


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def signed_in() -> dict[str, Any]:
    return {}


async def test_the_home_page_links_the_sites_open_to_this_inmate_now(site: Platform, browser: Browser) -> None:
    number = await new_inmate(site)
    async with opened(browser) as page:
        await inmate_login(page, site, number)
        sites = page.get_by_test_id("sites")
        links = await sites.locator("a").evaluate_all("els => els.map(e => [e.textContent, e.href])")
        assert sorted(links) == [["housing.test", "https://housing.test/"], ["jobs.test", "https://jobs.test/"],
                                 ["learn.test", "https://learn.test/courses"]]
        # Under the category whose minutes they use, with the rule's description.
        jobs = sites.locator('ul[data-category="jobs"]')
        await expect(jobs.locator("li")).to_have_count(2)
        await expect(jobs.locator("li").first).to_contain_text("job and housing resources")
        await expect(sites.locator('ul[data-category="learning"] li')).to_contain_text("course platform")
        # A pattern names no page: it is text, not a link.
        pattern = sites.locator('ul[data-category="general"] li')
        await expect(pattern).to_have_count(1)
        await expect(pattern.locator("code")).to_have_text("*.wiki.test")
        await expect(pattern.locator("a")).to_have_count(0)
        text = await sites.inner_text()
        for closed in ("later.test", "school.test", "workshop.test", "mail.test"):
            assert closed not in text, closed


# A 320 px wide screen (WCAG 1.4.10): every record readable without sideways scrolling, no row a tower.
ROW_HEIGHTS = """() => [...document.querySelectorAll('table.records tbody tr')].map(
    r => Math.round(r.getBoundingClientRect().height))"""
TAG_LINES = """() => [...document.querySelectorAll('table.records code.tag')].map(c => {
    const range = document.createRange(); range.selectNodeContents(c);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size; })"""
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"


async def _records(site: Platform, actor: str) -> None:
    assert site.up.kernel.audit is not None
    now = utcnow()
    for n, (tag, decision, reason, path) in enumerate([
        (Tag.GATEWAY_REQUEST_DENIED, "deny", "rule-deny[no-mail]: GET mail.test/inbox/compose is denied",
         "/inbox/compose?to=someone%40example.org&subject=hello"),
        (Tag.GATEWAY_CONNECT_ALLOWED, "allow", "rule-allow[reentry]: jobs.test is allowed", ""),
        (Tag.GATEWAY_REQUEST_DENIED, "deny",
         "no-match: no rule allows optimizationguide-pa.googleapis.com", "/v1:GetModels?key=AIzaSyA2KlwBX3mkFo30"),
    ]):
        await site.up.kernel.audit.write(AuditEvent(
            tag, "gateway", actor=actor, terminal="cell-1", client_addr="127.0.0.1", method="GET",
            host="optimizationguide-pa.googleapis.com" if n == 2 else "jobs.test", path=path, decision=decision,
            reason=reason, status=403 if decision == "deny" else None, at=now - timedelta(minutes=n)))
    await site.up.kernel.ship()


@pytest.mark.parametrize("path", ["/audit", "/audit/inmates/{number}"])
async def test_audit_tables_read_on_a_320px_screen(site: Platform, browser: Browser, signed_in: dict[str, Any],
                                                   path: str) -> None:
    number = await new_inmate(site)
    await _records(site, number)
    async with as_staff(browser, site, signed_in, "security") as page:
        await page.set_viewport_size({"width": 320, "height": 640})
        await page.goto(f"{site.portal}{path.format(number=number)}")
        heights = await _heights(page)
        assert heights and max(heights) < 200, str(sorted(heights))
        lines = await page.evaluate(TAG_LINES)
        assert lines and set(lines) == {1}, lines  # each tag on one line, never split inside
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        target = await page.locator("table.records td.actor a").first.bounding_box()
        assert target is not None and target["height"] >= TOUCH_PX, target  # a small line, a full-size target
        await page.set_viewport_size({"width": 1280, "height": 800})  # a wide screen keeps the table
        assert await page.locator("table.records thead").is_visible()
        assert set(await page.evaluate(TAG_LINES)) == {1}


async def _heights(page: Page) -> list[int]:
    heights: list[int] = await page.evaluate(ROW_HEIGHTS)
    return heights
