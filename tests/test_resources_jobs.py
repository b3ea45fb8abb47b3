"""Job offers: the form's rules by field, posting, changing and withdrawing on SQLite and PostgreSQL, the offers open
on a day with each filter, and the same through the running portal for inmates (closed offers are 404) and
education staff (each change on the audit record).

The HTTP tests share one platform for the module; each makes the offers it looks for, with titles of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.errors import Conflict, NotFound
from gatehouse.kernel import Kernel
from gatehouse.resources import jobs
from gatehouse.resources.jobs import JobFilters, JobState, OfferError
from tests.conftest import Origin
from tests.helpers import CELL, Platform, csrf_from, populate, staff_client

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning")]
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
TODAY = date(2027, 3, 10)


def offer(**fields: str) -> dict[str, str]:
    return {"title": "Warehouse operative", "employer": "Depot Noord", "region": "Antwerp", "city": "Antwerpen",
            "contract": "fixed-term", "hours": "shifts", "fair_chance": "yes", "description": "Lifting.\n\nNights.",
            "how_to_apply": "Call 03 123 45 67.", "language": "nl", "closes_on": "2027-03-20", **fields}


# -- the form's rules ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "problems"), [
    ({"title": "  "}, {"title": "missing"}),
    ({"employer": ""}, {"employer": "missing"}),
    ({"title": "x" * 256}, {"title": "too-long"}),
    ({"region": "r" * 129}, {"region": "too-long"}),
    ({"description": "d" * 8001}, {"description": "too-long"}),
    ({"contract": "forever"}, {"contract": "unknown"}),
    ({"hours": "some"}, {"hours": "unknown"}),
    ({"language": "xx"}, {"language": "unknown"}),
    ({"closes_on": ""}, {"closes_on": "missing"}),
    ({"closes_on": "20 March"}, {"closes_on": "not-a-date"}),
    ({"closes_on": "2027-03-09"}, {"closes_on": "past"}),
    ({"title": "", "employer": "", "closes_on": "x"}, {"title": "missing", "employer": "missing",
                                                       "closes_on": "not-a-date"}),
])
def test_every_problem_of_an_offer_is_named_by_its_field(fields: dict[str, str], problems: dict[str, str]) -> None:
    with pytest.raises(OfferError) as raised:
        jobs.parse_offer(offer(**fields), today=TODAY)
    assert raised.value.problems == problems


@pytest.mark.parametrize(("fields", "attribute", "expected"), [
    ({"title": "  Warehouse \n operative "}, "title", "Warehouse operative"),
    ({"closes_on": "2027-03-10"}, "closes_on", TODAY),
    ({"fair_chance": ""}, "fair_chance", False),
    ({"fair_chance": "on"}, "fair_chance", True),
    ({"contract": ""}, "contract", "permanent"),
    ({"hours": ""}, "hours", "full-time"),
    ({"language": ""}, "language", ""),
    ({"description": " One. \r\n\r\nTwo.  "}, "description", "One.\n\nTwo."),
])
def test_an_offer_is_cleaned_as_it_is_stored(fields: dict[str, str], attribute: str, expected: object) -> None:
    assert getattr(jobs.parse_offer(offer(**fields), today=TODAY), attribute) == expected


def test_an_edited_offer_may_keep_its_past_closing_day_but_not_move_to_another() -> None:
    kept = jobs.parse_offer(offer(closes_on="2027-03-01"), today=TODAY, closes_before=date(2027, 3, 1))
    assert kept.closes_on == date(2027, 3, 1)
    with pytest.raises(OfferError):
        jobs.parse_offer(offer(closes_on="2027-03-02"), today=TODAY, closes_before=date(2027, 3, 1))


# -- on both databases -----------------------------------------------------------------------------------------

@pytest.fixture
def kernel(tmp_path: Path, database_url: str) -> Iterator[Kernel]:
    settings = initialise(tmp_path / "data", {"portal.port": 0, "proxy.port": 0, "database.url": database_url},
                          quiet=True)
    populate(settings)
    opened = Kernel.open(settings)
    yield opened
    opened.engine.dispose()


def test_offers_are_open_through_their_closing_day_and_until_withdrawn(kernel: Kernel) -> None:
    now = utcnow()
    with kernel.factory.begin() as s:
        ids = {name: jobs.post(s, offer(title=name, **extra), by="eva", today=TODAY, now=now).id for name, extra in (
            ("Closes today", {"closes_on": "2027-03-10"}), ("Closes later", {"closes_on": "2027-04-01"}),
            ("Withdrawn", {}))}
        jobs.withdraw(s, ids["Withdrawn"], by="ed", now=now)
    with kernel.factory() as s:
        assert [o.title for o in jobs.open_offers(s, TODAY)] == ["Closes today", "Closes later"]
        assert [o.title for o in jobs.open_offers(s, TODAY + timedelta(days=1))] == ["Closes later"]
        states = {o.title: jobs.state_of(o, TODAY + timedelta(days=1)) for o in jobs.all_offers(s)}
        assert states == {"Closes today": JobState.CLOSED, "Closes later": JobState.OPEN,
                          "Withdrawn": JobState.WITHDRAWN}
        assert jobs.get(s, ids["Withdrawn"]).withdrawn_by == "ed"
    with kernel.factory.begin() as s, pytest.raises(Conflict, match="withdrawn already"):
        jobs.withdraw(s, ids["Withdrawn"], by="ed", now=now)
    with kernel.factory.begin() as s, pytest.raises(Conflict, match="withdrawn"):
        jobs.change(s, ids["Withdrawn"], offer(), by="ed", today=TODAY, now=now)
    with kernel.factory() as s, pytest.raises(NotFound):
        jobs.get(s, 9999)


@pytest.mark.parametrize(("filters", "titles"), [
    (JobFilters(), ["Cook", "Driver", "Painter", "Welder"]),
    (JobFilters(region="antwerp"), ["Cook", "Welder"]),
    (JobFilters(region=" Ghent "), ["Driver", "Painter"]),
    (JobFilters(contract="apprenticeship"), ["Painter"]),
    (JobFilters(hours="part-time"), ["Cook", "Painter"]),
    (JobFilters(fair_chance=True), ["Cook", "Driver"]),
    (JobFilters(region="Ghent", hours="part-time", fair_chance=True), []),
    (JobFilters(region="Liège"), []),
])
def test_inmates_filter_open_offers(kernel: Kernel, filters: JobFilters, titles: list[str]) -> None:
    now = utcnow()
    with kernel.factory.begin() as s:
        for title, region, contract, hours, fair in (
                ("Cook", "Antwerp", "permanent", "part-time", "yes"), ("Driver", "Ghent", "temporary", "shifts", "yes"),
                ("Painter", "Ghent", "apprenticeship", "part-time", ""),
                ("Welder", "Antwerp", "permanent", "full-time", "")):
            jobs.post(s, offer(title=title, region=region, contract=contract, hours=hours, fair_chance=fair,
                               closes_on="2027-03-31"), by="eva", today=TODAY, now=now)
    with kernel.factory() as s:
        assert sorted(o.title for o in jobs.open_offers(s, TODAY, filters)) == titles
        assert jobs.regions(s, TODAY) == ["Antwerp", "Ghent"]
        assert jobs.regions(s, date(2027, 4, 1)) == []


def test_a_change_says_what_changed(kernel: Kernel) -> None:
    now = utcnow()
    with kernel.factory.begin() as s:
        job_id = jobs.post(s, offer(), by="eva", today=TODAY, now=now).id
    with kernel.factory.begin() as s:
        row, changed = jobs.change(s, job_id, offer(title="Forklift driver", fair_chance=""), by="ed",
                                   today=TODAY, now=now)
        assert changed == {"title": ("Warehouse operative", "Forklift driver"), "fair_chance": ("True", "False")}
        assert (row.title, row.fair_chance, row.posted_by) == ("Forklift driver", False, "eva")
    with kernel.factory.begin() as s:
        assert jobs.change(s, job_id, offer(title="Forklift driver", fair_chance=""), by="ed", today=TODAY,
                           now=now)[1] == {}
    with kernel.factory.begin() as s, pytest.raises(OfferError) as raised:
        jobs.change(s, job_id, offer(employer=""), by="ed", today=TODAY, now=now)
    assert raised.value.problems == {"employer": "missing"}


# -- through the portal ----------------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = initialise(tmp_path_factory.mktemp("jobs") / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    async with running(settings.replace(login__attempts_per_address=1000)) as up:
        yield Platform(up, Origin(), settings)


def facility_today(site: Platform) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(site.settings["facility.timezone"])).date()


async def seed(site: Platform, **fields: str) -> int:
    def add() -> int:
        with site.up.kernel.factory.begin() as s:
            return jobs.post(s, offer(**fields), by="teacher", today=date(2000, 1, 1), now=utcnow()).id
    return await asyncio.to_thread(add)


@pytest_asyncio.fixture(loop_scope="module")
async def cell(site: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    async with site.client(CELL) as client:
        assert (await site.login(client)).url.path == "/home"
        yield client


@IN_MODULE_LOOP
async def test_anonymous_and_staff_cannot_open_the_inmates_pages(site: Platform) -> None:
    async with site.client(CELL) as client:
        for path in ("/jobs", "/jobs/1"):
            async with client.get(site.portal + path, allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"] == "/login", path
        async with client.get(site.portal + "/resources-admin/jobs", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/staff/login"
    async with staff_client(site, "127.0.0.3", "guard1", ["security"]) as guard:
        async with guard.get(site.portal + "/resources-admin/jobs") as resp:
            assert resp.status == 403, "education staff only"


@IN_MODULE_LOOP
async def test_an_inmate_sees_open_offers_filters_them_and_a_closed_one_is_404(
        site: Platform, cell: aiohttp.ClientSession) -> None:
    today = facility_today(site)
    open_id = await seed(site, title="Open baker", region="Limburg", contract="apprenticeship",
                         closes_on=today.isoformat())
    other_id = await seed(site, title="Open roofer", region="Namur", fair_chance="", closes_on=(
        today + timedelta(days=30)).isoformat())
    closed_id = await seed(site, title="Closed plumber", closes_on=(today - timedelta(days=1)).isoformat())
    async with cell.get(site.portal + "/jobs") as resp:
        assert resp.status == 200
        body = await resp.text()
    assert f'href="/jobs/{open_id}"' in body and f'href="/jobs/{other_id}"' in body
    assert "Closed plumber" not in body and f'href="/jobs/{closed_id}"' not in body
    assert '<option value="Limburg"' in body and '<option value="Namur"' in body
    for query, shown, hidden in (({"region": "Limburg"}, open_id, other_id),
                                 ({"contract": "apprenticeship"}, open_id, other_id),
                                 ({"fair_chance": "yes"}, open_id, other_id),
                                 ({"region": "Namur", "hours": "shifts"}, other_id, open_id)):
        async with cell.get(site.portal + "/jobs", params=query) as resp:
            body = await resp.text()
        assert f'href="/jobs/{shown}"' in body and f'href="/jobs/{hidden}"' not in body, query
    async with cell.get(f"{site.portal}/jobs/{open_id}") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert "Depot Noord" in page and 'lang="nl"' in page and "Call 03 123 45 67." in page
    assert 'data-testid="fair-chance"' in page and 'action="/plan/items"' in page
    for path in (f"/jobs/{closed_id}", "/jobs/99999", "/jobs/nope", "/jobs/99999999999999999999", "/jobs/%C2%B2"):
        async with cell.get(site.portal + path) as resp:
            assert resp.status == 404, path
            assert "Closed plumber" not in await resp.text()


@IN_MODULE_LOOP
async def test_education_posts_edits_and_withdraws_with_the_audit_record(site: Platform,
                                                                         cell: aiohttp.ClientSession) -> None:
    today = facility_today(site)
    async with staff_client(site, "127.0.0.4", "jobcoach", ["education"]) as coach:
        async with coach.get(site.portal + "/resources-admin/jobs") as page:
            assert page.status == 200
            token = csrf_from(await page.text())
        form = {**offer(title="Gardener at the park", closes_on=(today - timedelta(days=2)).isoformat(),
                        employer=""), "csrf_token": token}
        async with coach.post(site.portal + "/resources-admin/jobs", data=form) as resp:
            assert resp.status == 400
            body = await resp.text()
        assert 'id="employer-error"' in body and 'id="closes_on-error"' in body
        assert 'value="Gardener at the park"' in body, "what was typed stays"
        form.update(employer="City parks", closes_on=(today + timedelta(days=5)).isoformat())
        async with coach.post(site.portal + "/resources-admin/jobs", data=form, allow_redirects=False) as resp:
            assert resp.status == 303
            where = resp.headers["Location"]
        assert where.startswith("/resources-admin/jobs?done=posted#job-")
        job_id = int(where.rpartition("-")[2])
        async with cell.get(f"{site.portal}/jobs/{job_id}") as resp:
            assert resp.status == 200 and "City parks" in await resp.text()
        async with coach.post(f"{site.portal}/resources-admin/jobs/{job_id}",
                              data={**form, "title": "Park gardener"}) as resp:
            assert resp.status == 200 and resp.url.query.get("done") == "changed"
        async with coach.post(f"{site.portal}/resources-admin/jobs/{job_id}/withdraw",
                              data={"csrf_token": token}) as resp:
            assert resp.status == 200 and resp.url.query.get("done") == "withdrawn"
            assert f'data-job="{job_id}" data-state="withdrawn"' in await resp.text()
        async with coach.post(f"{site.portal}/resources-admin/jobs/{job_id}/withdraw",
                              data={"csrf_token": token}) as resp:
            assert resp.status == 409
        async with coach.post(f"{site.portal}/resources-admin/jobs/{job_id}", data=form) as resp:
            assert resp.status == 409
        async with coach.get(f"{site.portal}/resources-admin/jobs/{job_id}") as resp:
            assert resp.status == 200 and 'data-state="withdrawn"' in await resp.text()
    async with cell.get(f"{site.portal}/jobs/{job_id}") as resp:
        assert resp.status == 404, "a withdrawn offer is gone for inmates"
    reasons = {r.tag: r.reason for r in site.records(actor="jobcoach") if r.tag.startswith("resources:job:")}
    assert reasons["resources:job:posted"].startswith(f"job {job_id}: Gardener at the park at City parks (Antwerp)")
    assert reasons["resources:job:changed"] == f"job {job_id}: title: 'Gardener at the park' -> 'Park gardener'"
    assert reasons["resources:job:withdrawn"] == f"job {job_id}: Park gardener at City parks withdrawn"


@IN_MODULE_LOOP
async def test_staff_see_a_closed_offer_marked_closed(site: Platform) -> None:
    closed_on = (facility_today(site) - timedelta(days=3)).isoformat()
    closed_id = await seed(site, title="Closed glazier", closes_on=closed_on)
    async with staff_client(site, "127.0.0.5", "jobcoach2", ["education"]) as coach:
        async with coach.get(site.portal + "/resources-admin/jobs") as resp:
            assert f'data-job="{closed_id}" data-state="closed"' in await resp.text()
        async with coach.get(f"{site.portal}/resources-admin/jobs/{closed_id}") as resp:
            body = await resp.text()
            assert resp.status == 200 and 'data-state="closed"' in body
            token = csrf_from(body)
        async with coach.post(f"{site.portal}/resources-admin/jobs/{closed_id}", data={
                **offer(title="Closed glazier", description="Fixed typo.", closes_on=closed_on),
                "csrf_token": token}) as resp:
            assert resp.status == 200, "its text can be fixed without moving its closing day"
