"""The directory of services for release through the running platform (portal and gateway, over HTTP): inmates
search it in their own language (a Dutch reader's "woningen" finds "woning") and filter it, open an entry in plain
words (hours, addresses, languages, how fresh it is), each opening on the audit record; education staff edit an
entry without losing what they typed, mark it checked, find the stale ones and the broken links, import a feed by
upload; an entry's website opens to inmates only after security staff approve the proposal, and then an inmate's
curl through the gateway reaches it.

One platform on SQLite (with a loopback origin for the entries' websites) serves the module; the last test runs
search, filters, the hidden inactive entries and an upload on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import re
import shutil
import time
import tracemalloc
import zipfile
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme
from aiohttp import web
from babel.dates import format_timedelta
from sqlalchemy import select

from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.resources import directory, entries, hsds, links
from gatehouse.resources.models import PlanItem, Service
from portal import i18n
from portal.resources import staff
from portal.resources.staff import SHOWN_PROBLEMS
from portal.resources.words import Hours, checked_words, opening_hours
from tests.conftest import Origin, platform_settings, serve_origin
from tests.helpers import CELL, CLASSROOM, INMATE, PIN, Platform, curl, staff_client

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning")]
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
DATA = Path(__file__).parent / "data"
FEED = DATA / "hsds_portal" / "directory.json"
SAMPLE = DATA / "hsds" / "sample"
DUTCH = "N300"
SITE = "https://other.test/apply"


def today(site: Platform) -> Any:
    return site.up.kernel.policies.snapshot.local(utcnow()).date()


def seed(site: Platform) -> None:
    """The module's feed, one entry checked three weeks ago, and a Dutch-reading inmate."""
    with site.up.kernel.factory.begin() as session:
        directory.import_directory(session, hsds.read(FEED), now=utcnow())
        entries.mark_checked(session, "svc-woning", by="teacher", today=today(site) - timedelta(days=21), now=utcnow())
        add_inmate(session, ensure_facility(session, site.settings), number=DUTCH, name="Piet Janssens",
                   language="nl", pin=PIN)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory, test_ca: trustme.CA) -> AsyncIterator[Platform]:
    folder = tmp_path_factory.mktemp("resources")
    origin = Origin()

    async def handler(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        origin.seen.append((request.method, host, request.path_qs))
        if request.path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        return web.Response(text=f"origin {host} {request.method} {request.path_qs}")

    async with serve_origin(origin, handler, test_ca, folder):
        settings = platform_settings(folder / "data", origin).replace(login__attempts_per_address=1000)
        async with running(settings) as up:
            platform = Platform(up, origin, settings)
            await asyncio.to_thread(seed, platform)
            yield platform


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def english(site: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    """Jan Peeters (A100, English) at the cell terminal, where the gateway knows him too."""
    async with site.client(CELL) as client:
        assert (await site.login(client)).url.path == "/home"
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dutch(site: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    async with site.client(CLASSROOM) as client:
        assert (await site.login(client, DUTCH, PIN)).url.path == "/home"
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def teacher(site: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    async with staff_client(site, "127.0.0.3", "eva", ["education"]) as client:
        yield client


async def page(client: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, str]:
    async with client.get(url, params=params, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def post(client: aiohttp.ClientSession, site: Platform, path: str, data: Any = None,
               **fields: str) -> tuple[int, str, str]:
    """A form sent with the browser's CSRF token; (status, Location, page)."""
    token = next(c.value for c in client.cookie_jar if c.key == "gh_csrf")
    if data is None:
        data = {"csrf_token": token, **fields}
    else:
        data.add_field("csrf_token", token)
    async with client.post(site.portal + path, data=data, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


def results(body: str) -> list[str]:
    """The entries a search page lists, in order."""
    if 'data-testid="results"' not in body:
        return []
    return re.findall(r'<li class="card" data-service="([^"]+)"', body.split('data-testid="results"')[1])


def text_of(body: str) -> str:
    """The page as a person reads it: tags gone, references resolved, spaces collapsed."""
    spaced = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())
    return re.sub(r" ([,;)])", r"\1", spaced)  # a tag's edge is not a space before a comma


def stored(site: Platform, service_id: str) -> Service:
    with site.up.kernel.factory() as session:
        service = session.get(Service, service_id)
        assert service is not None
        session.expunge(service)
        return service


def zipped(folder: Path, *, inside: str = "") -> bytes:
    """A zip of the package in `folder` (its files at the top, or in the folder `inside`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, f"{inside}/{file.name}" if inside else file.name)
    return buffer.getvalue()


def upload(content: bytes, filename: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("feed", content, filename=filename, content_type="application/octet-stream")
    return form


@pytest.mark.parametrize(("language", "schedule", "said"), [
    ("en", {"freq": "WEEKLY", "byday": "MO,TU,WE,TH,FR", "opens_at": "08:30:00", "closes_at": "16:30:00"},
     "Monday – Friday, 08:30 – 16:30"),
    ("en", {"freq": "WEEKLY", "byday": "MO,TU,TH", "opens_at": "09:00", "closes_at": "12:30"},
     "Monday, Tuesday, and Thursday, 09:00 – 12:30"),
    ("en", {"freq": "WEEKLY", "byday": "SA,SU", "opens_at": "10:00"}, "Saturday and Sunday, from 10:00"),
    ("en", {"freq": "WEEKLY", "interval": 2, "byday": "FR", "closes_at": "15:00"},
     "Friday (every 2 weeks), until 15:00"),
    ("en", {"freq": "MONTHLY", "byday": "1TU,3TU", "opens_at": "10:00", "closes_at": "12:00"},
     "The first Tuesday and the third Tuesday of the month, 10:00 – 12:00"),
    ("en", {"freq": "MONTHLY", "byday": "-1FR"}, "The last Friday of the month"),
    ("en", {"freq": "MONTHLY", "bymonthday": "1", "opens_at": "14:00", "closes_at": "16:00"},
     "Day 1 of the month, 14:00 – 16:00"),
    ("en", {"freq": "MONTHLY", "bymonthday": "1,15,-1"}, "Days 1 and 15 of the month and the last day of the month"),
    ("en", {"description": "By appointment only"}, "By appointment only"),
    ("nl", {"freq": "WEEKLY", "byday": "MO,TU,WE,TH,FR", "opens_at": "09:00", "closes_at": "17:00"},
     "Maandag – vrijdag, 09:00 – 17:00"),
    ("fr", {"freq": "WEEKLY", "byday": "TU,TH", "opens_at": "09:00:00", "closes_at": "12:00:00"},
     "Mardi et jeudi, 09:00 – 12:00"),
    ("de", {"freq": "WEEKLY", "byday": "MO,WE,FR", "opens_at": "10:00", "closes_at": "17:00"},
     "Montag, Mittwoch und Freitag, 10:00 – 17:00"),
])
def test_schedules_are_read_into_days_and_hours(language: str, schedule: dict[str, Any], said: str) -> None:
    i18n.activate(language)
    try:
        (hours,) = opening_hours([schedule])
    finally:
        i18n.activate("en")
    assert hours.when == said


def test_a_schedule_keeps_its_description_and_its_dates() -> None:
    i18n.activate("en")
    (hours,) = opening_hours([{"freq": "WEEKLY", "byday": "WE", "opens_at": "13:30", "closes_at": "16:00",
                                     "valid_from": "2025-01-01", "valid_to": "2025-12-31",
                                     "description": "Afternoons in 2025"}])
    assert hours == Hours("Wednesday, 13:30 – 16:00", "Afternoons in 2025; from Jan 1, 2025 to Dec 31, 2025")


@pytest.mark.parametrize(("language", "days", "said"), [
    ("en", None, "never checked"), ("en", 0, "checked today"), ("en", 1, "checked 1 day ago"),
    ("en", 21, "checked 3 weeks ago"), ("en", 400, "checked 1 year ago"),
    ("nl", 21, "3 weken geleden"), ("fr", 21, "il y a 3 semaines"), ("de", 21, "vor 3 Wochen"),
])
def test_how_fresh_an_entry_is(language: str, days: int | None, said: str) -> None:
    day = date(2026, 6, 1)
    i18n.activate(language)
    try:
        words = checked_words(None if days is None else day - timedelta(days=days), day)
    finally:
        i18n.activate("en")
    assert said in words


@IN_MODULE_LOOP
async def test_the_directory_asks_who_is_there(site: Platform) -> None:
    async with site.client("127.0.0.9") as stranger:
        for path in ("/resources", "/resources/service/svc-woning"):
            status, _ = await page(stranger, site.portal + path)
            assert status == 302, path
        async with stranger.get(site.portal + "/resources-admin", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/staff/login"


@IN_MODULE_LOOP
async def test_a_search_is_stemmed_in_the_readers_language(
        site: Platform, english: aiohttp.ClientSession, dutch: aiohttp.ClientSession) -> None:
    status, body = await page(dutch, site.portal + "/resources", q="woningen")
    assert status == 200
    assert results(body) == ["svc-woning"], "the Dutch stem of woningen is woning; the inactive entry stays hidden"
    assert 'lang="nl"' in body and "Woonhulp na vrijlating" in body
    _, body = await page(english, site.portal + "/resources", q="woningen")
    assert results(body) == [], "English rules do not make woningen woning"
    assert "Nothing matches" in body
    _, body = await page(english, site.portal + "/resources", q="registered employers")
    assert results(body) == ["svc-jobs"], "registered and registering share a stem"
    _, body = await page(english, site.portal + "/resources")
    assert set(results(body)) == {"svc-woning", "svc-jobs", "svc-dettes", "svc-nooit"}


@IN_MODULE_LOOP
@pytest.mark.parametrize(("filters", "found"), [
    ({"category": "housing"}, ["svc-woning"]),
    ({"category": "debt"}, ["svc-dettes"]),
    ({"place": "gent"}, ["svc-woning"]),
    ({"place": "Oost-Vlaanderen"}, ["svc-woning"]),
    ({"place": "Brussel"}, ["svc-jobs"]),
    ({"language": "ar"}, ["svc-woning"]),
    ({"language": "fr"}, ["svc-dettes", "svc-jobs"]),
    ({"conviction": "yes"}, ["svc-jobs", "svc-woning"]),
    ({"conviction": "yes", "language": "en"}, ["svc-jobs"]),
    ({"category": "housing", "place": "namur"}, []),
    ({"q": "coaching", "conviction": "yes"}, ["svc-jobs"]),
])
async def test_filters_narrow_the_list(site: Platform, english: aiohttp.ClientSession, filters: dict[str, str],
                                       found: list[str]) -> None:
    status, body = await page(english, site.portal + "/resources", **filters)
    assert status == 200
    assert sorted(results(body)) == sorted(found)
    for name, value in filters.items():
        if name in ("category", "language"):
            assert f'<option value="{value}" selected>' in body, "the choice stays chosen"


@IN_MODULE_LOOP
async def test_a_page_number_that_is_not_one_shows_the_first_page(
        site: Platform, english: aiohttp.ClientSession, teacher: aiohttp.ClientSession) -> None:
    status, first = await page(english, site.portal + "/resources")
    for given in ("\u00b2", "9" * 5000, "-20", "1.5"):
        status, body = await page(english, site.portal + "/resources", **{"from": given})
        assert status == 200 and results(body) == results(first), given[:10]
        status, body = await page(teacher, site.portal + "/resources-admin", done="imported", added=given)
        assert status == 200 and 'data-testid="imported"' in body, given[:10]


@IN_MODULE_LOOP
async def test_the_filters_offer_what_the_directory_has(site: Platform, english: aiohttp.ClientSession) -> None:
    _, body = await page(english, site.portal + "/resources")
    assert '<option value="housing">Housing</option>' in body
    assert '<option value="id-documents">ID documents</option>' in body
    assert '<option value="ar">Arabic</option>' in body
    assert '<option value="gent">Gent</option>' in body
    assert "Only services open to people with a conviction" in body
    assert "Woningbureau" not in body


@IN_MODULE_LOOP
async def test_an_inactive_entry_is_hidden_from_inmates_but_shown_to_staff(
        site: Platform, dutch: aiohttp.ClientSession, teacher: aiohttp.ClientSession) -> None:
    status, body = await page(dutch, site.portal + "/resources/service/svc-gesloten")
    assert status == 404 and "sociale woning" not in body
    status, body = await page(teacher, site.portal + "/resources/service/svc-gesloten")
    assert status == 200 and 'data-testid="inactive"' in body
    assert "Save to my plan" not in body, "staff have no plan"
    status, body = await page(teacher, site.portal + "/resources-admin")
    assert 'data-service="svc-gesloten"' in body


@IN_MODULE_LOOP
async def test_an_entry_in_plain_words(site: Platform, english: aiohttp.ClientSession) -> None:
    status, body = await page(english, site.portal + "/resources/service/svc-woning")
    assert status == 200
    words = text_of(body)
    for expected in ("Woonhulp na vrijlating", "(Housing help after release)", "Woonwinkel Gent",
                     "Hulp bij het zoeken naar een sociale woning", "Wie na de detentie in Gent gaat wonen.",
                     "From 18 years old", "Identiteitskaart of vrijlatingsattest", "Gratis voor wie vrijkomt.",
                     "Waarborglening · €0.00 · renteloos", "Phone: +32 9 555 10 10 (Afspraken)",
                     "Text message: +32 470 55 10 10", "Monday – Friday, 09:00 – 12:30",
                     "The first Tuesday of the month, 14:00 – 16:00 (Zitdag zonder afspraak)",
                     "Voorbeeldstraat 12 9000 Gent Oost-Vlaanderen, Vlaanderen Belgium", "Dutch, Arabic",
                     "Oost-Vlaanderen – De stad Gent en omliggende gemeenten", "checked 3 weeks ago", "Housing"):
        assert expected in words, expected
    website = body.split('data-testid="website"')[1].split("</div>")[0]
    assert 'data-state="closed"' in website and SITE in website
    assert f'href="{SITE}"' not in website, "a closed site is an address to note, not a link"
    assert "not open at the facility's computers" in website
    assert '<a href="/ask?url=https%3A//other.test/apply" data-testid="ask">' in body, "an inmate may ask for it"
    form = body.split('data-testid="save"')[1].split("</form>")[0]
    assert 'action="/plan/items"' in body.split('data-testid="save"')[0][-80:]
    assert 'name="kind" value="service"' in form and 'name="ref" value="svc-woning"' in form
    assert 'name="next" value="/resources/service/svc-woning?done=saved"' in form and 'name="csrf_token"' in form

    _, body = await page(english, site.portal + "/resources/service/svc-dettes")
    words = text_of(body)
    assert "Days 1 and 15 of the month, 14:00 – 16:00" in words
    assert "Rue des Essais 7 5000 Namur Namur, Wallonie Belgium" in words
    _, body = await page(english, site.portal + "/resources/service/svc-nooit")
    assert "never checked" in text_of(body)
    _, body = await page(english, site.portal + "/resources/service/svc-jobs")
    words = text_of(body)
    assert "Monday, Wednesday, and Thursday, 10:00 – 17:00" in words and "Ages 18 to 67" in words
    assert "Phone: +32 2 555 20 20, extension 214" in words
    website = body.split('data-testid="website"')[1].split("</div>")[0]
    assert 'data-state="open"' in website and 'href="https://allowed.test/jobs"' in website, \
        "a policy file's rule opens it, though no curated rule names it"
    status, _ = await page(english, site.portal + "/resources/service/no-such-entry")
    assert status == 404


@IN_MODULE_LOOP
async def test_an_entry_in_dutch(site: Platform, dutch: aiohttp.ClientSession) -> None:
    _, body = await page(dutch, site.portal + "/resources/service/svc-woning")
    words = text_of(body)
    ago = format_timedelta(timedelta(days=-21), granularity="day", add_direction=True, locale="nl")
    assert ago == "3 weken geleden" and ago in words
    assert "Maandag – vrijdag, 09:00 – 12:30" in words
    assert "Nederlands, Arabisch" in words and "België" in words
    _, body = await page(dutch, site.portal + "/resources", q="woning")
    assert ago in text_of(body.split('data-testid="results"')[1])


@IN_MODULE_LOOP
async def test_each_entry_opened_is_on_the_record(site: Platform, dutch: aiohttp.ClientSession,
                                                  teacher: aiohttp.ClientSession) -> None:
    for client in (dutch, teacher):
        status, _ = await page(client, site.portal + "/resources/service/svc-jobs")
        assert status == 200
    viewed = site.records(tag="resources:service:viewed", path="/resources/service/svc-jobs")
    assert [(r.actor, r.terminal) for r in viewed][-2:] == [(DUTCH, "class-1"), ("eva", "")]
    assert viewed[-1].reason == "svc-jobs: Job coaching for people leaving prison"
    await page(dutch, site.portal + "/resources/service/svc-gesloten")
    assert not site.records(tag="resources:service:viewed", actor=DUTCH, path="/resources/service/svc-gesloten")


@IN_MODULE_LOOP
async def test_save_to_my_plan_comes_back_to_the_entry(site: Platform, dutch: aiohttp.ClientSession) -> None:
    status, location, _ = await post(dutch, site, "/plan/items", kind="service", ref="svc-jobs",
                                     next="/resources/service/svc-jobs?done=saved")
    assert (status, location) == (303, "/resources/service/svc-jobs?done=saved")
    _, body = await page(dutch, site.portal + location)
    assert '<p class="done" role="status">' in body and 'href="/plan"' in body
    with site.up.kernel.factory() as session:
        saved = session.scalars(select(PlanItem.ref).where(PlanItem.kind == "service")).all()
    assert list(saved) == ["svc-jobs"]


@IN_MODULE_LOOP
async def test_inmates_cannot_open_the_staff_screens(site: Platform, english: aiohttp.ClientSession) -> None:
    for path in ("/resources-admin", "/resources-admin/service/svc-jobs"):
        status, _ = await page(english, site.portal + path)
        assert status == 403, path
    status, _, _ = await post(english, site, "/resources-admin/service/svc-jobs/check")
    assert status == 403
    assert stored(site, "svc-jobs").assurer_email != INMATE


@IN_MODULE_LOOP
async def test_a_bad_edit_keeps_what_was_typed_and_a_good_one_is_recorded(
        site: Platform, teacher: aiohttp.ClientSession) -> None:
    before = stored(site, "svc-dettes")
    fields = {"name": "", "alternate_name": "Schuldbemiddeling", "description": "Een nieuwe tekst.\r\nTwee regels.",
              "url": "ftp://files.example/x", "email": "", "status": "active", "application_process": "",
              "fees_description": "Gratuit", "eligibility_description": "Toute personne."}
    status, _, body = await post(teacher, site, "/resources-admin/service/svc-dettes", **fields)
    assert status == 400
    assert 'id="name-error"' in body and "An entry needs a name." in body
    assert 'id="url-error"' in body and "https://" in body.split('id="url-error"')[1][:200]
    assert 'id="description-error"' not in body
    assert 'value="Schuldbemiddeling"' in body and 'value="ftp://files.example/x"' in body
    assert ">Een nieuwe tekst.\nTwee regels.</textarea>" in body and ">Toute personne.</textarea>" in body
    assert stored(site, "svc-dettes").description == before.description, "nothing saved"

    fields |= {"name": "Médiation de dettes Namur", "url": before.url}
    status, location, _ = await post(teacher, site, "/resources-admin/service/svc-dettes", **fields)
    assert (status, location) == (303, "/resources-admin/service/svc-dettes?done=saved")
    after = stored(site, "svc-dettes")
    assert (after.name, after.description, after.updated_by) == (
        "Médiation de dettes Namur", "Een nieuwe tekst.\nTwee regels.", "eva")
    changed = site.records(tag="resources:service:changed", actor="eva")
    reason = changed[-1].reason
    assert reason.startswith("svc-dettes: before {")
    said_before, said_after = reason.split("; after ")
    assert json.loads(said_before.split("before ", 1)[1])["name"] == "Médiation de dettes"
    assert json.loads(said_after)["name"] == "Médiation de dettes Namur"
    _, body = await page(teacher, site.portal + "/resources", q="regels")
    assert results(body) == ["svc-dettes"], "the edit is searchable"
    status, location, _ = await post(teacher, site, "/resources-admin/service/svc-dettes", **fields)
    assert location.endswith("done=unchanged") and len(site.records(tag="resources:service:changed")) == len(changed)


@IN_MODULE_LOOP
async def test_stale_entries_are_listed_until_marked_checked(site: Platform, teacher: aiohttp.ClientSession) -> None:
    status, body = await page(teacher, site.portal + "/resources-admin", view="stale")
    assert status == 200
    stale = re.findall(r'<tr data-service="([^"]+)"', body)
    assert stale[0] == "svc-nooit", "never checked comes first"
    assert "svc-jobs" in stale and "svc-woning" not in stale and "svc-gesloten" not in stale
    status, location, _ = await post(teacher, site, "/resources-admin/service/svc-nooit/check",
                                     next="/resources-admin?view=stale")
    assert (status, location) == (303, "/resources-admin?view=stale&done=checked")
    _, body = await page(teacher, site.portal + "/resources-admin", view="stale", done="checked")
    assert 'data-service="svc-nooit"' not in body and "Marked as checked today." in body
    row = stored(site, "svc-nooit")
    assert (row.assured_date, row.assurer_email) == (today(site), "eva")
    checked = site.records(tag="resources:service:checked", actor="eva")
    assert checked[-1].reason == f"svc-nooit: Identity card after release; checked on {today(site)}"
    _, body = await page(teacher, site.portal + "/resources-admin/service/svc-nooit")
    assert "checked today" in body


@IN_MODULE_LOOP
async def test_dead_and_moved_websites_are_listed_with_what_was_found(
        site: Platform, teacher: aiohttp.ClientSession) -> None:
    await links.check_links(site.up.kernel, utcnow())
    status, body = await page(teacher, site.portal + "/resources-admin", view="links")
    assert status == 200
    rows = dict(re.findall(r'<tr data-service="([^"]+)" data-link="([^"]+)"', body))
    assert rows.get("svc-nooit") == "dead"
    assert "svc-jobs" not in rows, "a site that answers is not listed"
    assert rows.get("svc-dettes") == "redirected"
    dead = body.split('data-service="svc-nooit"')[1].split("</tr>")[0]
    assert "does not answer: " in html.unescape(dead)
    _, body = await page(teacher, site.portal + "/resources-admin/service/svc-nooit")
    assert 'data-testid="link" data-state="dead"' in body


@IN_MODULE_LOOP
async def test_an_upload_with_problems_imports_nothing_and_names_each(
        site: Platform, teacher: aiohttp.ClientSession, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(SAMPLE, broken)
    lines = (broken / "service.csv").read_text(encoding="utf-8-sig").split("\n")
    row = next(n for n, line in enumerate(lines) if line.startswith("svc-mediation-dettes,"))
    lines[row] = lines[row].replace(",18,,", ",eighteen,,")
    (broken / "service.csv").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(hsds.HsdsError) as expected:
        hsds.read(broken)
    said = [str(p) for p in expected.value.problems]
    assert any(p.startswith(f"service.csv:{row + 1}:") for p in said), said

    status, _, body = await post(teacher, site, "/resources-admin/import", upload(zipped(broken), "feed.zip"))
    assert status == 400
    shown = [html.unescape(p) for p in re.findall(r"<li><code>([^<]+)</code></li>", body)]
    assert shown == said and "Nothing was imported: feed.zip has problems" in html.unescape(body)

    bad_json = json.loads(FEED.read_text(encoding="utf-8"))
    bad_json[1]["minimum_age"] = "adult"
    status, _, body = await post(teacher, site, "/resources-admin/import",
                                 upload(json.dumps(bad_json, indent=2).encode(), "directory.json"))
    assert status == 400
    assert re.search(r"<code>directory\.json:\d+: ", body), body[:2000]

    many = [{**bad_json[1], "id": f"svc-bad-{n}"} for n in range(SHOWN_PROBLEMS + 7)]
    (tmp_path / "many.json").write_text(json.dumps(many), encoding="utf-8")
    with pytest.raises(hsds.HsdsError) as expected:
        hsds.read(tmp_path / "many.json")
    status, _, body = await post(teacher, site, "/resources-admin/import",
                                 upload(json.dumps(many).encode(), "many.json"))
    assert status == 400 and body.count("<li><code>many.json:") == SHOWN_PROBLEMS
    more = body.split('data-testid="more-problems">')[1].split("</p>")[0]
    assert f"And {len(expected.value.problems) - SHOWN_PROBLEMS} more problems" in more
    assert "gatehouse resources import" in more

    status, _, body = await post(teacher, site, "/resources-admin/import", upload(b"not a zip", "feed.zip"))
    assert status == 400 and "feed.zip:0: not a zip file" in body
    status, _, body = await post(teacher, site, "/resources-admin/import", upload(b"x", "feed.csv"))
    assert status == 400 and "feed.csv:0: not a .zip" in body
    status, _, body = await post(teacher, site, "/resources-admin/import", aiohttp.FormData({"x": "1"}))
    assert status == 400 and 'id="feed-error"' in body
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../datapackage.json", "{}")
    status, _, body = await post(teacher, site, "/resources-admin/import", upload(evil.getvalue(), "evil.zip"))
    assert status == 400 and "../datapackage.json:0: a path outside the package" in html.unescape(body)

    with site.up.kernel.factory() as session:
        assert session.get(Service, "svc-logement-accueil") is None
    assert not site.records(tag="resources:directory:imported")


def lying_zip(name: str, inflated: int, declared: int) -> bytes:
    """A zip whose member inflates to `inflated` bytes of zeros while its headers declare `declared`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(name, "w") as member:
        for _ in range(inflated // 1_048_576):
            member.write(bytes(1_048_576))
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers
        at = data.index(signature)
        data[at + offset:at + offset + 4] = declared.to_bytes(4, "little")
    return bytes(data)


def test_an_upload_that_inflates_past_what_it_declares_is_refused_without_inflating_it(tmp_path: Path) -> None:
    bomb = lying_zip("service.csv", inflated=200 * 1_048_576, declared=10)
    assert len(bomb) < 1_048_576
    tracemalloc.start()
    try:
        where, problems = staff.unpack("feed.zip", bomb, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert where is None and problems == ["service.csv:0: cannot be unpacked (Bad CRC-32 for file 'service.csv'); "
                                          "zip the package again"]
    assert peak < 16 * 1_048_576, f"{peak} bytes held while unpacking a 1 MB upload"


def test_an_upload_that_the_reader_could_not_hold_is_refused(tmp_path: Path) -> None:
    """A small zip of many short rows, or of one long line, unpacks to what would take gigabytes to read."""
    rows = io.BytesIO()
    with zipfile.ZipFile(rows, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("datapackage.json", "{}")
        archive.writestr("service.csv", "id,organization_id,name,status\n" + "s,o,n,active\n" * staff.MAX_LINES)
    assert len(rows.getvalue()) < 100_000
    assert staff.unpack("rows.zip", rows.getvalue(), tmp_path / "rows") == (None, [
        f"rows.zip:0: more than {staff.MAX_LINES} lines unpacked; import a feed that large with the command "
        "gatehouse resources import"])
    long = io.BytesIO()
    with zipfile.ZipFile(long, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("feed.json", '[{"id": "' + "s" * 20 * 1_048_576 + '"}]')
    where, problems = staff.unpack("long.zip", long.getvalue(), tmp_path / "long")
    assert where is None and problems[0].startswith("long.zip:0: more than 200 files or 16777216 bytes unpacked")
    fine = io.BytesIO()
    with zipfile.ZipFile(fine, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("datapackage.json", "{}")
        archive.writestr("service.csv", "id,organization_id,name,status\n" + "s,o,n,active\n" * 1000)
    assert staff.unpack("fine.zip", fine.getvalue(), tmp_path / "fine") == (tmp_path / "fine", [])


def test_an_encrypted_or_strange_member_is_a_problem_not_an_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("datapackage.json", "{}")
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the general purpose flags
        at = data.index(signature)
        data[at + offset] |= 1  # "encrypted"
    where, problems = staff.unpack("feed.zip", bytes(data), tmp_path)
    assert (where, problems) == (None, ["datapackage.json:0: encrypted; zip the package without a password"])


@IN_MODULE_LOOP
async def test_an_uploaded_package_is_imported_and_counted(site: Platform, teacher: aiohttp.ClientSession) -> None:
    expected = hsds.read(SAMPLE)
    status, location, _ = await post(teacher, site, "/resources-admin/import",
                                     upload(zipped(SAMPLE, inside="sample"), "sample.zip"))
    assert status == 303
    assert location == (f"/resources-admin?done=imported&added={len(expected.services)}&changed=0&same=0"
                        f"&orgs={len(expected.organizations)}")
    _, body = await page(teacher, site.portal + location)
    assert f"Imported: {len(expected.services)} added, 0 changed, 0 unchanged" in body
    with site.up.kernel.factory() as session:
        assert session.get(Service, expected.services[0].id) is not None
    imported = site.records(tag="resources:directory:imported", actor="eva")
    assert len(imported) == 1 and imported[0].reason.endswith("; from sample.zip")
    status, location, _ = await post(teacher, site, "/resources-admin/import",
                                     upload(FEED.read_bytes(), "directory.json"))
    assert status == 303 and "added=0" in location, "the module's own feed again: nothing new"


async def until_status(site: Platform, url: str, status: int, within: float) -> None:
    started = time.monotonic()
    while (got := await curl(site, url)).status != status:
        assert time.monotonic() - started < within, f"{url}: {got.status} {got.body[:200]}"
        await asyncio.sleep(0.1)


@IN_MODULE_LOOP
async def test_a_website_opens_to_inmates_only_when_security_approves(
        site: Platform, english: aiohttp.ClientSession, teacher: aiohttp.ClientSession) -> None:
    assert (await curl(site, SITE)).status == 403
    status, _, body = await post(teacher, site, "/resources-admin/service/svc-woning/website", mode="forms",
                                 form_paths="")
    assert status == 400 and 'id="form_paths-error"' in body
    assert 'value="forms" checked' in body, "the choice is kept"
    status, _, body = await post(teacher, site, "/resources-admin/service/svc-woning/website", mode="forms",
                                 form_paths="apply")
    assert status == 400 and "starts with /" in body and ">apply</textarea>" in body

    status, location, _ = await post(teacher, site, "/resources-admin/service/svc-woning/website", mode="read")
    assert (status, location) == (303, "/resources-admin/service/svc-woning?done=proposed")
    _, body = await page(teacher, site.portal + "/resources-admin/service/svc-woning")
    waiting = body.split('data-testid="waiting"')[1].split("</div>")[0]
    assert "Waiting for approval by security staff." in waiting
    number = int(re.search(r'href="/curation/proposals/(\d+)"', waiting).group(1))  # type: ignore[union-attr]
    _, body = await page(english, site.portal + "/resources/service/svc-woning")
    assert 'data-state="waiting"' in body and f'<a href="{SITE}"' not in body
    assert (await curl(site, SITE)).status == 403, "nothing opens before approval"

    status, _, body = await post(teacher, site, f"/curation/proposals/{number}/approve")
    assert status == 403, "the proposer never approves"
    async with staff_client(site, "127.0.0.4", "sam", ["security"]) as security:
        status, location, _ = await post(security, site, f"/curation/proposals/{number}/approve")
        assert (status, location) == (303, f"/curation/proposals/{number}?done=approved")
    await until_status(site, SITE, 200, 5)
    assert ("GET", "other.test", "/apply") in site.origin.seen
    _, body = await page(english, site.portal + "/resources/service/svc-woning")
    website = body.split('data-testid="website"')[1].split("</div>")[0]
    assert 'data-state="open"' in website and f'<a href="{SITE}">{SITE}</a>' in website
    _, body = await page(teacher, site.portal + "/resources-admin/service/svc-woning")
    assert 'data-testid="website" data-state="open"' in body
    assert (await curl(site, SITE, method="POST", data="x=1")).status == 403, "reading only"

    proposed = site.records(tag="resources:website:proposed", actor="eva")
    assert proposed[-1].reason == f"svc-woning: read; proposals {number}" and proposed[-1].host == "other.test"
    made = site.records(tag="curation:proposal:made", actor="eva")
    assert any(r.reason.startswith(f"proposal {number} (add site-other-test-{number}): ") for r in made)
    assert site.records(tag="curation:proposal:approved", actor="sam")


@pytest.mark.postgres
async def test_on_postgresql_search_filters_and_upload(tmp_path: Path, origin: Origin, postgres_url: str) -> None:
    settings = platform_settings(tmp_path / "data", origin, postgres_url).replace(login__attempts_per_address=1000)
    async with running(settings) as up:
        platform = Platform(up, origin, settings)
        with up.kernel.factory.begin() as session:
            add_inmate(session, ensure_facility(session, settings), number=DUTCH, name="Piet Janssens",
                       language="nl", pin=PIN)
        async with staff_client(platform, "127.0.0.3", "eva", ["education"]) as eva:
            status, location, _ = await post(eva, platform, "/resources-admin/import",
                                             upload(FEED.read_bytes(), "directory.json"))
            assert (status, location) == (303, "/resources-admin?done=imported&added=5&changed=0&same=0&orgs=3")
            status, _, body = await post(eva, platform, "/resources-admin/service/svc-jobs", name="",
                                         description="kept")
            assert status == 400 and ">kept</textarea>" in body
        async with platform.client(CLASSROOM) as dutch, platform.client(CELL) as english:
            assert (await platform.login(dutch, DUTCH, PIN)).url.path == "/home"
            assert (await platform.login(english)).url.path == "/home"
            _, body = await page(dutch, platform.portal + "/resources", q="woningen")
            assert results(body) == ["svc-woning"]
            _, body = await page(english, platform.portal + "/resources", q="woningen")
            assert results(body) == []
            _, body = await page(english, platform.portal + "/resources", q="registered employers")
            assert results(body) == ["svc-jobs"]
            _, body = await page(english, platform.portal + "/resources", conviction="yes", place="gent")
            assert results(body) == ["svc-woning"]
            _, body = await page(english, platform.portal + "/resources", language="fr")
            assert sorted(results(body)) == ["svc-dettes", "svc-jobs"]
            status, _ = await page(english, platform.portal + "/resources/service/svc-gesloten")
            assert status == 404
            status, body = await page(english, platform.portal + "/resources/service/svc-woning")
            assert status == 200 and "Monday – Friday, 09:00 – 12:30" in text_of(body)
        with up.kernel.factory() as session:
            assert session.scalar(select(Service.name).where(Service.id == "svc-jobs")) == \
                "Job coaching for people leaving prison"


def test_every_category_of_the_directory_has_words_for_readers() -> None:
    from portal.resources.words import CATEGORIES

    assert set(CATEGORIES) == set(hsds.CATEGORIES)
