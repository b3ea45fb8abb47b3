"""Jobs and the release plan in Chromium: an inmate saves a job, sets the release date, ticks a step, writes a note
and takes the printed plan away; education staff post a job, support an inmate and read the plan, which the
inmate then sees; axe-core finds nothing on any of these pages, in the four languages.

One platform and one Chromium serve the module; each test makes its own inmates and offers.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.inmates import find_inmate
from gatehouse.resources import jobs, plans
from tests.conftest import Origin
from tests.helpers import NEEDS_CHROMIUM, Platform, populate
from tests.test_browser_portal import (
    Screen,
    as_staff,
    axe,
    axe_everywhere,
    browser,
    inmate_login,
    new_inmate,
    opened,
    report,
    signed_in,
)

__all__ = ["browser", "signed_in"]
pytestmark = [NEEDS_CHROMIUM, pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = initialise(tmp_path_factory.mktemp("release") / "data", {"portal.port": 0, "proxy.port": 0},
                          quiet=True)
    populate(settings)
    async with running(settings.replace(login__attempts_per_address=1000)) as up:
        yield Platform(up, Origin(), settings)


def today_at(site: Platform) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(site.settings["facility.timezone"])).date()


async def offer(site: Platform, title: str, **fields: str) -> int:
    def post() -> int:
        with site.up.kernel.factory.begin() as s:
            return jobs.post(s, {"title": title, "employer": "Depot Noord", "region": "Antwerp", "city": "Antwerpen",
                                 "contract": "fixed-term", "hours": "shifts", "fair_chance": "yes",
                                 "description": "Loading trucks.\n\nEarly shifts.", "how_to_apply": "Call Anna.",
                                 "closes_on": (today_at(site) + timedelta(days=20)).isoformat(), **fields},
                             by="teacher", today=today_at(site), now=utcnow()).id
    return await asyncio.to_thread(post)


async def test_an_inmate_saves_a_job_ticks_a_step_writes_a_note_and_prints_the_plan(
        site: Platform, browser: Browser, tmp_path: Path) -> None:
    job_id = await offer(site, "Warehouse operative")
    number = await new_inmate(site)
    release = today_at(site) + timedelta(days=80)
    problems: list[str] = []
    async with opened(browser, axe=True, accept_downloads=True) as page:
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/jobs")
        problems += await axe(page)
        await page.get_by_label("Employers").select_option("yes")
        await page.get_by_role("button", name="Show the offers").click()
        await page.wait_for_url(f"{site.portal}/jobs?**fair_chance=yes**")
        await page.get_by_role("link", name="Warehouse operative").click()
        await page.wait_for_url(f"{site.portal}/jobs/{job_id}")
        problems += await axe(page)
        await page.get_by_role("button", name="Save to my plan").click()
        await expect(page.get_by_role("status")).to_have_text("Saved in your plan.")
        await expect(page.get_by_test_id("in-plan")).to_be_visible()
        await page.get_by_role("link", name="Open my plan").click()
        await page.wait_for_url(f"{site.portal}/plan")
        await expect(page.locator(f'[data-testid=jobs] [data-job="{job_id}"]')).to_contain_text("Depot Noord")
        await expect(page.get_by_test_id("no-date")).to_be_visible()
        problems += await axe(page)

        await page.get_by_label("Release date").fill(release.isoformat())
        await page.get_by_label("Region or city where you will live").fill("Antwerp")
        await page.get_by_role("button", name="Save the date and region").click()
        await expect(page.get_by_role("status")).to_have_text("Your release date and region were saved.")
        step = page.locator('[data-step="id-card"]')
        await expect(step).to_have_attribute("data-state", "later")
        await step.get_by_role("button", name="Mark as done").click()
        await expect(page.locator('[data-step="id-card"]')).to_have_attribute("data-state", "done")
        await expect(page.locator('[data-step="housing"]')).to_have_attribute("data-state", "overdue")
        await page.get_by_label("Your notes").fill("Ask Anna about the early shift.\nBring the ID card.")
        await page.get_by_role("button", name="Save my notes").click()
        await expect(page.get_by_role("status")).to_have_text("Your notes were saved.")
        await expect(page.get_by_label("Your notes")).to_have_value("Ask Anna about the early shift.\n"
                                                                   "Bring the ID card.")
        problems += await axe(page)
        await page.get_by_label("Your notes").fill("x" * (plans.MAX_NOTES + 1))
        await page.get_by_role("button", name="Save my notes").click()
        await expect(page.get_by_role("alert")).to_be_visible()
        await expect(page.locator("#notes-error")).to_contain_text("too long")
        problems += await axe(page)

        async with page.expect_download() as waiting:
            await page.get_by_test_id("print").click()
        pdf = tmp_path / "plan.pdf"
        await (await waiting.value).save_as(pdf)
    assert problems == [], report(problems)
    printed = " ".join(subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                                      check=True).stdout.split())
    for expected in (f"Inmate number: {number}", "Warehouse operative", "Depot Noord", "Identity card — Done",
                     "A place to live — Overdue", "Ask Anna about the early shift.", "Bring the ID card.",
                     "Region of release: Antwerp"):
        assert expected in printed, (expected, printed)


async def test_education_posts_a_job_supports_an_inmate_reads_the_plan_and_the_inmate_sees_who_looked(
        site: Platform, browser: Browser, signed_in: dict[str, Any]) -> None:
    number = await new_inmate(site)

    def note() -> None:
        with site.up.kernel.factory.begin() as s:
            plans.set_notes(s, find_inmate(s, number).id, "I want to work in a kitchen.", now=utcnow())
    await asyncio.to_thread(note)
    problems: list[str] = []
    async with as_staff(browser, site, signed_in, "education", axe=True) as page:
        await page.goto(f"{site.portal}/resources-admin/jobs")
        problems += await axe(page)
        form = page.get_by_test_id("post-job")
        await form.get_by_label("Job title").fill("Kitchen help")
        await form.get_by_role("button", name="Post the offer").click()
        await expect(page.get_by_role("alert")).to_contain_text("not posted")
        await expect(page.locator("#employer-error")).to_be_visible()
        await expect(page.get_by_test_id("post-job").get_by_label("Job title")).to_have_value("Kitchen help")
        problems += await axe(page)
        form = page.get_by_test_id("post-job")
        await form.get_by_label("Employer", exact=True).fill("Brasserie Zuid")
        await form.get_by_label("Region (optional)").fill("Ghent")
        await form.get_by_label("Closing day").fill((today_at(site) + timedelta(days=14)).isoformat())
        await form.get_by_label("Fair-chance employer").check()
        await form.get_by_role("button", name="Post the offer").click()
        await expect(page.get_by_role("status")).to_contain_text("was posted")
        row = page.locator("[data-testid=offers] tr", has_text="Kitchen help")
        await expect(row).to_have_attribute("data-state", "open")
        await row.get_by_role("link", name="Kitchen help").click()
        await page.wait_for_url(f"{site.portal}/resources-admin/jobs/*")
        problems += await axe(page)

        await page.goto(f"{site.portal}/resources-admin/plans")
        problems += await axe(page)
        await page.get_by_label("Inmate number").fill(number)
        await page.get_by_role("button", name="Support this inmate").click()
        await expect(page.get_by_role("status")).to_contain_text("You now support")
        await page.get_by_role("link", name=f"Test Inmate {number} ({number})").click()
        await page.wait_for_url(f"{site.portal}/resources-admin/plans/{number}")
        await expect(page.get_by_test_id("notes")).to_have_text("I want to work in a kitchen.")
        problems += await axe(page)
    async with opened(browser, axe=True) as page:
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/jobs")
        await expect(page.locator("[data-testid=offers] li", has_text="Kitchen help")).to_contain_text(
            "Brasserie Zuid")
        await page.goto(f"{site.portal}/plan")
        await expect(page.get_by_test_id("supporters")).to_contain_text("education")
        looked = page.get_by_test_id("views").locator("tbody tr")
        await expect(looked).to_have_count(1)
        await expect(looked.first).to_contain_text("The plan's page")
        problems += await axe(page)
    assert problems == [], report(problems)


async def test_release_pages_have_no_axe_violations_in_four_languages(site: Platform, browser: Browser,
                                                                      signed_in: dict[str, Any]) -> None:
    job_id = await offer(site, "Painter")
    number = await new_inmate(site)

    def support() -> None:
        with site.up.kernel.factory.begin() as s:
            me = find_inmate(s, number).id
            plans.set_release(s, me, today_at(site) + timedelta(days=40), "Antwerp", today=today_at(site),
                              now=utcnow())
            plans.save(s, me, "job", str(job_id), today=today_at(site), now=utcnow())
            plans.set_step(s, me, "benefits", True, now=utcnow())
    await asyncio.to_thread(support)
    async with opened(browser, axe=True) as page:
        await inmate_login(page, site, number)
        problems = await axe_everywhere(page, site, [
            Screen("/jobs"), Screen("/jobs?region=Antwerp&fair_chance=yes"), Screen(f"/jobs/{job_id}"),
            Screen("/plan"), Screen("/plan", 400, "/plan/notes", (("#notes-text", "x" * (plans.MAX_NOTES + 1)),)),
            Screen("/plan", 400, "/plan/release", (("#release_date", "2000-01-01"),))], touch=True)
    async with as_staff(browser, site, signed_in, "education", axe=True) as page:
        await page.goto(f"{site.portal}/resources-admin/plans")
        await page.get_by_label("Inmate number").fill(number)
        await page.get_by_role("button", name="Support this inmate").click()
        await expect(page.get_by_role("status")).to_be_visible()
        problems += await axe_everywhere(page, site, [
            Screen("/resources-admin/jobs"), Screen("/resources-admin/jobs", 400, "/resources-admin/jobs"),
            Screen(f"/resources-admin/jobs/{job_id}"), Screen("/resources-admin/plans"),
            Screen("/resources-admin/plans", 400, "/resources-admin/plans"),
            Screen(f"/resources-admin/plans/{number}")])
    assert not problems, report(problems)
