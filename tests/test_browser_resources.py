"""The directory of services in Chromium: an inmate searches, filters and opens an entry; education staff edit an
entry (a wrong field shown beside it, the rest kept) and mark it checked; axe-core finds nothing on any of these
pages, and the inmate's pages keep every target large enough for a finger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.resources import directory, hsds
from tests.conftest import Origin
from tests.helpers import NEEDS_CHROMIUM, Platform, populate
from tests.test_browser_portal import (
    SMALL_TARGETS,
    TOUCH_PX,
    as_staff,
    axe,
    browser,
    inmate_login,
    new_inmate,
    opened,
    signed_in,
)

__all__ = ["browser", "signed_in"]
pytestmark = [NEEDS_CHROMIUM, pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.asyncio(loop_scope="module")]
FEED = Path(__file__).parent / "data" / "hsds_portal" / "directory.json"


async def small_targets(page: Any) -> list[str]:
    """Targets under 44 x 44 CSS px (a checkbox counts as its label, which is what a finger presses)."""
    return list(await page.evaluate(SMALL_TARGETS, TOUCH_PX))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    folder = tmp_path_factory.mktemp("resources-browser")
    settings = initialise(folder / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    settings = settings.replace(login__attempts_per_address=1000)
    async with running(settings) as up:
        def seed() -> None:
            with up.kernel.factory.begin() as session:
                directory.import_directory(session, hsds.read(FEED), now=utcnow())
        await asyncio.to_thread(seed)
        yield Platform(up, Origin(), settings)


async def test_an_inmate_searches_filters_and_opens_an_entry(site: Platform, browser: Browser) -> None:
    number = await new_inmate(site)
    async with opened(browser, axe=True) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/resources")
        results = page.get_by_test_id("results").locator("li")
        await expect(results).to_have_count(4)
        assert await axe(page) == []
        assert await small_targets(page) == []

        await page.get_by_label("What are you looking for?").fill("coaching")
        await page.get_by_role("button", name="Search", exact=True).click()
        await page.wait_for_url(f"{site.portal}/resources?q=coaching*")
        await expect(results).to_have_count(1)
        await expect(results.first).to_contain_text("Job coaching for people leaving prison")

        await page.get_by_label("What are you looking for?").fill("")
        await page.get_by_label("Kind of help").select_option(label="Housing")
        await page.get_by_label("Only services open to people with a conviction").check()
        await page.get_by_role("button", name="Search", exact=True).click()
        await page.wait_for_url(f"{site.portal}/resources?*category=housing*conviction=yes*")
        await expect(results).to_have_count(1)
        await expect(page.get_by_label("Kind of help")).to_have_value("housing")
        await expect(page.get_by_label("Only services open to people with a conviction")).to_be_checked()
        assert await axe(page) == []

        await page.get_by_label("Kind of help").select_option(label="Debt")
        await page.get_by_role("button", name="Search", exact=True).click()
        await expect(page.get_by_test_id("no-results")).to_be_visible()
        assert await axe(page) == []
        await page.get_by_role("link", name="Show everything").click()
        await expect(results).to_have_count(4)

        await page.get_by_label("City or region where you will live").select_option("gent")
        await page.get_by_role("button", name="Search", exact=True).click()
        await page.get_by_role("link", name="Woonhulp na vrijlating").click()
        await page.wait_for_url(f"{site.portal}/resources/service/svc-woning?back=**")
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Woonhulp na vrijlating")
        await expect(page.get_by_test_id("hours")).to_contain_text("Monday – Friday, 09:00 – 12:30")
        await expect(page.get_by_test_id("languages")).to_have_text("Dutch, Arabic")
        await expect(page.get_by_test_id("website")).to_have_attribute("data-state", "closed")
        await expect(page.get_by_role("button", name="Save to my plan")).to_be_visible()
        assert await axe(page) == []
        assert await small_targets(page) == []
        await page.get_by_role("link", name="Back to the directory").click()
        await page.wait_for_url(f"{site.portal}/resources?*place=gent*")
        await expect(page.get_by_label("City or region where you will live")).to_have_value("gent")
        assert not errors
    viewed = site.records(tag="resources:service:viewed", actor=number)
    assert [r.path for r in viewed] == ["/resources/service/svc-woning"]


async def test_education_edits_an_entry_and_marks_it_checked(site: Platform, browser: Browser,
                                                             signed_in: dict[str, Any]) -> None:
    async with as_staff(browser, site, signed_in, "education", axe=True) as page:
        await page.goto(f"{site.portal}/resources-admin")
        assert await axe(page) == []
        await page.get_by_role("link", name="Not checked for 180 days").click()
        await expect(page.get_by_test_id("entries").locator('tr[data-service="svc-nooit"]')).to_have_count(1)
        assert await axe(page) == []
        await page.get_by_role("link", name="Identity card after release").click()
        await page.wait_for_url(f"{site.portal}/resources-admin/service/svc-nooit")
        assert await axe(page) == []

        await page.get_by_label("Name", exact=True).fill("")
        await page.get_by_label("Fees").fill("Free of charge")
        await page.get_by_label("Website", exact=True).fill("town hall")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
        await expect(page.locator("#name-error")).to_have_text("An entry needs a name.")
        await expect(page.locator("#url-error")).to_be_visible()
        await expect(page.get_by_label("Fees")).to_have_value("Free of charge")
        await expect(page.get_by_label("Website", exact=True)).to_have_value("town hall")
        await expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
        assert await axe(page) == []

        await page.get_by_label("Name", exact=True).fill("Identity card after release (town hall)")
        await page.get_by_label("Website", exact=True).fill("https://allowed.test/eid")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text("The entry was saved.")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Identity card after release (town hall)")
        await expect(page.get_by_label("Fees")).to_have_value("Free of charge")
        await expect(page.get_by_test_id("checked")).to_contain_text("never checked")

        await page.get_by_role("button", name="Mark checked today").click()
        await expect(page.get_by_role("status")).to_have_text("Marked as checked today.")
        await expect(page.get_by_test_id("checked")).to_contain_text("checked today")
        assert await axe(page) == []
        await page.goto(f"{site.portal}/resources-admin?view=stale")
        await expect(page.locator('tr[data-service="svc-nooit"]')).to_have_count(0)
    checked = site.records(tag="resources:service:checked")
    assert len(checked) == 1 and checked[0].reason.startswith("svc-nooit: Identity card after release (town hall);")
    changed = site.records(tag="resources:service:changed")
    assert len(changed) == 1 and "town hall" in changed[0].reason
