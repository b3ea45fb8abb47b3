"""Asking for a site, as an inmate meets it in a terminal's browser: the block page's link (HTTP and HTTPS) leads to
the form with the address filled in; a wrong form keeps what was typed and says what is wrong at the field; asking
twice for one address is one request; the limit refuses one more; the list shows each request's state and staff's
answer in the inmate's language and zone, withdraws one that waits, and never shows another inmate's.

One platform and one Chromium (the gateway as its proxy, as a kiosk has it) serve the module; each test makes its
own inmates, so order does not matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.curation import asking
from gatehouse.curation.models import AccessRequest, RequestStatus
from gatehouse.db.engine import utcnow
from portal import i18n
from portal.curation.inmate import STATES
from tests.conftest import Origin
from tests.helpers import NEEDS_CHROMIUM, Platform, launched_chromium, populate
from tests.test_browser import kiosk_args
from tests.test_browser_portal import axe, inmate_login, new_inmate, opened

pytestmark = [
    NEEDS_CHROMIUM,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.asyncio(loop_scope="module"),
]

POLICY = "rules:\n  - id: allowed\n    allow: [allowed.test]\n"
LIMIT = 2


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """Portal and gateway as `gatehouse run` starts them; no origin: every site asked for here is refused."""
    settings = initialise(tmp_path_factory.mktemp("asking") / "data", {"portal.port": 0, "proxy.port": 0},
                          quiet=True)
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    (settings.policy_dir / "test.yaml").write_text(POLICY, encoding="utf-8")
    populate(settings)
    settings = settings.replace(login__attempts_per_address=1000, curation__max_open_requests=LIMIT)
    async with running(settings) as up:
        yield Platform(up, Origin(), settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(site: Platform) -> AsyncIterator[Browser]:
    """A terminal's browser: the gateway as its proxy (the portal on loopback stays direct), its CA trusted."""
    async with launched_chromium(*kiosk_args(site)) as chromium:
        yield chromium


def rows_of(site: Platform, number: str) -> list[AccessRequest]:
    with site.up.kernel.factory() as db:
        return asking.requests_of(db, number)


async def ask(page: Page, site: Platform, url: str, purpose: str, reason: str) -> None:
    await page.goto(f"{site.portal}/ask?url={url}")
    await page.get_by_test_id("purpose").locator(f'input[value="{purpose}"]').check()
    await page.locator("#reason").fill(reason)
    await page.get_by_role("button", name="Send the request").click()
    await page.wait_for_load_state()


async def test_a_block_page_on_http_and_on_https_leads_to_the_form_and_the_request_is_kept_and_recorded(
        site: Platform, browser: Browser) -> None:
    number = await new_inmate(site)
    plain, secure = "http://jobs.nowhere.test/vacatures?q=lasser&regio=gent", "https://learn.nowhere.test/course?id=7"
    async with opened(browser) as page:
        await inmate_login(page, site, number)
        await expect(page.get_by_test_id("ask").get_by_role("link")).to_have_attribute("href", "/ask")
        for url in (plain, secure):
            response = await page.goto(url)
            assert response is not None and response.status == 403, url
            link = page.get_by_role("link", name="Ask for this site")
            href = await link.get_attribute("href") or ""
            assert href.startswith(f"{site.portal}/ask?url="), href
            assert parse_qs(urlsplit(href).query) == {"url": [url]}
        await link.click()
        await page.wait_for_url(f"{site.portal}/ask?**")
        await expect(page.locator("#url")).to_have_value(secure)

        # No purpose chosen: refused at that field, with what was typed kept.
        await page.locator("#reason").fill("The welding course sends us to its exercises there.")
        async with page.expect_navigation() as sent:
            await page.get_by_role("button", name="Send the request").click()
        assert (await sent.value).status == 400  # type: ignore[union-attr]
        await expect(page.locator("#purpose-error")).to_have_text("Choose what you need the site for.")
        await expect(page.get_by_test_id("purpose")).to_have_attribute("aria-describedby", "purpose-error")
        await expect(page.locator("#url-error")).to_have_count(0)
        await expect(page.locator("#url")).to_have_value(secure)
        await expect(page.locator("#reason")).to_have_value("The welding course sends us to its exercises there.")
        assert rows_of(site, number) == []

        await page.get_by_label("For a course I take").check()
        await page.get_by_role("button", name="Send the request").click()
        await page.wait_for_url(f"{site.portal}/requests?done=asked")
        await expect(page.get_by_role("status")).to_have_text(
            "Your request was sent. Education staff will answer it here.")
        await expect(page.locator("li[data-state=open]")).to_have_count(1)
        await expect(page.locator("li[data-state=open]").get_by_test_id("url")).to_have_text(secure)

    [row] = rows_of(site, number)
    assert (row.url, row.host, row.purpose, row.status) == (secure, "learn.nowhere.test", "course", "open")
    assert row.reason == "The welding course sends us to its exercises there."
    [record] = [r for r in site.records(tag="curation:request:asked") if r.actor == number]
    assert (record.terminal, record.host) == ("cell-1", "learn.nowhere.test")
    assert f"request {row.id}:" in record.reason and secure in record.reason


async def test_a_wrong_address_is_named_at_its_field_in_the_inmates_language(site: Platform,
                                                                            browser: Browser) -> None:
    number = await new_inmate(site, "fr")
    async with opened(browser) as page:
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/ask?url=ftp://files.nowhere.test/cv.pdf")
        await page.get_by_test_id("purpose").locator('input[value="jobs"]').check()
        async with page.expect_navigation() as sent:
            await page.locator('form[action="/ask"] button[type=submit]').click()
        assert (await sent.value).status == 400  # type: ignore[union-attr]
        expected = i18n.catalogue("fr").gettext(
            "This is not the address of a web site. Give an address that starts with http:// or https://.")
        await expect(page.locator("#url-error")).to_have_text(expected)
        await expect(page.locator("#url")).to_have_attribute("aria-describedby", "url-hint url-error")
        await expect(page.locator('input[value="jobs"]')).to_be_checked()
        assert "addresses are not web sites" not in await page.content()  # the domain's English stays out
    assert rows_of(site, number) == []


async def test_asking_twice_for_one_address_is_one_request_and_the_limit_refuses_one_more(
        site: Platform, browser: Browser) -> None:
    number = await new_inmate(site)
    async with opened(browser) as page:
        await inmate_login(page, site, number)
        await ask(page, site, "https://www.vdab.test/jobs", "jobs", "To find work as a cook.")
        await ask(page, site, "https://www.vdab.test/jobs", "jobs", "To find work as a cook in Gent.")
        assert page.url == f"{site.portal}/requests?done=again"
        await expect(page.get_by_role("status")).to_have_text(
            "You asked for this site already; we added your new reason to that request.")
        [row] = rows_of(site, number)
        assert row.reason == "To find work as a cook in Gent."

        await ask(page, site, "https://housing.nowhere.test/", "housing", "A flat after release.")
        await expect(page.locator("li[data-state=open]")).to_have_count(2)
        await page.goto(f"{site.portal}/ask?url=https://legal.nowhere.test/")
        await page.get_by_test_id("purpose").locator('input[value="legal"]').check()
        await page.locator("#reason").fill("My lawyer's forms.")
        async with page.expect_navigation() as sent:
            await page.get_by_role("button", name="Send the request").click()
        assert (await sent.value).status == 409  # type: ignore[union-attr]
        await expect(page.get_by_role("alert")).to_contain_text(f"You have {LIMIT} requests waiting")
        await expect(page.locator("#url")).to_have_value("https://legal.nowhere.test/")
        await expect(page.locator("#reason")).to_have_value("My lawyer's forms.")
        await expect(page.locator('input[value="legal"]')).to_be_checked()
    assert sorted(r.host for r in rows_of(site, number)) == ["housing.nowhere.test", "www.vdab.test"]
    records = [r for r in site.records(tag="curation:request:asked") if r.actor == number]
    assert len(records) == 3 and "asks again" in records[1].reason


def seed(site: Platform, number: str) -> dict[str, int]:
    """Requests of `number` in each state, a day apart (oldest first), and one of another inmate."""
    start = utcnow() - timedelta(days=10)
    ids: dict[str, int] = {}
    with site.up.kernel.factory.begin() as db:
        for day, (host, state) in enumerate([("a.nowhere.test", "granted"), ("b.nowhere.test", "refused"),
                                             ("c.nowhere.test", "proposed"), ("d.nowhere.test", "open")]):
            row = asking.ask(db, inmate=number, url=f"https://{host}/", purpose="course", reason=f"for {host}",
                             now=start + timedelta(days=day), limit=10).request
            db.flush()
            ids[state] = row.id
            if state == "refused":
                asking.refuse(db, row.id, reason="Deze site heeft een forum; vraag naar de oefenpagina.",
                              by="teacher", now=start + timedelta(days=day, hours=2))
            elif state != "open":
                row.status = RequestStatus(state).value
        other = asking.ask(db, inmate="A100", url="https://e.nowhere.test/", purpose="other", reason="",
                           now=start, limit=10).request
        db.flush()
        ids["other"] = other.id
    return ids


async def test_the_list_shows_states_dates_and_answers_in_dutch_and_withdraws_only_ones_own(
        site: Platform, browser: Browser) -> None:
    number = await new_inmate(site, "nl")
    ids = await asyncio.to_thread(seed, site, number)
    async with opened(browser, locale="nl-BE") as page:
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/requests")
        await expect(page.locator("html")).to_have_attribute("lang", "nl")
        cards = page.locator("[data-testid=requests] > li")
        assert await cards.evaluate_all("els => els.map(e => e.dataset.state)") == [
            "open", "proposed", "refused", "granted"]  # newest first
        nl = i18n.catalogue("nl")
        for state in ("open", "proposed", "refused", "granted"):
            card = page.locator(f'li[data-request="{ids[state]}"]')
            await expect(card.get_by_test_id("state")).to_have_text(nl.gettext(STATES[state]))
            await expect(card.get_by_test_id("withdraw")).to_have_count(1 if state == "open" else 0)
        refused = page.locator(f'li[data-request="{ids["refused"]}"]')
        await expect(refused.get_by_test_id("answer")).to_have_text(
            "Deze site heeft een forum; vraag naar de oefenpagina.")
        with site.up.kernel.factory() as db:
            row = asking.get(db, ids["refused"])
            asked_at, decided_at = row.created_at, row.decided_at
        assert decided_at is not None
        zone = ZoneInfo(site.settings["facility.timezone"])
        i18n.activate("nl")
        try:
            asked_text = i18n.format_datetime(asked_at, zone, "short")
            decided_text = i18n.format_datetime(decided_at, zone, "short")
        finally:
            i18n.activate("en")
        await expect(refused.get_by_test_id("asked")).to_have_text(asked_text)
        await expect(refused.get_by_test_id("decided")).to_have_text(decided_text)
        await expect(page.locator(f'li[data-request="{ids["other"]}"]')).to_have_count(0)

        await page.locator(f'li[data-request="{ids["open"]}"]').get_by_test_id("withdraw").click()
        await page.wait_for_url(f"{site.portal}/requests?done=withdrawn")
        await expect(page.locator(f'li[data-request="{ids["open"]}"]')).to_have_attribute("data-state", "withdrawn")

        csrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "gh_csrf")
        for target, status in ((ids["other"], 404), (ids["proposed"], 409), (999999, 404)):
            answer = await page.request.post(f"{site.portal}/requests/{target}/withdraw",
                                             form={"csrf_token": csrf}, max_redirects=0)
            assert answer.status == status, (target, answer.status)
            assert "e.nowhere.test" not in await answer.text()
    with site.up.kernel.factory() as db:
        states = {r.id: r.status for r in db.scalars(select(AccessRequest).where(
            AccessRequest.id.in_(ids.values())))}
    assert states[ids["open"]] == "withdrawn"
    assert states[ids["other"]] == "open" and states[ids["proposed"]] == "proposed"
    [record] = [r for r in site.records(tag="curation:request:withdrawn") if r.actor == number]
    assert f"request {ids['open']}:" in record.reason and record.host == "d.nowhere.test"


async def test_axe_on_the_form_with_its_errors_and_on_the_list(site: Platform, browser: Browser) -> None:
    number = await new_inmate(site)
    await asyncio.to_thread(seed, site, number)
    problems: list[str] = []
    async with opened(browser, axe=True) as page:
        await inmate_login(page, site, number)
        for language in ("en", "nl"):
            await page.goto(f"{site.portal}/ask?url=mailto:someone")
            await page.locator("#reason").fill("x" * (asking.MAX_REASON + 1))
            async with page.expect_navigation() as sent:
                await page.locator('form[action="/ask"] button[type=submit]').click()
            assert (await sent.value).status == 400  # type: ignore[union-attr]
            await expect(page.locator(".error")).to_have_count(3)  # url, purpose and reason
            await expect(page.locator("#reason")).to_have_value("x" * (asking.MAX_REASON + 1))
            problems += [f"[{language}] /ask with errors {line}" for line in await axe(page)]
            await page.goto(f"{site.portal}/requests")
            await expect(page.locator("[data-testid=requests] > li")).to_have_count(4)
            problems += [f"[{language}] /requests {line}" for line in await axe(page)]
            await page.get_by_role("button", name=i18n.NAMES["nl"], exact=True).click()
            await expect(page.locator("html")).to_have_attribute("lang", "nl")
    assert not problems, "\n".join(problems)
