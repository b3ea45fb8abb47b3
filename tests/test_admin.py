"""Administration screens over HTTP against a running portal: staff accounts, terminals, units, inmates, roster."""

from __future__ import annotations

import html
import re
from pathlib import Path

import aiohttp
from sqlalchemy import select

from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate, StaffAccount
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.learning import catalog, enrolment
from gatehouse.learning.package import load_package
from tests.helpers import CELL, INMATE, PIN, Platform, csrf_from, staff_client
from tests.test_course_package import GOOD, build

ADMIN_ADDR, OTHER_ADDR = "127.0.0.20", "127.0.0.21"


async def submit(platform: Platform, client: aiohttp.ClientSession, page: str, action: str,
                 data: dict[str, object] | aiohttp.FormData | None = None) -> tuple[int, str, str]:
    """Open `page` for its CSRF token, post the form to `action`; status, final URL and body after redirects."""
    async with client.get(f"{platform.portal}{page}") as resp:
        token = csrf_from(await resp.text())
    if isinstance(data, aiohttp.FormData):
        data.add_field("csrf_token", token)
        body: object = data
    else:
        body = {**(data or {}), "csrf_token": token}
    async with client.post(f"{platform.portal}{action}", data=body) as resp:
        return resp.status, str(resp.url.path_qs), html.unescape(await resp.text())


async def test_admin_adds_staff_accounts_and_bad_input_is_named_by_field(platform: Platform) -> None:
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin:
        status, _, body = await submit(platform, admin, "/admin/staff", "/admin/staff", {
            "username": "x", "display_name": "Someone", "password": "short", "language": "nl"})
        assert status == 400
        assert "A username is 2 to 64" in body and "Choose at least one role." in body
        assert "A password has at least 12 characters." in body
        assert 'value="Someone"' in body  # what was typed is kept

        status, url, body = await submit(platform, admin, "/admin/staff", "/admin/staff", aiohttp.FormData([
            ("username", "Edu.Teacher"), ("display_name", "Eva  Teacher"), ("roles", "education"),
            ("roles", "supervisor"), ("language", "fr"), ("password", "a long enough passphrase")]))
        assert status == 200 and url == "/admin/staff?done=staff-added", body
        assert "The account was added." in body
        row = re.search(r'data-testid="staff-edu.teacher">(.*?)</tr>', body, re.S)
        assert row and "Education, Visit supervisor" in row.group(1) and "Not set up yet" in row.group(1)

        status, _, body = await submit(platform, admin, "/admin/staff", "/admin/staff", {
            "username": "edu.teacher", "roles": "security", "language": "en", "password": "another long password"})
        assert status == 409 and "This username is taken." in body

    with platform.up.kernel.factory() as db:
        account = db.scalar(select(StaffAccount).where(StaffAccount.username == "edu.teacher"))
        assert account is not None and account.role_names == ["education", "supervisor"]
        assert account.display_name == "Eva Teacher" and account.language == "fr"
    added = platform.records(tag="admin:staff:added")
    assert [(r.actor, r.reason) for r in added] == [("ada", "edu.teacher roles=education,supervisor")]


async def test_roles_disable_and_reset_take_effect_and_an_admin_cannot_lock_themselves_out(
        platform: Platform) -> None:
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin, \
            staff_client(platform, OTHER_ADDR, "ed", ["education"]) as edu:
        async with edu.get(f"{platform.portal}/admin/terminals") as resp:
            assert resp.status == 403

        status, _, body = await submit(platform, admin, "/admin/staff/ed", "/admin/staff/ed/roles",
                                       aiohttp.FormData([("roles", "education"), ("roles", "admin")]))
        assert status == 200 and "The roles were changed." in body
        async with edu.get(f"{platform.portal}/admin/terminals") as resp:
            assert resp.status == 200  # roles are read per request: no new login needed

        status, _, body = await submit(platform, admin, "/admin/staff/ada", "/admin/staff/ada/roles",
                                       {"roles": "security"})
        assert status == 409 and "You cannot take away your own administrator role." in body
        status, _, body = await submit(platform, admin, "/admin/staff/ada", "/admin/staff/ada/state",
                                       {"disabled": "yes"})
        assert status == 409 and "You cannot disable your own account." in body

        status, _, body = await submit(platform, admin, "/admin/staff/ed", "/admin/staff/ed/state",
                                       {"disabled": "yes"})
        assert status == 200 and 'data-testid="state">Disabled' in body
        async with edu.get(f"{platform.portal}/staff") as resp:
            assert resp.url.path == "/staff/login"  # the disabled account's session ended

        status, _, body = await submit(platform, admin, "/admin/staff/ed", "/admin/staff/ed/reset-2fa")
        assert status == 200 and 'data-testid="enrolled">Not set up yet' in body

    reasons = [r.reason for r in platform.records(tag="admin:staff:changed")]
    assert reasons == ["ed roles education -> admin,education", "ed disabled"]
    assert [r.reason for r in platform.records(tag="admin:staff:2fa-reset")] == ["ed"]


async def test_terminals_and_units(platform: Platform) -> None:
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin:
        status, _, body = await submit(platform, admin, "/admin/facility", "/admin/facility/units",
                                       {"name": "  Wing   B "})
        assert status == 200 and 'data-testid="unit-Wing B"' in body
        status, _, body = await submit(platform, admin, "/admin/facility", "/admin/facility/units",
                                       {"name": "Wing B"})
        assert status == 409 and "A unit with this name exists already." in body

        status, _, body = await submit(platform, admin, "/admin/terminals", "/admin/terminals", {
            "name": "cell-b-1", "address": "10.0.0.300", "kind": "spaceship", "unit": "Nowhere"})
        assert status == 400
        assert "Enter the terminal's IP address" in body and "Choose what kind of terminal" in body
        assert "Choose one of the units, or none." in body
        status, _, body = await submit(platform, admin, "/admin/terminals", "/admin/terminals", {
            "name": "cell-b-1", "address": CELL, "kind": "cell", "unit": "Wing B"})
        assert status == 409 and "This address belongs to another terminal." in body
        status, _, body = await submit(platform, admin, "/admin/terminals", "/admin/terminals", {
            "name": "cell-b-1", "address": "10.1.2.3", "kind": "cell", "unit": "Wing B"})
        assert status == 200 and 'data-testid="terminal-cell-b-1"' in body

        status, _, body = await submit(platform, admin, "/admin/facility", "/admin/facility/units/Wing%20B/remove")
        assert status == 409 and "Terminals stand in this unit." in body
        status, _, _ = await submit(platform, admin, "/admin/terminals", "/admin/terminals/cell-b-1/remove")
        assert status == 200
        status, _, body = await submit(platform, admin, "/admin/facility", "/admin/facility/units/Wing%20B/remove")
        assert status == 200 and 'data-testid="unit-Wing B"' not in body
    tags = [r.tag for r in platform.records(actor="ada") if r.tag.startswith("admin:")]
    assert tags == ["admin:unit:added", "admin:terminal:added", "admin:terminal:removed", "admin:unit:removed"]


async def test_removing_a_terminal_ends_the_session_on_it(platform: Platform) -> None:
    async with platform.client(CELL) as inmate, staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin:
        await platform.login(inmate)
        async with admin.get(f"{platform.portal}/admin/terminals") as resp:
            row = re.search(r'data-testid="terminal-cell-1">(.*?)</tr>', await resp.text(), re.S)
            assert row and INMATE in row.group(1)  # who uses it now
        status, _, _ = await submit(platform, admin, "/admin/terminals", "/admin/terminals/cell-1/remove")
        assert status == 200
        async with inmate.get(f"{platform.portal}/home") as resp:
            assert resp.url.path == "/login"
    assert platform.records(tag="admin:terminal:removed")[0].reason == "cell-1 sessions-ended=1"


async def test_inmates_add_search_page_edit_and_suspend(platform: Platform) -> None:
    with platform.up.kernel.factory.begin() as db:
        facility = ensure_facility(db, platform.settings)
        for n in range(120):
            add_inmate(db, facility, number=f"P{n:04d}", name=f"Person {n}", language="nl")
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin, platform.client(CELL) as inmate:
        seen: list[str] = []
        url = "/admin/inmates?q=person"
        while url:
            async with admin.get(f"{platform.portal}{url}") as resp:
                body = await resp.text()
            seen += re.findall(r'data-testid="inmate-([^"]+)"', body)
            more = re.search(r'href="(/admin/inmates\?q=person&amp;after=[^"]+)" rel="next"', body)
            url = more.group(1).replace("&amp;", "&") if more else ""
        assert seen == [f"P{n:04d}" for n in range(120)]  # three pages, none repeated or skipped

        status, _, body = await submit(platform, admin, "/admin/inmates", "/admin/inmates", {
            "number": "c300", "name": "Chris Claes", "language": "de", "groups": "wing-b, Learners", "pin": "12"})
        assert status == 400 and "A PIN is 4 to 12 digits." in body and 'value="C300"' in body
        status, _, body = await submit(platform, admin, "/admin/inmates", "/admin/inmates", {
            "number": "c300", "name": "Chris Claes", "language": "de", "groups": "wing-b, Learners", "pin": "97531"})
        assert status == 200 and "The inmate was added." in body
        status, _, body = await submit(platform, admin, "/admin/inmates", "/admin/inmates", {
            "number": "C300", "name": "Again", "language": "de"})
        assert status == 409 and "An inmate with this number exists already." in body

        await platform.login(inmate, "C300", "97531")
        async with inmate.get(f"{platform.portal}/home") as resp:
            assert resp.url.path == "/home"
        status, _, body = await submit(platform, admin, "/admin/inmates/C300", "/admin/inmates/C300", {
            "name": "Chris Claes", "language": "de", "groups": "wing-b", "status": "suspended", "pin": ""})
        assert status == 200 and "The changes were saved." in body
        async with inmate.get(f"{platform.portal}/home") as resp:
            assert resp.url.path == "/login"  # suspension ended the open session
        resp = await platform.login(inmate, "C300", "97531")
        assert resp.status == 403
    with platform.up.kernel.factory() as db:
        row = db.scalar(select(Inmate).where(Inmate.number == "C300"))
        assert row is not None and row.group_names == ["wing-b"] and row.status == "suspended"
    changed = platform.records(tag="admin:inmate:changed")
    assert len(changed) == 1 and changed[0].reason.endswith("active -> Chris Claes|de|wing-b|suspended"
                                                             " sessions-ended=1")


def roster(text: str, name: str = "roster.csv") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("roster", text.encode("utf-8"), filename=name, content_type="text/csv")
    return form


async def test_roster_import_lists_every_bad_row_and_imports_nothing_until_all_are_good(
        platform: Platform) -> None:
    bad = ("offender_id;first_name;last_name;language;pin\n"
           "D1;Dirk;Dekker;nl;1234\n"
           "D2;;;fr;1234\n"
           "D3;Dana;Dumont;xx;1234\n"
           f"{INMATE};Jan;Peeters;nl;12ab\n"
           "D1;Dirk;Again;nl;1234\n")
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin:
        status, _, body = await submit(platform, admin, "/admin/inmates", "/admin/inmates/import", roster(bad))
        assert status == 400 and "4 problems in roster.csv. Nothing was imported" in body
        errors = re.search(r'data-testid="import-errors">(.*?)</div>', body, re.S)
        assert errors is not None
        lines = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", errors.group(1))]
        assert lines == [3, 4, 5, 6]
        assert "Inmate D1 is on line 2 already." in errors.group(1)
        assert "Language xx is not one of en, nl, fr, de." in errors.group(1)
        assert "12ab" not in errors.group(1)  # a PIN, even a wrong one, is never shown back
        with platform.up.kernel.factory() as db:
            assert db.scalar(select(Inmate).where(Inmate.number == "D1")) is None

        good = ("offender_id;first_name;last_name;language;pin\n"
                "D1;Dirk;Dekker;nl;1234\n"
                f"{INMATE};Jan;Peeters-Updated;nl;\n")
        status, _, body = await submit(platform, admin, "/admin/inmates", "/admin/inmates/import", roster(good))
        assert status == 200 and "roster.csv imported. Added: 1. Updated: 1." in body

        await submit(platform, admin, "/admin/inmates", "/language", {"language": "nl", "next": "/admin/inmates"})
        status, _, body = await submit(platform, admin, "/admin/inmates", "/admin/inmates/import", roster(bad))
        assert status == 400 and "Gedetineerde D1 staat al op regel 2." in body
        assert "Taal xx is niet een van en, nl, fr, de." in body
        status, _, body = await submit(platform, admin, "/admin/inmates", "/admin/inmates/import",
                                       roster("\x00\xff", "photo.jpg"))
        assert status == 400 and 'data-testid="import-errors"' in body and "photo.jpg" in body
    with platform.up.kernel.factory() as db:
        names = dict(db.execute(select(Inmate.number, Inmate.name)).all())
    assert names["D1"] == "Dirk Dekker" and names[INMATE] == "Jan Peeters-Updated"
    assert [r.reason for r in platform.records(tag="admin:inmate:imported")] == [
        "roster.csv: 1 added, 1 updated"]


async def test_pin_set_by_an_admin_lets_the_inmate_in(platform: Platform) -> None:
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin, platform.client(CELL) as inmate:
        status, _, _ = await submit(platform, admin, f"/admin/inmates/{INMATE}", f"/admin/inmates/{INMATE}", {
            "name": "Jan Peeters", "language": "en", "groups": "", "status": "active", "pin": "86420"})
        assert status == 200
        assert (await platform.login(inmate, INMATE, PIN)).status == 403
        assert (await platform.login(inmate, INMATE, "86420")).status == 200
    assert platform.records(tag="admin:inmate:pin-set")[0].actor == "ada"


async def test_every_portal_request_is_recorded_with_the_roles_of_who_made_it(platform: Platform) -> None:
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin", "education"]) as admin:
        async with admin.get(f"{platform.portal}/admin/inmates/{INMATE}") as resp:
            assert resp.status == 200
    served = platform.records(tag="portal:request:served", actor="ada")
    reasons = {(r.path, r.status, r.reason) for r in served}
    assert (f"/admin/inmates/{INMATE}", 200, "role=admin,education route=/admin/inmates/{number}") in reasons
    assert ("/staff/enrol", 200, "role=pending route=/staff/enrol") in reasons


async def test_release_closes_the_inmates_courses(platform: Platform, tmp_path: Path) -> None:
    """Released in the admin screen: the course's enrolment ends with the reason, and its grant closes on record."""
    with platform.up.kernel.factory.begin() as db:
        catalog.import_course(db, load_package(build(tmp_path / "pkg", GOOD)), by="teacher", now=utcnow())
        enrolment.enrol(db, course="job-letters", inmate=INMATE, by="teacher", now=utcnow())
    async with staff_client(platform, ADMIN_ADDR, "ada", ["admin"]) as admin:
        status, _, body = await submit(platform, admin, f"/admin/inmates/{INMATE}", f"/admin/inmates/{INMATE}", {
            "name": "Jan Peeters", "language": "en", "groups": "", "status": "released", "pin": ""})
        assert status == 200 and "The changes were saved." in body
    with platform.up.kernel.factory() as db:
        rows = [(r.course.slug, r.status, r.reason) for r in enrolment.enrolments_of(db, INMATE)]
        assert rows == [("job-letters", "ended", "released")]
    closed = platform.records(tag="learning:grant:closed")
    assert [(r.actor, r.reason) for r in closed] == [
        ("ada", f"{INMATE}: the sites of course job-letters close: released")]
