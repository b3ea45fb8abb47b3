"""Job offers in the portal: inmates see the offers open today (filtered by region, contract, hours and fair-chance
employers) and save one to their plan; education staff post, edit and withdraw them, each change on the audit
record. An offer past its closing day is gone for inmates (404) and marked closed for staff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import Conflict, NotFound
from gatehouse.inmates import find_inmate
from gatehouse.kernel import Kernel
from gatehouse.resources import jobs, plans
from gatehouse.resources.jobs import JobFilters, JobState, OfferError
from gatehouse.resources.models import Contract, Hours, JobOffer
from portal import i18n
from portal.access import acting, inmate, staff, staff_of
from portal.auth.services import record
from portal.i18n import N_, _
from portal.keys import KERNEL, VIEWER
from portal.labels import choices
from portal.layout import facility_today, facility_zone, render
from portal.transactions import change, read

routes = web.RouteTableDef()

CONTRACT_LABELS = {Contract.PERMANENT.value: N_("Permanent contract"),
                   Contract.FIXED_TERM.value: N_("Fixed-term contract"),
                   Contract.TEMPORARY.value: N_("Temporary work"),
                   Contract.APPRENTICESHIP.value: N_("Apprenticeship"),
                   Contract.TRAINING.value: N_("Paid traineeship")}
HOURS_LABELS = {Hours.FULL_TIME.value: N_("Full time"), Hours.PART_TIME.value: N_("Part time"),
                Hours.SHIFTS.value: N_("Shifts")}
JOB_STATES = {JobState.OPEN.value: N_("Open"), JobState.CLOSED.value: N_("Closed"),
              JobState.WITHDRAWN.value: N_("No longer offered")}
DONE = {"posted": N_("The job offer was posted. Inmates see it until its closing day."),
        "changed": N_("The job offer was saved."),
        "withdrawn": N_("The job offer was withdrawn. Inmates no longer see it.")}


@dataclass(frozen=True, slots=True)
class Shown:
    """A job offer as a page shows it, read in its transaction."""

    id: int
    title: str
    employer: str
    region: str
    city: str
    contract: str
    hours: str
    fair_chance: bool
    description: str
    how_to_apply: str
    language: str
    closes_on: date
    posted_by: str
    withdrawn_by: str
    state: str

    @classmethod
    def of(cls, row: JobOffer, today: date) -> Shown:
        return cls(row.id, row.title, row.employer, row.region, row.city, row.contract, row.hours, row.fair_chance,
                   row.description, row.how_to_apply, row.language, row.closes_on, row.posted_by, row.withdrawn_by,
                   jobs.state_of(row, today).value)

    def form(self) -> dict[str, str]:
        return {"title": self.title, "employer": self.employer, "region": self.region, "city": self.city,
                "contract": self.contract, "hours": self.hours, "fair_chance": "yes" if self.fair_chance else "",
                "description": self.description, "how_to_apply": self.how_to_apply, "language": self.language,
                "closes_on": self.closes_on.isoformat()}


async def note(kernel: Kernel, tag: Tag, actor: str, reason: str, *, terminal: str = "", address: str = "",
               path: str = "", decision: str = "allow") -> None:
    await record(kernel, AuditEvent(tag, "portal", actor=actor, terminal=terminal, client_addr=address,
                                    method="GET" if path else "", path=path, decision=decision, reason=reason))


def labels() -> dict[str, Any]:
    """The tables a job's template names things with, translated when shown."""
    return {"contracts": CONTRACT_LABELS, "hours_labels": HOURS_LABELS, "job_states": JOB_STATES}


def _day(day: date, request: web.Request) -> str:
    return i18n.format_day(day, facility_zone(request))


# -- inmates ---------------------------------------------------------------------------------------------------

def _filters(query: Any) -> JobFilters:
    contract, hours = str(query.get("contract", "")), str(query.get("hours", ""))
    return JobFilters(region=" ".join(str(query.get("region", "")).split())[:128],
                      contract=contract if contract in CONTRACT_LABELS else "",
                      hours=hours if hours in HOURS_LABELS else "",
                      fair_chance=query.get("fair_chance") == "yes")


def _inmate_number(request: web.Request) -> str:
    active = request[VIEWER].inmate
    if active is None:  # the route's rule lets only inmates through
        raise web.HTTPForbidden()
    return active.inmate_number


@routes.get("/jobs", name="jobs")
@inmate
async def offers(request: web.Request) -> web.Response:
    today, chosen = facility_today(request), _filters(request.query)

    def work(session: Session) -> tuple[list[Shown], list[str]]:
        return ([Shown.of(r, today) for r in jobs.open_offers(session, today, chosen)],
                jobs.regions(session, today))

    found, regions = await read(request.app[KERNEL], work)
    if chosen.region and chosen.region.lower() not in {r.lower() for r in regions}:
        regions.append(chosen.region)
    return render(request, "resources/jobs.html", {
        "title": _("Jobs"), "offers": found, "filters": chosen, "region_choices": [(r, r) for r in regions],
        "fair_choices": [("yes", _("Fair-chance employers only"))], **_choices(),
        "closes": {o.id: _day(o.closes_on, request) for o in found}, "filtered": chosen != JobFilters(),
        **labels()})


@routes.get("/jobs/{id}", name="job")
@inmate
async def offer(request: web.Request) -> web.Response:
    number, today = _inmate_number(request), facility_today(request)
    missing = web.HTTPNotFound(text=_("This job offer is closed or does not exist. The list of jobs shows the "
                                      "offers open today."))
    try:
        job_id = jobs.number(request.match_info["id"])
    except NotFound:
        raise missing from None

    def work(session: Session) -> tuple[Shown, bool]:
        row = jobs.get(session, job_id)
        if not jobs.is_open(row, today):
            raise NotFound(f"job offer {job_id} is not open")
        mine = plans.page(session, find_inmate(session, number).id, today=today)
        return Shown.of(row, today), mine.saved("job", str(job_id))

    try:
        shown, saved = await read(request.app[KERNEL], work)
    except NotFound:
        raise missing from None
    return render(request, "resources/jobs_offer.html", {
        "title": shown.title, "job": shown, "saved": saved, "closes": _day(shown.closes_on, request),
        "done": _("Saved in your plan.") if request.query.get("done") == "saved" else "", **labels()})


# -- staff -----------------------------------------------------------------------------------------------------

PROBLEMS = {
    "missing": N_("Fill this in."),
    "too-long": N_("This is too long: at most %(num)d characters."),
    "not-a-date": N_("Give the date as the date field shows it, for example 2030-05-31."),
    "past": N_("The closing day has passed. Give today or a later day."),
    "unknown": N_("Choose one of the options."),
}


def _problems(error: OfferError) -> dict[str, str]:
    shown = {}
    for field, code in error.problems.items():
        text = _(PROBLEMS.get(code, N_("Check this field.")))
        shown[field] = text % {"num": jobs.LIMITS.get(field, 0)} if code == "too-long" else text
    return shown


def _choices() -> dict[str, list[tuple[str, str]]]:
    """The choices of the offer's form, in the reader's language."""
    return {"contract_choices": choices(CONTRACT_LABELS), "hours_choices": choices(HOURS_LABELS),
            "language_choices": list(i18n.NAMES.items())}


def _form(data: Any) -> dict[str, str]:
    return {name: str(data.get(name, "")) for name in jobs.FIELDS}


async def _admin(request: web.Request, *, values: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    today = facility_today(request)
    rows = await read(request.app[KERNEL], lambda s: [Shown.of(r, today) for r in jobs.all_offers(s)])
    done = DONE.get(request.query.get("done", ""))
    language = staff_of(request).language
    return render(request, "resources/jobs_admin.html", {
        "title": _("Job offers"), "rows": rows, "closes": {r.id: _day(r.closes_on, request) for r in rows},
        "values": values or {"language": language, "contract": Contract.PERMANENT.value,
                             "hours": Hours.FULL_TIME.value},
        "errors": errors or {}, "done": _(done) if done and not errors else "",
        "message": _("The offer was not posted. Correct the fields marked below.") if errors else "",
        **_choices(), "limits": jobs.LIMITS, "today": today.isoformat(), **labels()}, status=status)


@routes.get("/resources-admin/jobs", name="jobs-admin")
@staff(StaffRole.EDUCATION)
async def admin(request: web.Request) -> web.Response:
    return await _admin(request)


@routes.post("/resources-admin/jobs", name="jobs-post")
@staff(StaffRole.EDUCATION)
async def post(request: web.Request) -> web.Response:
    by, address = acting(request)
    values, today = _form(await request.post()), facility_today(request)
    kernel = request.app[KERNEL]
    try:
        shown = await change(kernel, lambda s: Shown.of(jobs.post(s, values, by=by, today=today, now=utcnow()),
                                                        today))
    except OfferError as exc:
        return await _admin(request, values=values, errors=_problems(exc), status=400)
    await note(kernel, Tag.RESOURCES_JOB_POSTED, by, f"job {shown.id}: {shown.title} at {shown.employer} "
               f"({shown.region or 'no region'}), closes {shown.closes_on.isoformat()}", address=address)
    raise web.HTTPSeeOther(f"/resources-admin/jobs?done=posted#job-{shown.id}")


def _job_id(request: web.Request) -> int:
    try:
        return jobs.number(request.match_info["id"])
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such job offer.")) from None


async def _edit(request: web.Request, job_id: int, *, values: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, message: str = "", status: int = 200) -> web.Response:
    today = facility_today(request)
    try:
        shown = await read(request.app[KERNEL], lambda s: Shown.of(jobs.get(s, job_id), today))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such job offer.")) from None
    return render(request, "resources/jobs_edit.html", {
        "title": _("Edit the job offer"), "job": shown, "values": values or shown.form(), "errors": errors or {},
        "message": message or (_("Nothing was saved. Correct the fields marked below.") if errors else ""),
        "closes": _day(shown.closes_on, request), **_choices(), "limits": jobs.LIMITS, "today": today.isoformat(),
        **labels()},
        status=status)


@routes.get("/resources-admin/jobs/{id}", name="jobs-edit")
@staff(StaffRole.EDUCATION)
async def edit(request: web.Request) -> web.Response:
    return await _edit(request, _job_id(request))


@routes.post("/resources-admin/jobs/{id}", name="jobs-change")
@staff(StaffRole.EDUCATION)
async def change_offer(request: web.Request) -> web.Response:
    job_id, (by, address) = _job_id(request), acting(request)
    values, today = _form(await request.post()), facility_today(request)
    kernel = request.app[KERNEL]

    def work(session: Session) -> tuple[Shown, dict[str, tuple[str, str]]]:
        row, changed = jobs.change(session, job_id, values, by=by, today=today, now=utcnow())
        return Shown.of(row, today), changed

    try:
        shown, changed = await change(kernel, work)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such job offer.")) from None
    except OfferError as exc:
        return await _edit(request, job_id, values=values, errors=_problems(exc), status=400)
    except Conflict:
        return await _edit(request, job_id, values=values, status=409, message=_(
            "This offer was withdrawn, so it cannot be changed. Post a new offer instead."))
    if changed:
        what = "; ".join(f"{field}: {before!r} -> {after!r}" for field, (before, after) in changed.items())
        await note(kernel, Tag.RESOURCES_JOB_CHANGED, by, f"job {shown.id}: {what}"[:2000], address=address)
    raise web.HTTPSeeOther(f"/resources-admin/jobs?done=changed#job-{shown.id}")


@routes.post("/resources-admin/jobs/{id}/withdraw", name="jobs-withdraw")
@staff(StaffRole.EDUCATION)
async def withdraw(request: web.Request) -> web.Response:
    job_id, (by, address) = _job_id(request), acting(request)
    kernel, today = request.app[KERNEL], facility_today(request)
    try:
        shown = await change(kernel, lambda s: Shown.of(jobs.withdraw(s, job_id, by=by, now=utcnow()), today))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such job offer.")) from None
    except Conflict:
        return await _edit(request, job_id, status=409, message=_("This offer was withdrawn already."))
    await note(kernel, Tag.RESOURCES_JOB_WITHDRAWN, by, f"job {shown.id}: {shown.title} at {shown.employer} "
               "withdrawn", address=address)
    raise web.HTTPSeeOther(f"/resources-admin/jobs?done=withdrawn#job-{shown.id}")

