"""A booked visit joined as `gatehouse run` serves it: the inmate from the booth's terminal on the portal, the family
from the visitors' listener, the supervisor from today's visits, all in one room of the hub both listeners share.
Chromium with fake devices; the rows are real (SQLite), the audit records are read back; a supervisor's end is
written to the visit's row, a lockdown made in the database ends the running call within a round, and a legal
visit refuses the supervisor's page and socket and records the refusal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from gatehouse import control
from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import stored, utcnow
from gatehouse.db.models import Inmate
from gatehouse.facility import ensure_facility
from gatehouse.visits.models import Booth, Visit, VisitGuest, VisitStatus
from gatehouse.visits.room import Role
from tests.conftest import Origin
from tests.helpers import CELL, CLASSROOM, INMATE, NEEDS_CHROMIUM, PIN, launched_chromium, populate, staff_client
from tests.test_browser_portal import AXE_SOURCE, as_staff, axe
from tests.test_visits_call import MEDIA, Call, in_state, waiting_room_works
from tests.test_visits_public import PASSWORD, Site, get, log_in, ready_visitor

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.filterwarnings("ignore::ResourceWarning")]
MIN = timedelta(minutes=1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    settings = initialise(tmp_path_factory.mktemp("join") / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    settings = settings.replace(login__attempts_per_address=10_000, login__attempts_per_minute=10_000)
    async with running(settings) as up:
        with up.kernel.factory.begin() as db:
            db.add(Booth(name="booth-1", unit="A", terminal="cell-1"))  # the cell terminal is the booth here
        yield Site(up, Origin(), settings, None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium(*MEDIA) as chromium:
        yield chromium


def booked(site: Site, guests: list[int], *, minutes: int = 20, legal: bool = False,
           status: VisitStatus = VisitStatus.APPROVED) -> int:
    """A visit as booking and approval leave it, already under way (the rules of booking are tested elsewhere)."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - MIN
    with site.up.kernel.factory.begin() as db:
        inmate = db.query(Inmate).filter_by(number=INMATE).one()
        booth = db.query(Booth).filter_by(name="booth-1").one()
        visit = Visit(inmate_id=inmate.id, booth_id=booth.id, starts_at=stored(start),
                      ends_at=stored(start + minutes * MIN), visit_class="legal" if legal else "ordinary",
                      status=status.value, requested_by="staff:test", requested_at=utcnow())
        visit.visitors = [VisitGuest(visitor_id=g) for g in guests]
        db.add(visit)
        db.flush()
        return visit.id


async def inmate_page(browser: Browser, site: Site) -> Page:
    context = await browser.new_context(locale="en-GB")
    context.set_default_timeout(10_000)
    await context.add_init_script(script=AXE_SOURCE)
    page = await context.new_page()
    await page.goto(f"{site.portal}/login")
    await page.fill("[name=inmate_number]", INMATE)
    await page.fill("[name=pin]", PIN)
    await page.locator("main button[type=submit]").click()
    await page.wait_for_url(f"{site.portal}/home")
    return page


async def visitor_page(browser: Browser, site: Site, email: str) -> Page:
    context = await browser.new_context(locale="en-GB")
    context.set_default_timeout(10_000)
    await context.add_init_script(script=AXE_SOURCE)
    page = await context.new_page()
    await page.goto(f"{site.public}/login")
    await page.fill("[name=email]", email)
    await page.fill("[name=password]", PASSWORD)
    await page.locator("main button[type=submit]").click()
    await page.wait_for_url(f"{site.public}/visits")
    return page


async def joined(page: Page, url: str, button: str, *, preview: bool = True) -> None:
    response = await page.goto(url)
    assert response is not None and response.status == 200, url
    assert response.headers.get("permissions-policy", "").startswith(
        "camera=(self)" if preview else "camera=()"), response.headers
    if preview:
        await waiting_room_works(page)
    await page.get_by_role("button", name=button).click()
    await in_state(page, "in-call")


async def close(*pages: Page) -> None:
    for page in pages:
        await page.context.close()


@NEEDS_CHROMIUM
async def test_a_booked_visit_is_watched_silently_and_ended_by_the_supervisor_with_a_reason(
        site: Site, browser: Browser) -> None:
    family = ready_visitor(site, "els@family.test")
    visit = booked(site, [family])
    signed_in: dict[str, Any] = {}
    inmate, visitor = await inmate_page(browser, site), await visitor_page(browser, site, "els@family.test")
    try:
        await joined(inmate, f"{site.portal}/visits/{visit}/call", "Join the visit")
        await joined(visitor, f"{site.public}/visits/{visit}/call", "Join the visit")
        async with as_staff(browser, site, signed_in, "supervisor", axe=True) as supervisor:
            await supervisor.goto(f"{site.portal}/staff/visits/watch")
            row = supervisor.locator(f"tr[data-visit='{visit}']")
            await expect(row.locator("td").nth(3)).to_have_text("2")  # the inmate and the family, in the room
            assert await axe(supervisor) == []
            await row.get_by_role("link", name="Watch").click()
            await supervisor.get_by_role("button", name="Start watching").click()
            await in_state(supervisor, "in-call")
            c = Call({Role.INMATE: inmate, Role.VISITOR: visitor, Role.SUPERVISOR: supervisor})
            await c.grows(Role.INMATE, 1)
            await c.grows(Role.VISITOR, 1)
            await c.grows(Role.SUPERVISOR, 2)
            assert (await c.stats(Role.SUPERVISOR))["outboundBytes"] == 0
            assert await c.peers(Role.INMATE) == ["Visitor els"]
            assert len(await c.peers(Role.VISITOR)) == 1  # the inmate only: the supervisor is never listed
            for page in (inmate, visitor, supervisor):
                assert await axe(page) == []

            await supervisor.locator("[data-call-reason]").fill("the visitor showed a weapon")
            await supervisor.get_by_role("button", name="End the visit").click()
            for page in (inmate, visitor):
                await in_state(page, "ended")
                await expect(page.locator("[data-call-status]")).to_have_text(
                    "Staff ended the visit. Reason: the visitor showed a weapon")
    finally:
        await close(inmate, visitor)
    for _ in range(50):
        with site.up.kernel.factory() as db:
            row_now = db.get(Visit, visit)
            assert row_now is not None
            if row_now.status == VisitStatus.ENDED.value:
                break
        await asyncio.sleep(0.1)
    assert (row_now.status, row_now.close_reason) == ("ended", "the visitor showed a weapon")
    assert row_now.closed_by.startswith("staff:")
    joins = site.records(tag="visits:call:joined")
    assert {r.actor for r in joins if f"visit:{visit} " in r.reason} == {f"inmate:{INMATE}", f"visitor:{family}"}
    [watched] = [r for r in site.records(tag="visits:call:watched") if f"visit:{visit} " in r.reason]
    [ended] = [r for r in site.records(tag="visits:call:ended") if f"visit:{visit} " in r.reason]
    assert ended.actor == watched.actor and "reason=the visitor showed a weapon" in ended.reason
    async with site.client(CELL) as again:  # ended by staff: the page says so and no room opens again
        await site.login(again)
        page = await get(again, f"{site.portal}/visits/{visit}/call")
        assert page.status == 409 and "the visitor showed a weapon" in page.text


@NEEDS_CHROMIUM
async def test_a_lockdown_in_the_database_ends_the_running_call_and_tells_both_sides(
        site: Site, browser: Browser) -> None:
    family = ready_visitor(site, "jo@family.test")
    visit = booked(site, [family])
    inmate, visitor = await inmate_page(browser, site), await visitor_page(browser, site, "jo@family.test")
    try:
        await joined(inmate, f"{site.portal}/visits/{visit}/call", "Join the visit")
        await joined(visitor, f"{site.public}/visits/{visit}/call", "Join the visit")
        await Call({Role.VISITOR: visitor}).flowing(Role.VISITOR, 1)
        kernel = site.up.kernel
        with kernel.factory.begin() as db:
            facility = ensure_facility(db, site.settings).name
            outcome = control.lock_down(db, facility, "A", "search of unit A", "sgt.peeters", utcnow())
        assert "video visits stopped: 1" in outcome.summary
        try:
            for page in (inmate, visitor):
                await in_state(page, "ended", timeout=10_000)
                await expect(page.locator("[data-call-status]")).to_have_text(
                    "Staff ended the visit. Reason: the facility is in lockdown")
        finally:
            with kernel.factory.begin() as db:
                control.lift(db, facility, "A", "sgt.peeters", utcnow())
    finally:
        await close(inmate, visitor)
    with site.up.kernel.factory() as db:
        row = db.get(Visit, visit)
        assert row is not None and (row.status, row.close_reason) == ("ended", "lockdown: search of unit A")


async def test_who_may_open_a_call_page(site: Site) -> None:
    family, stranger = ready_visitor(site, "an@family.test"), ready_visitor(site, "bo@family.test")
    visit = booked(site, [family])
    waiting = booked(site, [family], status=VisitStatus.REQUESTED)
    async with site.client(CLASSROOM) as classroom:  # the right inmate, not at the booth
        await site.login(classroom)
        page = await get(classroom, f"{site.portal}/visits/{visit}/call")
        assert page.status == 403 and "Join it from the visit booth" in page.text
    async with site.client(CELL) as booth:
        await site.login(booth)
        assert (await get(booth, f"{site.portal}/visits/{waiting}/call")).status == 409
        assert (await get(booth, f"{site.portal}/visits/999999/call")).status == 404
        ok = await get(booth, f"{site.portal}/visits/{visit}/call")
        assert ok.status == 200 and f"/visits/{visit}/call/ws" in ok.text
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        assert (await log_in(site, other, "bo@family.test")).location == "/visits"
        assert (await get(other, f"{site.public}/visits/{visit}/call")).status == 404  # not their visit
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await other.ws_connect(f"{site.public}/visits/{visit}/call/ws")
        assert refused.value.status == 403
    assert stranger != family


async def test_a_legal_visit_refuses_the_supervisors_page_and_socket_and_records_it(site: Site) -> None:
    lawyer = ready_visitor(site, "lex@law.test")
    visit = booked(site, [lawyer], legal=True)
    async with staff_client(site, CELL, "sup-legal", ["supervisor"]) as sup:
        today = await get(sup, f"{site.portal}/staff/visits/watch")
        assert today.status == 200 and f'data-visit="{visit}"' in today.text
        assert f"/staff/visits/{visit}/watch" not in today.text and "never watched" in today.text
        page = await get(sup, f"{site.portal}/staff/visits/{visit}/watch")
        assert page.status == 403 and "no one may watch it" in page.text
        async with sup.ws_connect(f"{site.portal}/staff/visits/{visit}/watch/ws") as ws:
            refused = json.loads((await ws.receive()).data)
            assert refused == {"type": "refused", "code": "legal-no-supervisor"}
    refusals = [r for r in site.records(tag="visits:call:refused") if f"visit:{visit} " in r.reason]
    assert len(refusals) == 2 and {r.actor for r in refusals} == {"staff:sup-legal"}
    assert all("legal-no-supervisor" in r.reason for r in refusals)
    assert not [r for r in site.records(tag="visits:call:watched") if f"visit:{visit} " in r.reason]
