"""The release plan in the portal: the inmate's own page (release date and region, the checklist, saved services and
jobs, certificates, notes, who supports them and who looked) and its PDF; education staff's list of the inmates
they support, and the plan of one of them, read only, each opening recorded where the inmate sees it.

Only a supporter reads a plan (`plans.may_read`); anyone else gets a 403 that is on the audit record too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from gatehouse.audit import Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import InvalidInput, NotFound
from gatehouse.inmates import find_inmate
from gatehouse.resources import plan, plans
from gatehouse.resources.jobs import JobState
from gatehouse.resources.plan import StepState
from gatehouse.resources.plan_pdf import Entry, PlanDocument, Section, plan_pdf
from gatehouse.resources.plans import PlanPage, SavedJob, SavedService
from portal import i18n
from portal.access import acting, client_address, inmate, staff, staff_of
from portal.i18n import N_, _, ngettext
from portal.keys import KERNEL, VIEWER
from portal.layout import facility_today, facility_zone, render, safe_next
from portal.resources.jobs import CONTRACT_LABELS, HOURS_LABELS, labels, note
from portal.transactions import change, read

routes = web.RouteTableDef()
T = TypeVar("T")

STEP_TEXT = {
    "housing": (N_("A place to live"),
                N_("Find where you will live after release: with family, a rented room, supported housing or a "
                   "shelter. Ask early: answers take weeks.")),
    "id-card": (N_("Identity card"),
                N_("Order a valid identity card or residence permit. A bank, a landlord and the benefits office "
                   "will ask for it.")),
    "bank-account": (N_("Bank account"),
                     N_("Open a basic bank account, so that wages and benefits can be paid to you.")),
    "benefits": (N_("Benefits"),
                 N_("Apply for the income support or unemployment benefit you are entitled to from the day you "
                    "leave.")),
    "health-insurance": (N_("Health insurance"),
                         N_("Join a health insurance fund again, so that doctors and medicines are covered from the "
                            "first day.")),
    "transcripts": (N_("Transcripts and certificates"),
                    N_("Gather the certificates of the courses you completed here, and your earlier diplomas, to "
                       "show employers and schools.")),
}
STATE_LABELS = {StepState.DONE: N_("Done"), StepState.OVERDUE: N_("Overdue"), StepState.DUE_SOON: N_("Due soon"),
                StepState.LATER: N_("Later"), StepState.NO_DATE: N_("No release date yet")}
DONE = {"saved": N_("Saved in your plan."), "removed": N_("Taken out of your plan."),
        "step": N_("The checklist was saved."), "notes": N_("Your notes were saved."),
        "release": N_("Your release date and region were saved.")}
STAFF_DONE = {"added": N_("You now support this inmate and can read their plan."),
              "removed": N_("You no longer support this inmate.")}


def _number(request: web.Request) -> str:
    active = request[VIEWER].inmate
    if active is None:  # the route's rule lets only inmates through
        raise web.HTTPForbidden()
    return active.inmate_number


def _in(language: str, work: Callable[[], T]) -> T:
    """`work` in another language (the inmate's, for a PDF staff print), then back to the reader's."""
    before = i18n.current()
    i18n.activate(language)
    try:
        return work()
    finally:
        i18n.activate(before)


# -- what the page and the PDF say -----------------------------------------------------------------------------

def _day(day: date, request: web.Request) -> str:
    return i18n.format_day(day, facility_zone(request))


def _when(checked: plan.Checked, request: web.Request) -> tuple[str, str]:
    """The due day and how far it is, in words."""
    if checked.due is None or checked.days_left is None:
        return "", ""
    due = _("Due by %(day)s") % {"day": _day(checked.due, request)}
    if checked.state is StepState.DONE:
        return due, ""
    left = checked.days_left
    if left < 0:
        return due, ngettext("%(num)d day late", "%(num)d days late", -left) % {"num": -left}
    if left == 0:
        return due, _("Due today")
    return due, ngettext("%(num)d day left", "%(num)d days left", left) % {"num": left}


def _directory(category: str, region: str) -> str:
    query = {"category": category, **({"place": region} if region else {})}
    return "/resources?" + urlencode(query)


def _steps(view: PlanPage, request: web.Request) -> list[dict[str, Any]]:
    shown = []
    for checked in view.steps:
        title, help_text = STEP_TEXT.get(checked.step.key, (checked.step.key, ""))
        due, left = _when(checked, request)
        shown.append({"key": checked.step.key, "title": _(title), "help": _(help_text) if help_text else "",
                      "state": checked.state.value, "state_label": _(STATE_LABELS[checked.state]), "due": due,
                      "left": left, "done": checked.state is StepState.DONE,
                      "record": checked.step.uses_record,
                      "link": _directory(checked.step.category, view.release_region)})
    return shown


def _opening(o: plans.Opening) -> str:
    parts = []
    if o.days and o.opens is not None and o.closes is not None:
        parts.append(i18n.format_weekly(o.days, o.opens, o.closes))
    if o.description:
        parts.append(o.description)
    return " · ".join(parts)


def _service_lines(s: SavedService) -> list[str]:
    if s.gone:
        return [_("This service is no longer in the directory.")]
    lines = [s.organization, *s.addresses]
    lines += [_("Phone: %(number)s") % {"number": p} for p in s.phones]
    lines += [_("Open: %(hours)s") % {"hours": text} for text in map(_opening, s.openings) if text]
    lines += [s.url, s.email]
    return [line for line in lines if line]


def _job_state(j: SavedJob) -> str:
    if j.state is None:
        return _("No longer in the list")
    return "" if j.state is JobState.OPEN else _("Closed")


def _job_lines(j: SavedJob, request: web.Request) -> list[str]:
    if j.state is None:
        return []
    kind = " · ".join([_(CONTRACT_LABELS[j.contract]) if j.contract in CONTRACT_LABELS else j.contract,
                       _(HOURS_LABELS[j.hours]) if j.hours in HOURS_LABELS else j.hours])
    lines = [j.employer, ", ".join(p for p in (j.city, j.region) if p), kind]
    if j.fair_chance:
        lines.append(_("Fair-chance employer"))
    if j.closes_on is not None:
        lines.append(_("Apply by %(day)s") % {"day": _day(j.closes_on, request)})
    lines += j.how_to_apply.split("\n")
    return [line for line in lines if line.strip()]


def _context(view: PlanPage, request: web.Request) -> dict[str, Any]:
    zone = facility_zone(request)
    return {
        "view": view, "steps": _steps(view, request),
        "release_day": _day(view.release_date, request) if view.release_date else "",
        "services": [(s, _service_lines(s)) for s in view.services],
        "jobs": [(j, _job_state(j), _job_lines(j, request)) for j in view.jobs],
        "certificates": [(c, _day(date.fromisoformat(c.issued), request)) for c in view.certificates],
        "supporters": [(s, i18n.format_datetime(s.since, zone, "short")) for s in view.supporters],
        "views": [(v, i18n.format_datetime(v.at, zone, "short")) for v in view.views],
        "max_notes": plans.MAX_NOTES, **labels()}


def _document(view: PlanPage, request: web.Request) -> PlanDocument:
    """The plan as the PDF prints it, in the current language."""
    steps = tuple(Entry(s["title"], tuple(p for p in (" · ".join(filter(None, (s["due"], s["left"]))), s["help"])
                                          if p), s["state_label"]) for s in _steps(view, request))
    certificates = tuple(Entry(c.course, (_("Completed on %(day)s") % {"day": _day(date.fromisoformat(c.issued),
                                                                                   request)},
                                          _("Verification code: %(code)s") % {"code": c.short_code}))
                         for c in view.certificates)
    facility: str = request.app[KERNEL].settings["facility.name"]
    return PlanDocument(
        title=_("Release plan"),
        facts=((_("Name"), view.inmate_name), (_("Inmate number"), view.inmate_number),
               (_("Release date"), _day(view.release_date, request) if view.release_date else _("Not known yet")),
               (_("Region of release"), view.release_region or _("Not given yet"))),
        sections=(
            Section(_("Checklist"), steps),
            Section(_("Saved services"), tuple(Entry(s.name or s.id, tuple(_service_lines(s)))
                                               for s in view.services), _("No service saved yet.")),
            Section(_("Saved job offers"), tuple(Entry(j.title or str(j.id), tuple(_job_lines(j, request)),
                                                       _job_state(j)) for j in view.jobs),
                    _("No job offer saved yet.")),
            Section(_("Certificates from the courses"), certificates, _("No course completed yet.")),
            Section(_("My notes"), (Entry("", tuple(view.notes.split("\n"))),) if view.notes else (),
                    _("No notes.")),
        ),
        language=i18n.current(), author=facility,
        footer=_("Printed on %(day)s at %(facility)s") % {"day": _day(facility_today(request), request),
                                                          "facility": facility},
        page_label=_("Page %(page)d"))


async def _pdf(document: PlanDocument, view: PlanPage) -> web.Response:
    """The PDF built off the event loop: a plan of many saved entries takes a second of reportlab, which would stop
    every other page of the portal meanwhile."""
    body = await asyncio.to_thread(plan_pdf, document)
    name = f"release-plan-{view.inmate_number}.pdf".replace("/", "-")
    return web.Response(body=body, content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- the inmate's own plan -------------------------------------------------------------------------------------

async def _mine(request: web.Request, *, values: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    number, today = _number(request), facility_today(request)
    view = await read(request.app[KERNEL], lambda s: plans.page(s, find_inmate(s, number).id, today=today))
    done = DONE.get(request.query.get("done", ""))
    return render(request, "resources/plan.html", {
        "title": _("My release plan"), "editable": True, "values": values or {}, "errors": errors or {},
        "done": _(done) if done and not errors else "",
        "message": _("Nothing was saved. Correct the field marked below.") if errors else "",
        "today": today.isoformat(), **_context(view, request)}, status=status)


@routes.get("/plan", name="plan")
@inmate
async def my_plan(request: web.Request) -> web.Response:
    return await _mine(request)


@routes.get("/plan.pdf", name="plan-pdf")
@inmate
async def my_pdf(request: web.Request) -> web.Response:
    number, today = _number(request), facility_today(request)
    view = await read(request.app[KERNEL], lambda s: plans.page(s, find_inmate(s, number).id, today=today))
    response = await _pdf(_document(view, request), view)
    active = request[VIEWER].inmate
    await note(request.app[KERNEL], Tag.RESOURCES_PLAN_PRINTED, number, f"plan of {number} printed by the inmate",
               terminal=active.terminal_name if active else "", address=client_address(request), path="/plan.pdf")
    return response


async def _changed(request: web.Request, work: Callable[[Session, int], object], done: str,
                   what: str) -> web.Response:
    """Make the change, record what it was (`what`), and go to `done`."""
    number = _number(request)
    try:
        await change(request.app[KERNEL], lambda s: work(s, find_inmate(s, number).id))
    except NotFound:
        raise web.HTTPNotFound(text=_("This service or job offer is not in the directory, or is closed.")) from None
    except InvalidInput:
        raise web.HTTPBadRequest(text=_("This change cannot be made. Go back to your plan and try again.")) from None
    active = request[VIEWER].inmate
    await note(request.app[KERNEL], Tag.RESOURCES_PLAN_CHANGED, number, f"plan of {number}: {what}"[:500],
               terminal=active.terminal_name if active else "", address=client_address(request), path=request.path)
    raise web.HTTPSeeOther(done)


@routes.post("/plan/items", name="plan-save")
@inmate
async def save_item(request: web.Request) -> web.Response:
    """Save a directory entry or a job offer; the page it was saved from is where the inmate goes back to."""
    data, today = await request.post(), facility_today(request)
    kind, ref = str(data.get("kind", "")), str(data.get("ref", ""))
    return await _changed(request, lambda s, me: plans.save(s, me, kind, ref, today=today, now=utcnow()),
                          safe_next(str(data.get("next", "")), "/plan?done=saved"), f"saved {kind[:16]} {ref[:100]}")


@routes.post("/plan/items/remove", name="plan-remove")
@inmate
async def remove_item(request: web.Request) -> web.Response:
    data = await request.post()
    kind, ref = str(data.get("kind", "")), str(data.get("ref", ""))
    return await _changed(request, lambda s, me: plans.remove(s, me, kind, ref, now=utcnow()),
                          safe_next(str(data.get("next", "")), "/plan?done=removed"),
                          f"removed {kind[:16]} {ref[:100]}")


@routes.post("/plan/steps", name="plan-step")
@inmate
async def step(request: web.Request) -> web.Response:
    data = await request.post()
    key, done = str(data.get("step", "")), data.get("done") == "yes"
    return await _changed(request, lambda s, me: plans.set_step(s, me, key, done, now=utcnow()),
                          f"/plan?done=step#step-{key if key in plan.STEPS_BY_KEY else ''}",
                          f"step {key[:32]} {'done' if done else 'not done'}")


@routes.post("/plan/notes", name="plan-notes")
@inmate
async def notes(request: web.Request) -> web.Response:
    text = str((await request.post()).get("notes", ""))
    if len(text.strip()) > plans.MAX_NOTES:
        return await _mine(request, values={"notes": text}, status=400, errors={"notes": _(
            "Your notes are too long: at most %(num)d characters. Shorten them and save again.") % {
            "num": plans.MAX_NOTES}})
    return await _changed(request, lambda s, me: plans.set_notes(s, me, text, now=utcnow()), "/plan?done=notes#notes",
                          f"notes of {len(text.strip())} characters")


@routes.post("/plan/release", name="plan-release")
@inmate
async def release(request: web.Request) -> web.Response:
    data, today = await request.post(), facility_today(request)
    values = {"release_date": str(data.get("release_date", "")).strip(),
              "release_region": " ".join(str(data.get("release_region", "")).split())}
    errors: dict[str, str] = {}
    day = None
    try:
        day = plan.check_release(date.fromisoformat(values["release_date"]) if values["release_date"] else None,
                                 today)
    except ValueError as exc:  # a PlanRuleError is a ValueError too
        errors["release_date"] = (_("This day has passed. Give the day you will be released, today or later.")
                                  if isinstance(exc, plan.PlanRuleError) and "past" in str(exc) else
                                  _("Give a date as the date field shows it, for example 2030-05-31."))
    if len(values["release_region"]) > plans.MAX_REGION:
        errors["release_region"] = _("This is too long: at most %(num)d characters.") % {"num": plans.MAX_REGION}
    if errors:
        return await _mine(request, values=values, errors=errors, status=400)
    return await _changed(request, lambda s, me: plans.set_release(s, me, day, values["release_region"],
                                                                   today=today, now=utcnow()),
                          "/plan?done=release", f"release {day.isoformat() if day else 'date unknown'} "
                                                f"in {values['release_region'] or 'no region'}")


# -- education staff who support inmates ------------------------------------------------------------------------

async def _supported(request: web.Request, *, values: dict[str, str] | None = None,
                     errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    me = staff_of(request).username
    rows = await read(request.app[KERNEL], lambda s: plans.supported_by(s, me))
    done = STAFF_DONE.get(request.query.get("done", ""))
    return render(request, "resources/plan_staff.html", {
        "title": _("Release plans"), "rows": rows, "values": values or {}, "errors": errors or {},
        "release": {r.number: _day(r.release_date, request) for r in rows if r.release_date},
        "done": _(done) if done and not errors else "",
        "message": _("Nothing was changed. Correct the field marked below.") if errors else ""}, status=status)


@routes.get("/resources-admin/plans", name="plans-admin")
@staff(StaffRole.EDUCATION)
async def supported(request: web.Request) -> web.Response:
    return await _supported(request)


@routes.post("/resources-admin/plans", name="plans-support")
@staff(StaffRole.EDUCATION)
async def support(request: web.Request) -> web.Response:
    by, address = acting(request)
    number = str((await request.post()).get("number", "")).strip()
    if not number:
        return await _supported(request, values={"number": number}, status=400,
                                errors={"number": _("Give the inmate's number.")})
    kernel = request.app[KERNEL]

    def work(session: Session) -> tuple[str, bool]:
        inmate, new = plans.add_supporter(session, number, by, by=by, now=utcnow())
        return inmate.number, new

    try:
        found, new = await change(kernel, work)
    except (NotFound, InvalidInput) as exc:
        text = _("No inmate has this number.") if isinstance(exc, NotFound) else _(
            "Only education staff can support an inmate's release.")
        return await _supported(request, values={"number": number}, errors={"number": text}, status=400)
    if new:
        await note(kernel, Tag.RESOURCES_SUPPORTER_ADDED, by, f"{by} supports inmate {found} and may read the plan",
                   address=address)
    raise web.HTTPSeeOther(f"/resources-admin/plans?done=added#inmate-{found}")


@routes.post("/resources-admin/plans/{number}/remove", name="plans-unsupport")
@staff(StaffRole.EDUCATION)
async def unsupport(request: web.Request) -> web.Response:
    by, address = acting(request)
    number = request.match_info["number"]
    kernel = request.app[KERNEL]
    try:
        found = await change(kernel, lambda s: plans.remove_supporter(s, number, by).number)
    except NotFound:
        raise web.HTTPNotFound(text=_("You do not support this inmate.")) from None
    await note(kernel, Tag.RESOURCES_SUPPORTER_REMOVED, by, f"{by} no longer supports inmate {found}",
               address=address)
    raise web.HTTPSeeOther("/resources-admin/plans?done=removed")


async def _opened(request: web.Request, what: str) -> PlanPage | None:
    """The plan for a supporter, its opening recorded (PlanView and audit); None, and a refusal on the audit
    record, for anyone else."""
    who, (by, address) = staff_of(request), acting(request)
    number, today, kernel = request.match_info["number"], facility_today(request), request.app[KERNEL]
    tag = Tag.RESOURCES_PLAN_PRINTED if what == "pdf" else Tag.RESOURCES_PLAN_VIEWED

    def work(session: Session) -> PlanPage | None:
        try:
            inmate_id = find_inmate(session, number).id
        except NotFound:
            return None
        if not plans.may_read(session, who.username, who.roles, inmate_id):
            return None
        plans.record_view(session, inmate_id, who.username, what, now=utcnow())
        return plans.page(session, inmate_id, today=today)

    view = await change(kernel, work)
    if view is None:
        await note(kernel, tag, by, f"plan of {number[:64]} ({what}): refused, {by} does not support the inmate",
                   address=address, path=request.path, decision="deny")
        return None
    await note(kernel, tag, by, f"plan of {view.inmate_number} ({what}) read by {by}", address=address,
               path=request.path)
    return view


def _refused(request: web.Request) -> web.Response:
    return render(request, "errors/error.html", {
        "title": _("You cannot open this page"),
        "message": _("Only staff who support this inmate can read their plan. Add the inmate on the page Release "
                     "plans to support them.")}, status=403)


@routes.get("/resources-admin/plans/{number}", name="plans-read")
@staff(StaffRole.EDUCATION)
async def read_plan(request: web.Request) -> web.Response:
    view = await _opened(request, "page")
    if view is None:
        return _refused(request)
    return render(request, "resources/plan_read.html", {
        "title": _("Release plan of %(name)s (%(number)s)") % {"name": view.inmate_name,
                                                               "number": view.inmate_number},
        "editable": False, "values": {}, "errors": {}, **_context(view, request)})


@routes.get("/resources-admin/plans/{number}/plan.pdf", name="plans-pdf")
@staff(StaffRole.EDUCATION)
async def read_pdf(request: web.Request) -> web.Response:
    view = await _opened(request, "pdf")
    if view is None:
        return _refused(request)
    return await _pdf(_in(view.language, lambda: _document(view, request)), view)
