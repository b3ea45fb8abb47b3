"""Offline libraries in Chromium: an inmate opens the catalogue, an article with its image and a search, with
axe-core finding nothing on any of them; a link out of the library cannot be followed and no script of the ZIM
runs; education staff hide a page through the management screen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.library import shelf
from tests.conftest import Origin
from tests.helpers import NEEDS_CHROMIUM, Platform, populate
from tests.test_browser_portal import as_staff, axe, browser, inmate_login, new_inmate, opened, signed_in
from tests.test_library import build_zim

__all__ = ["browser", "signed_in"]
pytestmark = [NEEDS_CHROMIUM, pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    folder = tmp_path_factory.mktemp("library-browser")
    settings = initialise(folder / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    settings = settings.replace(login__attempts_per_address=1000)
    source = build_zim(folder)
    async with running(settings) as up:
        def seed() -> None:
            with up.kernel.factory.begin() as session:
                shelf.add(session, settings.data_dir, source, name="bakery", by="teacher", now=utcnow())
                shelf.add(session, settings.data_dir, build_zim(folder, "b.zim", "Bakkerij", "nld"), name="bakkerij",
                          by="teacher", now=utcnow())
        await asyncio.to_thread(seed)
        yield Platform(up, Origin(), settings)


async def test_an_inmate_reads_searches_and_cannot_leave(site: Platform, browser: Browser) -> None:
    number = await new_inmate(site)
    async with opened(browser, axe=True) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/library")
        await expect(page.get_by_test_id("shelf")).to_have_count(2)
        assert await axe(page) == []
        await page.get_by_role("link", name="Bakery", exact=True).click()
        await page.wait_for_url(f"{site.portal}/library/bakery/A/Bread")
        await expect(page.get_by_role("heading", name="Bread")).to_be_visible()
        assert await page.title() == "Bread", "the ZIM's script did not run"
        loaded = await page.locator('img[alt="A loaf"]').evaluate("img => img.complete && img.naturalWidth")
        assert loaded == 2
        assert await axe(page) == []
        external = page.get_by_text("a bakery")
        await expect(external).to_be_visible()
        assert await page.locator('a[href*="bakers.example.org"]').count() == 0
        await external.click()
        await page.wait_for_timeout(300)
        assert page.url == f"{site.portal}/library/bakery/A/Bread"
        await page.get_by_role("link", name="water", exact=True).click()
        await page.wait_for_url(f"{site.portal}/library/bakery/A/Water")
        await page.get_by_label("Search in this library").fill("sourdough")
        await page.get_by_role("button", name="Search").click()
        await page.wait_for_url(f"{site.portal}/library/bakery/search?q=sourdough")
        await expect(page.get_by_test_id("results").get_by_role("link", name="Bread")).to_be_visible()
        assert await axe(page) == []
        assert not errors
    opened_paths = [r.path for r in site.records(tag="library:article:opened", actor=number)]
    assert opened_paths == ["/library/bakery/A/Bread", "/library/bakery/A/Water"]


async def test_education_hides_a_page_from_the_management_screen(site: Platform, browser: Browser,
                                                                 signed_in: dict[str, Any]) -> None:
    async with as_staff(browser, site, signed_in, "education", axe=True) as page:
        await page.goto(f"{site.portal}/library-admin")
        assert await axe(page) == []
        section = page.locator('section[data-library="bakkerij"]')
        await section.get_by_label("Path of the page to hide").fill("A/Secret")
        await section.get_by_role("button", name="Hide", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("hidden now")
        await expect(page.locator('section[data-library="bakkerij"] [data-path="A/Secret"]')).to_have_count(1)
        assert await axe(page) == []
        await page.goto(f"{site.portal}/library/bakkerij/A/Secret")
        await expect(page.get_by_test_id("missing")).to_contain_text("chose not to show")
