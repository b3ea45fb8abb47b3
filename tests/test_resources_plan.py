"""The release plan: the checklist's rules as tables of cases; the plan's services on SQLite and PostgreSQL (made on
first use, saved services and jobs, steps, notes, the release date, supporters, who may read it, who looked, the
learning record); its PDF read back with pdftotext in two languages; and the inmate's and staff's paths through
the running portal.

The HTTP tests share one platform for the module; each makes its own inmates, offers and entries.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate
from gatehouse.errors import InvalidInput, NotFound
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.kernel import Kernel
from gatehouse.learning import awards, catalog, enrolment, study
from gatehouse.learning.package import load_package
from gatehouse.resources import hsds, jobs, plan, plans
from gatehouse.resources.jobs import JobState
from gatehouse.resources.models import Organization, PlanView, ReleasePlan, Service
from gatehouse.resources.plan import StepState
from gatehouse.resources.plan_pdf import Entry, PlanDocument, Section, plan_pdf
from gatehouse.settings import Settings
from gatehouse.staff import add_staff
from portal import i18n
from portal.resources import plan as portal_plan
from portal.resources.plan import STATE_LABELS, STEP_TEXT
from tests.conftest import Origin
from tests.helpers import CELL, INMATE, OTHER_INMATE, PIN, Platform, csrf_from, populate, staff_client
from tests.test_course_package import build
from tests.test_layering import imported_roots
from tests.test_learning_study import FILES

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning")]
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
NEEDS_PDFTOTEXT = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext is not installed")
TODAY = date(2027, 3, 10)
RELEASE = date(2027, 6, 1)
DETAILS: dict[str, Any] = {
    "phones": [{"id": "p1", "number": "+32 3 555 01 01", "description": "Intake"}, {"id": "p2", "number": ""}],
    "schedules": [{"id": "s1", "freq": "WEEKLY", "byday": "MO,TU,TH", "opens_at": "09:00", "closes_at": "12:30"},
                  {"id": "s2", "byday": "2MO", "description": "Evening intake on the second Monday"}],
    "service_at_locations": [{"id": "sl1", "location": {"id": "l1", "name": "Office", "addresses": [
        {"id": "a1", "address_1": "Rue de l'Église 4", "city": "Liège", "postal_code": "4000", "country": "BE"}]}}],
}


def text(language: str, message: str) -> str:
    return i18n.catalogue(language).gettext(message)


# -- the checklist's rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "done", "today", "release", "state"), [
    ("id-card", True, TODAY, None, StepState.DONE),
    ("id-card", True, TODAY, date(2027, 3, 1), StepState.DONE),
    ("id-card", False, TODAY, None, StepState.NO_DATE),
    ("id-card", False, date(2027, 4, 1), RELEASE, StepState.DUE_SOON),      # due 2 April: 1 day left
    ("id-card", False, date(2027, 4, 2), RELEASE, StepState.DUE_SOON),      # due today
    ("id-card", False, date(2027, 4, 3), RELEASE, StepState.OVERDUE),       # one day late
    ("id-card", False, date(2027, 3, 19), RELEASE, StepState.DUE_SOON),     # 14 days left
    ("id-card", False, date(2027, 3, 18), RELEASE, StepState.LATER),        # 15 days left
    ("transcripts", False, date(2027, 5, 18), RELEASE, StepState.DUE_SOON),
    ("transcripts", False, date(2027, 6, 2), RELEASE, StepState.OVERDUE),   # released yesterday
    ("housing", False, TODAY, RELEASE, StepState.OVERDUE),                  # due 3 March
    ("housing", False, TODAY, date(2028, 1, 1), StepState.LATER),
])
def test_a_steps_state_follows_today_and_the_release_date(key: str, done: bool, today: date, release: date | None,
                                                          state: StepState) -> None:
    assert plan.state_of(plan.step(key), done=done, today=today, release=release) is state


@pytest.mark.parametrize(("key", "due"), [
    ("housing", date(2027, 3, 3)), ("id-card", date(2027, 4, 2)), ("bank-account", date(2027, 4, 17)),
    ("benefits", date(2027, 5, 2)), ("health-insurance", date(2027, 5, 2)), ("transcripts", date(2027, 5, 18)),
])
def test_each_step_is_due_its_days_before_release(key: str, due: date) -> None:
    assert plan.due_on(plan.step(key), RELEASE) == due
    assert plan.due_on(plan.step(key), None) is None


def test_the_checklist_has_every_step_in_the_order_they_fall_due() -> None:
    checked = plan.checklist({"bank-account", "no-such-step"}, today=TODAY, release=RELEASE)
    assert [c.step.key for c in checked] == ["housing", "id-card", "bank-account", "benefits", "health-insurance",
                                             "transcripts"]
    assert [c.state for c in checked] == [StepState.OVERDUE, StepState.LATER, StepState.DONE, StepState.LATER,
                                          StepState.LATER, StepState.LATER]
    assert [c.days_left for c in checked] == [-7, 23, 38, 53, 53, 69]
    dues = [c.due for c in checked]
    assert dues == sorted(dues)
    assert all(c.state is StepState.NO_DATE and c.days_left is None
               for c in plan.checklist(set(), today=TODAY, release=None))


def test_each_step_is_helped_by_a_directory_category_and_is_worded_in_the_portal() -> None:
    assert {s.category for s in plan.STEPS} <= set(hsds.CATEGORIES), "each step names a category of the directory"
    assert set(STEP_TEXT) == set(plan.STEPS_BY_KEY)
    assert set(STATE_LABELS) == set(StepState)
    assert [s.key for s in plan.STEPS if s.uses_record] == ["transcripts"]
    with pytest.raises(plan.PlanRuleError, match="no step 'passport'"):
        plan.step("passport")


def test_the_rules_are_pure() -> None:
    """No database, clock, file or network under the checklist's rules: the services pass all of it in."""
    source = Path(plan.__file__)
    assert imported_roots(source) <= {"__future__", "enum", "collections", "dataclasses", "datetime"}
    assert "today()" not in source.read_text(encoding="utf-8") and "now()" not in source.read_text(encoding="utf-8")


@pytest.mark.parametrize(("day", "result"), [
    (None, None), (TODAY, TODAY), (date(2030, 1, 1), date(2030, 1, 1)), (date(2087, 12, 31), date(2087, 12, 31)),
    (date(2027, 3, 9), "in the past"), (date(2088, 1, 1), "more than 60 years"),
])
def test_a_release_date_is_today_or_later_and_not_absurd(day: date | None, result: date | str | None) -> None:
    if isinstance(result, str):
        with pytest.raises(plan.PlanRuleError, match=result):
            plan.check_release(day, TODAY)
    else:
        assert plan.check_release(day, TODAY) == result


# -- the PDF builder -------------------------------------------------------------------------------------------

def pdf_text(data: bytes, folder: Path) -> str:
    path = folder / "plan.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


@NEEDS_PDFTOTEXT
def test_the_pdf_prints_what_it_is_given_with_accents_and_pages(tmp_path: Path) -> None:
    many = tuple(Entry(f"Étape {n}", (f"Ligne <{n}> & suite",), "En retard") for n in range(60))
    data = plan_pdf(PlanDocument("Plan de sortie", (("Nom", "Zoë Dupré"), ("Numéro", "A100")),
                                 (Section("Étapes", many), Section("Notes", (), "Aucune note.")), "fr", "Prison",
                                 "Imprimé à Gand", "Page %(page)d"))
    assert data.startswith(b"%PDF")
    shown = pdf_text(data, tmp_path)
    assert "Plan de sortie" in shown and "Nom: Zoë Dupré" in shown and "Étape 59 — En retard" in shown
    assert "Ligne <7> & suite" in shown and "Aucune note." in shown
    assert "Page 2" in shown and "Imprimé à Gand" in shown
    assert b"/Lang (fr)" in data


# -- the plan's services, on both databases --------------------------------------------------------------------

NOW = utcnow().replace(microsecond=0)


@dataclass
class Place:
    settings: Settings
    kernel: Kernel

    def inmate_id(self, number: str) -> int:
        with self.kernel.factory() as session:
            found = session.scalar(select(Inmate.id).where(Inmate.number == number))
            assert found is not None
            return found


def add_service(session: Session, service_id: str, name: str, details: dict[str, Any] | None = None) -> None:
    if session.get(Organization, "org-1") is None:
        session.add(Organization(id="org-1", name="Onthaal vzw", description="", email="", website=""))
    session.add(Service(id=service_id, organization_id="org-1", name=name, details=details or {},
                        url="https://onthaal.example.org/", imported_at=NOW, updated_at=NOW))
    session.flush()


def add_job(session: Session, title: str, closes_on: date) -> int:
    return jobs.post(session, {"title": title, "employer": "Depot Noord", "region": "Liège", "contract": "permanent",
                               "hours": "full-time", "closes_on": closes_on.isoformat()},
                     by="eva", today=date(2000, 1, 1), now=NOW).id


@pytest.fixture
def place(tmp_path: Path, database_url: str) -> Iterator[Place]:
    settings = initialise(tmp_path / "data", {"portal.port": 0, "proxy.port": 0, "database.url": database_url},
                          quiet=True)
    populate(settings)
    kernel = Kernel.open(settings)
    with kernel.factory.begin() as session:
        add_staff(session, username="eva", roles=["education"], display_name="Eva Claes",
                  password="a long passphrase 1", now=NOW)
        add_staff(session, username="sam", roles=["security"], password="a long passphrase 2", now=NOW)
        add_service(session, "svc-housing", "Housing first", DETAILS)
    yield Place(settings, kernel)
    kernel.engine.dispose()


def test_the_plan_is_made_on_first_use_and_reads_empty_before(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory() as s:
        empty = plans.page(s, me, today=TODAY)
        assert (empty.release_date, empty.notes, empty.services, empty.jobs) == (None, "", (), ())
        assert all(c.state is StepState.NO_DATE for c in empty.steps)
        assert s.scalar(select(ReleasePlan)) is None, "reading makes no plan"
    with place.kernel.factory.begin() as s:
        first = plans.plan_of(s, me, now=NOW).id
    with place.kernel.factory.begin() as s:
        assert plans.plan_of(s, me, now=NOW).id == first
    with place.kernel.factory.begin() as s, pytest.raises(NotFound):
        plans.plan_of(s, 99999, now=NOW)


def test_services_and_jobs_are_saved_once_and_a_closed_job_stays_marked(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory.begin() as s:
        open_job = add_job(s, "Cook", TODAY + timedelta(days=3))
        closing = add_job(s, "Baker", TODAY)
        past = add_job(s, "Welder", TODAY - timedelta(days=1))
        withdrawn = add_job(s, "Painter", TODAY + timedelta(days=3))
        jobs.withdraw(s, withdrawn, by="eva", now=NOW)
    with place.kernel.factory.begin() as s:
        assert plans.save(s, me, "service", "svc-housing", today=TODAY, now=NOW)[1] is True
        assert plans.save(s, me, "service", " svc-housing ", today=TODAY, now=NOW)[1] is False
        assert plans.save(s, me, "job", str(open_job), today=TODAY, now=NOW)[1] is True
        assert plans.save(s, me, "job", str(closing), today=TODAY, now=NOW)[1] is True
    for kind, ref in (("service", "svc-none"), ("service", ""), ("job", str(past)), ("job", str(withdrawn)),
                      ("job", "99999"), ("job", "x1"), ("job", "\u00b2"), ("job", "99999999999")):
        with place.kernel.factory.begin() as s, pytest.raises(NotFound):
            plans.save(s, me, kind, ref, today=TODAY, now=NOW)
    with place.kernel.factory.begin() as s, pytest.raises(InvalidInput, match="kind"):
        plans.save(s, me, "step", "id-card", today=TODAY, now=NOW)
    with place.kernel.factory() as s:
        later = plans.page(s, me, today=TODAY + timedelta(days=1))
    assert [(j.title, j.state) for j in later.jobs] == [("Cook", JobState.OPEN), ("Baker", JobState.CLOSED)]
    assert later.saved("job", str(open_job)) and later.saved("service", "svc-housing")
    assert not later.saved("job", str(past))
    (saved,) = later.services
    assert (saved.name, saved.organization, saved.gone) == ("Housing first", "Onthaal vzw", False)
    assert saved.addresses == ("Rue de l'Église 4, 4000 Liège, BE",)
    assert saved.phones == ("+32 3 555 01 01 (Intake)",)
    assert [(sorted(o.days), str(o.opens), str(o.closes), o.description) for o in saved.openings] == [
        ([0, 1, 3], "09:00:00", "12:30:00", ""), ([], "None", "None", "Evening intake on the second Monday")]
    with place.kernel.factory.begin() as s:
        assert plans.remove(s, me, "job", str(open_job), now=NOW) is True
        assert plans.remove(s, me, "job", str(open_job), now=NOW) is False
        assert plans.remove(s, place.inmate_id(OTHER_INMATE), "service", "svc-housing", now=NOW) is False
        s.delete(s.get(Service, "svc-housing"))
    with place.kernel.factory() as s:
        after = plans.page(s, me, today=TODAY)
    assert [j.title for j in after.jobs] == ["Baker"]
    assert [(x.id, x.gone) for x in after.services] == [("svc-housing", True)], "a removed entry stays, marked"


def test_an_inactive_entry_cannot_be_saved_as_inmates_cannot_open_it(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory.begin() as s:
        add_service(s, "svc-closed", "Closed office")
        s.get(Service, "svc-closed").status = "inactive"
    with place.kernel.factory.begin() as s, pytest.raises(NotFound):
        plans.save(s, me, "service", "svc-closed", today=TODAY, now=NOW)
    with place.kernel.factory() as s:
        assert plans.page(s, me, today=TODAY).services == ()


def test_steps_notes_and_the_release_date(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory.begin() as s:
        plans.set_release(s, me, RELEASE, "  Liège   province ", today=TODAY, now=NOW)
        assert plans.set_step(s, me, "id-card", True, now=NOW).done_at == NOW
        plans.set_step(s, me, "housing", True, now=NOW)
        assert plans.set_step(s, me, "housing", False, now=NOW).done_at is None
        plans.set_notes(s, me, "  Appointment at the town hall.  \r\n\r\nBring the letter.  ", now=NOW)
    with place.kernel.factory() as s:
        view = plans.page(s, me, today=TODAY)
    assert (view.release_date, view.release_region) == (RELEASE, "Liège province")
    assert view.notes == "Appointment at the town hall.\n\nBring the letter."
    states = {c.step.key: c.state for c in view.steps}
    assert states["id-card"] is StepState.DONE and states["housing"] is StepState.OVERDUE
    for work, field in ((lambda s: plans.set_step(s, me, "passport", True, now=NOW), "step"),
                        (lambda s: plans.set_notes(s, me, "n" * (plans.MAX_NOTES + 1), now=NOW), "notes"),
                        (lambda s: plans.set_release(s, me, TODAY - timedelta(days=1), "", today=TODAY, now=NOW),
                         "release_date"),
                        (lambda s: plans.set_release(s, me, RELEASE, "r" * 129, today=TODAY, now=NOW),
                         "release_region")):
        with place.kernel.factory.begin() as s, pytest.raises(InvalidInput, match=f"^{field}: "):
            work(s)
    with place.kernel.factory.begin() as s:
        plans.set_notes(s, me, "n" * plans.MAX_NOTES, now=NOW)
        plans.set_release(s, me, None, "", today=TODAY, now=NOW)
    with place.kernel.factory() as s:
        assert plans.page(s, me, today=TODAY).release_date is None


def test_only_education_staff_who_support_an_inmate_read_the_plan_and_views_are_kept(place: Place) -> None:
    me, other = place.inmate_id(INMATE), place.inmate_id(OTHER_INMATE)
    with place.kernel.factory() as s:
        assert not plans.may_read(s, "eva", {"education"}, me)
    with place.kernel.factory.begin() as s:
        inmate, new = plans.add_supporter(s, INMATE.lower(), "eva", by="eva", now=NOW)
        assert (inmate.number, new) == (INMATE, True)
        assert plans.add_supporter(s, INMATE, "eva", by="eva", now=NOW)[1] is False
    for number, username, error in ((INMATE, "sam", InvalidInput), (INMATE, "nobody", InvalidInput),
                                    ("Z999", "eva", NotFound)):
        with place.kernel.factory.begin() as s, pytest.raises(error):
            plans.add_supporter(s, number, username, by="eva", now=NOW)
    with place.kernel.factory() as s:
        assert plans.may_read(s, "eva", {"education"}, me)
        assert not plans.may_read(s, "eva", {"education"}, other), "supporting one inmate opens no other plan"
        assert not plans.may_read(s, "eva", {"security"}, me), "the role must still be there"
        assert not plans.may_read(s, "sam", {"security", "education"}, me)
        assert [(r.number, r.name) for r in plans.supported_by(s, "eva")] == [(INMATE, "Jan Peeters")]
    with place.kernel.factory.begin() as s:
        plans.record_view(s, me, "eva", "page", now=NOW)
        plans.record_view(s, me, "eva", "pdf", now=NOW + timedelta(minutes=1))
    with place.kernel.factory() as s:
        view = plans.page(s, me, today=TODAY)
        assert [(v.name, v.what) for v in view.views] == [("Eva Claes", "pdf"), ("Eva Claes", "page")]
        assert [(p.staff, p.name) for p in view.supporters] == [("eva", "Eva Claes")]
        assert s.scalars(select(PlanView.inmate_id)).all() == [me, me]
    with place.kernel.factory.begin() as s:
        plans.remove_supporter(s, INMATE, "eva")
    with place.kernel.factory.begin() as s, pytest.raises(NotFound):
        plans.remove_supporter(s, INMATE, "eva")
    with place.kernel.factory() as s:
        assert not plans.may_read(s, "eva", {"education"}, me)
        assert plans.supported_by(s, "eva") == []


def certify(place: Place, number: str, folder: Path, title: str) -> str:
    """A certificate of a course for `number`, issued as completing the course issues it; its short code."""
    files = {**FILES, "course.yaml": str(FILES["course.yaml"]).replace("title: Money safely", f"title: {title}")}
    with place.kernel.factory.begin() as s:
        catalog.import_course(s, load_package(build(folder / "pkg", files)), by="teacher", now=NOW)
        enrolment.enrol(s, course="safe-money", inmate=number, by="teacher", now=NOW)
    with place.kernel.factory.begin() as s:
        row = study.enrolment_of(s, place.inmate_id(number), "safe-money")
        return awards.issue_certificate(s, place.settings, row, hours=Decimal("1.5"), result="100%", now=NOW).short_code


def test_the_learning_record_gives_the_certificates_that_stand(place: Place, tmp_path: Path) -> None:
    code = certify(place, INMATE, tmp_path, "Gérer son argent")
    me = place.inmate_id(INMATE)
    with place.kernel.factory() as s:
        (only,) = plans.page(s, me, today=TODAY).certificates
    assert (only.course, only.short_code) == ("Gérer son argent", code)
    assert only.issued == NOW.replace(tzinfo=UTC).astimezone(ZoneInfo(place.settings["facility.timezone"])) \
        .date().isoformat()
    with place.kernel.factory.begin() as s:
        awards.revoke(s, study.certificates_of(s, me)[0].id, reason="issued in error", by="eva", now=NOW)
    with place.kernel.factory() as s:
        assert plans.certificates(s, me) == []


def test_two_first_uses_at_the_same_moment_make_one_plan(place: Place) -> None:
    """Both see no plan yet; the unique index lets one in, and the other saves into that one."""
    me = place.inmate_id(OTHER_INMATE)
    first_in = threading.Event()
    results: list[str] = []

    def first_use(hold: bool, ref: str) -> None:
        with place.kernel.factory.begin() as s:
            plans.save(s, me, "service", ref, today=TODAY, now=NOW)
            if hold:
                first_in.set()
                time.sleep(0.5)  # the other looks for a plan while this one is not committed
        results.append(ref)

    with place.kernel.factory.begin() as s:
        add_service(s, "svc-bank", "Basic bank account")
    holder = threading.Thread(target=first_use, args=(True, "svc-housing"))
    holder.start()
    assert first_in.wait(10)
    first_use(False, "svc-bank")
    holder.join()
    assert sorted(results) == ["svc-bank", "svc-housing"]
    with place.kernel.factory() as s:
        rows = s.scalars(select(ReleasePlan).where(ReleasePlan.inmate_id == me)).all()
        assert len(rows) == 1 and sorted(i.ref for i in rows[0].items) == ["svc-bank", "svc-housing"]


# -- through the portal ----------------------------------------------------------------------------------------

_serial = itertools.count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = initialise(tmp_path_factory.mktemp("plan") / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    async with running(settings.replace(login__attempts_per_address=1000)) as up:
        def seed() -> None:
            with up.kernel.factory.begin() as s:
                add_service(s, "svc-housing", "Housing first", DETAILS)
        await asyncio.to_thread(seed)
        yield Platform(up, Origin(), settings)


def facility_today(site: Platform) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(site.settings["facility.timezone"])).date()


async def new_inmate(site: Platform, language: str = "en", name: str = "") -> str:
    number = f"P{next(_serial):03d}"

    def add() -> None:
        with site.up.kernel.factory.begin() as s:
            add_inmate(s, ensure_facility(s, site.settings), number=number, name=name or f"Inmate {number}",
                       language=language, pin=PIN)
    await asyncio.to_thread(add)
    return number


@pytest_asyncio.fixture(loop_scope="module")
async def inmate(site: Platform) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    number = await new_inmate(site)
    async with site.client(CELL) as client:
        assert (await site.login(client, number, PIN)).url.path == "/home"
        yield number, client


async def token_of(client: aiohttp.ClientSession, url: str) -> str:
    async with client.get(url) as page:
        assert page.status == 200, await page.text()
        return csrf_from(await page.text())


async def pdf_of(client: aiohttp.ClientSession, url: str, folder: Path) -> str:
    async with client.get(url) as resp:
        assert resp.status == 200 and resp.content_type == "application/pdf"
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        return pdf_text(await resp.read(), folder)


@IN_MODULE_LOOP
async def test_anonymous_is_sent_to_the_login_and_security_staff_are_refused(site: Platform) -> None:
    async with site.client(CELL) as client:
        for path in ("/plan", "/plan.pdf"):
            async with client.get(site.portal + path, allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"] == "/login", path
        for path in ("/resources-admin/plans", f"/resources-admin/plans/{INMATE}"):
            async with client.get(site.portal + path, allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"] == "/staff/login", path
    async with staff_client(site, "127.0.0.3", "guard", ["security"]) as guard:
        for path in ("/resources-admin/plans", f"/resources-admin/plans/{INMATE}", "/plan"):
            async with guard.get(site.portal + path) as resp:
                assert resp.status == 403, path


@IN_MODULE_LOOP
async def test_an_inmate_keeps_a_plan_and_each_wrong_field_keeps_what_was_typed(
        site: Platform, inmate: tuple[str, aiohttp.ClientSession]) -> None:
    number, client = inmate
    today = facility_today(site)
    token = await token_of(client, site.portal + "/plan")

    async def post(path: str, **fields: str) -> aiohttp.ClientResponse:
        async with client.post(site.portal + path, data={"csrf_token": token, **fields},
                               allow_redirects=False) as resp:
            await resp.read()
            return resp

    refused = await post("/plan/release", release_date=(today - timedelta(days=1)).isoformat(),
                         release_region="Liège")
    assert refused.status == 400
    async with client.post(site.portal + "/plan/release", data={
            "csrf_token": token, "release_date": "someday", "release_region": "Liège"}) as resp:
        body = await resp.text()
    assert resp.status == 400 and 'id="release_date-error"' in body and 'value="Liège"' in body
    release = today + timedelta(days=70)
    saved = await post("/plan/release", release_date=release.isoformat(), release_region="Liège")
    assert saved.status == 303 and saved.headers["Location"] == "/plan?done=release"
    assert (await post("/plan/steps", step="id-card", done="yes")).headers["Location"] == "/plan?done=step#step-id-card"
    assert (await post("/plan/steps", step="passport", done="yes")).status == 400
    async with client.post(site.portal + "/plan/notes", data={"csrf_token": token,
                                                              "notes": "x" * (plans.MAX_NOTES + 1)}) as resp:
        body = await resp.text()
    assert resp.status == 400 and 'id="notes-error"' in body and "x" * plans.MAX_NOTES in body
    assert (await post("/plan/notes", notes="Call the landlord on Monday.")).status == 303
    for kind, ref, nxt, where in (
            ("service", "svc-housing", "/resources/service/svc-housing", "/resources/service/svc-housing"),
            ("service", "svc-housing", "//evil.example/x", "/plan?done=saved"),
            ("service", "svc-housing", "https://evil.example/x", "/plan?done=saved")):
        answer = await post("/plan/items", kind=kind, ref=ref, next=nxt)
        assert (answer.status, answer.headers["Location"]) == (303, where)
    assert (await post("/plan/items", kind="service", ref="svc-none")).status == 404
    assert (await post("/plan/items", kind="photo", ref="1")).status == 400
    async with client.post(site.portal + "/plan/items", data={"kind": "service", "ref": "svc-housing"}) as resp:
        assert resp.status == 403, "no CSRF token, no change"
    async with client.get(site.portal + "/plan") as resp:
        page = await resp.text()
    assert 'data-step="id-card" data-state="done"' in page
    assert 'data-step="transcripts" data-state="later"' in page
    assert 'data-step="housing" data-state="overdue"' in page, "due 90 days before a release in 70"
    assert "Call the landlord on Monday." in page and 'data-service="svc-housing"' in page
    assert page.count('data-service="svc-housing"') == 1, "saved once"
    assert "/resources?category=id-documents&amp;place=Li%C3%A8ge" in page
    assert "+32 3 555 01 01 (Intake)" in page and "Rue de l&#39;Église 4, 4000 Liège, BE" in page
    assert (await post("/plan/steps", step="id-card", done="no")).status == 303
    assert (await post("/plan/items/remove", kind="service", ref="svc-housing")).headers["Location"] == \
        "/plan?done=removed"
    async with client.get(site.portal + "/plan") as resp:
        page = await resp.text()
    assert 'data-step="id-card" data-state="due-soon"' in page and 'data-service="svc-housing"' not in page
    changes = [r.reason for r in site.records(tag="resources:plan:changed", actor=number)]
    assert changes == [f"plan of {number}: {what}" for what in (
        f"release {release.isoformat()} in Liège", "step id-card done", "notes of 28 characters",
        "saved service svc-housing", "saved service svc-housing", "saved service svc-housing",
        "step id-card not done", "removed service svc-housing")], "each change on record; never what the notes say"


@IN_MODULE_LOOP
async def test_a_saved_job_that_closes_stays_in_the_plan_marked_closed(
        site: Platform, inmate: tuple[str, aiohttp.ClientSession]) -> None:
    number, client = inmate
    today = facility_today(site)

    def seed() -> tuple[int, int]:
        with site.up.kernel.factory.begin() as s:
            return add_job(s, "Night baker", today + timedelta(days=2)), add_job(s, "Old offer", today - timedelta(1))
    job_id, closed = await asyncio.to_thread(seed)
    token = await token_of(client, f"{site.portal}/jobs/{job_id}")
    async with client.post(site.portal + "/plan/items", data={
            "csrf_token": token, "kind": "job", "ref": str(job_id), "next": f"/jobs/{job_id}?done=saved"}) as resp:
        assert resp.status == 200 and 'data-testid="in-plan"' in await resp.text()
    async with client.post(site.portal + "/plan/items", data={
            "csrf_token": token, "kind": "job", "ref": str(closed)}) as resp:
        assert resp.status == 404

    def close() -> None:
        with site.up.kernel.factory.begin() as s:
            jobs.get(s, job_id).closes_on = today - timedelta(days=1)
    await asyncio.to_thread(close)
    async with client.get(site.portal + "/plan") as resp:
        page = await resp.text()
    assert f'data-job="{job_id}" data-state="closed"' in page and "Night baker" in page
    assert f'href="/jobs/{job_id}"' not in page, "no link to an offer that is gone"


@NEEDS_PDFTOTEXT
@IN_MODULE_LOOP
@pytest.mark.parametrize(("language", "name", "note_text", "course"), [
    ("en", "Jan Peeters", "Meet the housing officer.", ""),
    ("fr", "Zoë Lefèvre", "Rendez-vous à la mairie, déjà prévu.", "Gérer son argent"),
])
async def test_the_printed_plan_is_in_the_inmates_language(site: Platform, tmp_path: Path, language: str, name: str,
                                                           note_text: str, course: str) -> None:
    today = facility_today(site)
    release = today + timedelta(days=120)
    zone = ZoneInfo(site.settings["facility.timezone"])
    number = await new_inmate(site, language, name)

    def seed() -> None:
        with site.up.kernel.factory.begin() as s:
            me = find(s, number)
            plans.set_release(s, me, release, "Liège", today=today, now=utcnow())
            plans.set_notes(s, me, note_text, now=utcnow())
            plans.set_step(s, me, "bank-account", True, now=utcnow())
            plans.save(s, me, "service", "svc-housing", today=today, now=utcnow())
            plans.save(s, me, "job", str(add_job(s, "Magasinier", today + timedelta(days=9))), today=today,
                       now=utcnow())
        if course:
            certify(Place(site.settings, site.up.kernel), number, tmp_path, course)
    await asyncio.to_thread(seed)
    async with site.client(CELL) as client:
        assert (await site.login(client, number, PIN)).url.path == "/home"
        shown = await pdf_of(client, site.portal + "/plan.pdf", tmp_path)
    release_day, weekly = spoken(language, lambda: (i18n.format_day(release, zone), i18n.format_weekly(
        frozenset({0, 1, 3}), time_of("09:00"), time_of("12:30"))))
    if language != "en":
        assert release_day != spoken("en", lambda: i18n.format_day(release, zone)), "the day in the language's words"
    flat = " ".join(shown.split())
    for expected in (text(language, "Release plan"), f"{text(language, 'Name')}: {name}",
                     f"{text(language, 'Inmate number')}: {number}", release_day, "Liège", note_text,
                     "Housing first", "Onthaal vzw", "Rue de l'Église 4, 4000 Liège, BE", "+32 3 555 01 01",
                     " ".join(weekly.split()), "Magasinier", "Depot Noord",
                     f"{text(language, 'Bank account')} — {text(language, 'Done')}"):
        assert expected in flat, (expected, shown)
    if course:
        assert course in flat and re.search(r"\b[0-9A-Z]{5}-[0-9A-Z]{5}\b", flat), shown
    printed = site.records(tag="resources:plan:printed", actor=number)
    assert len(printed) == 1 and printed[0].path == "/plan.pdf"


@IN_MODULE_LOOP
async def test_the_pdf_is_built_off_the_event_loop(site: Platform, inmate: tuple[str, aiohttp.ClientSession],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """reportlab takes a second for a plan of a thousand entries: on the loop, every page of the portal would wait."""
    on_loop: list[bool] = []

    def watched(document: PlanDocument) -> bytes:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            on_loop.append(False)
        else:
            on_loop.append(True)
        return plan_pdf(document)

    monkeypatch.setattr(portal_plan, "plan_pdf", watched)
    _, client = inmate
    async with client.get(site.portal + "/plan.pdf") as resp:
        assert resp.status == 200 and (await resp.read()).startswith(b"%PDF")
    assert on_loop == [False]


T = TypeVar("T")


def spoken(language: str, work: Callable[[], T]) -> T:
    i18n.activate(language)
    try:
        return work()
    finally:
        i18n.activate("en")


def time_of(text: str) -> dt_time:
    return dt_time.fromisoformat(text)


def find(session: Session, number: str) -> int:
    found = session.scalar(select(Inmate.id).where(Inmate.number == number))
    assert found is not None
    return found


@NEEDS_PDFTOTEXT
@IN_MODULE_LOOP
async def test_only_a_supporter_reads_a_plan_each_opening_is_recorded_and_the_inmate_sees_it(
        site: Platform, tmp_path: Path) -> None:
    number = await new_inmate(site, "fr", "Marc Lenoir")

    def seed() -> None:
        with site.up.kernel.factory.begin() as s:
            plans.set_notes(s, find(s, number), "Cherche un logement à Namur.", now=utcnow())
    await asyncio.to_thread(seed)
    async with staff_client(site, "127.0.0.4", "mentor", ["education"]) as mentor:
        async with mentor.get(f"{site.portal}/resources-admin/plans/{number}") as resp:
            assert resp.status == 403 and "Namur" not in await resp.text()
        async with mentor.get(f"{site.portal}/resources-admin/plans/{number}/plan.pdf") as resp:
            assert resp.status == 403
        token = await token_of(mentor, site.portal + "/resources-admin/plans")
        async with mentor.post(site.portal + "/resources-admin/plans", data={"csrf_token": token,
                                                                           "number": "Z999"}) as resp:
            assert resp.status == 400 and 'id="number-error"' in await resp.text()
        async with mentor.post(site.portal + "/resources-admin/plans", data={"csrf_token": token,
                                                                           "number": number.lower()}) as resp:
            assert resp.status == 200 and resp.url.query.get("done") == "added"
            assert f'data-inmate="{number}"' in await resp.text()
        async with mentor.get(f"{site.portal}/resources-admin/plans/{number}") as resp:
            assert resp.status == 200
            body = await resp.text()
        assert "Cherche un logement à Namur." in body and 'action="/plan/notes"' not in body, "read only"
        shown = await pdf_of(mentor, f"{site.portal}/resources-admin/plans/{number}/plan.pdf", tmp_path)
        assert text("fr", "Release plan") in shown and "Cherche un logement à Namur." in shown
        async with mentor.post(f"{site.portal}/resources-admin/plans/{number}/remove",
                               data={"csrf_token": token}) as resp:
            assert resp.status == 200 and resp.url.query.get("done") == "removed"
        async with mentor.get(f"{site.portal}/resources-admin/plans/{number}") as resp:
            assert resp.status == 403, "no longer a supporter"
    records = [(r.tag, r.decision) for r in site.records(actor="mentor") if r.tag.startswith("resources:")]
    assert records == [("resources:plan:viewed", "deny"), ("resources:plan:printed", "deny"),
                       ("resources:supporter:added", "allow"), ("resources:plan:viewed", "allow"),
                       ("resources:plan:printed", "allow"), ("resources:supporter:removed", "allow"),
                       ("resources:plan:viewed", "deny")]
    with site.up.kernel.factory() as s:
        assert [v.what for v in s.scalars(select(PlanView).where(PlanView.inmate_id == find(s, number))
                                          .order_by(PlanView.id))] == ["page", "pdf"]
    async with site.client(CELL) as client:
        assert (await site.login(client, number, PIN)).url.path == "/home"
        async with client.get(site.portal + "/plan") as resp:
            page = await resp.text()
    looked = page.split('data-testid="views"')[1].split("</table>")[0]
    assert looked.count('data-staff="mentor"') == 2
