"""Learning for education staff: courses (import a package, publish a version), who may take them, enrolments of
an inmate or a group with dates, requests to accept or refuse, and reports with their CSV.

The same rules as `gatehouse course ...` (`gatehouse.learning`); every change is recorded under the staff
member's name, and an enrolment or a withdrawal is announced so the course's sites open or close on every node.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate, StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.learning import authoring, awards, catalog, content, enrolment, lessons, record, reports
from gatehouse.learning.models import Course, CourseVersion, Enrolment, IssuedCertificate
from gatehouse.learning.package import Course as Course_
from gatehouse.learning.package import PackageError, Site, load_package
from portal import i18n
from portal.access import acting, staff
from portal.auth.services import announce
from portal.auth.services import record as services_record
from portal.i18n import N_, _
from portal.keys import KERNEL
from portal.layout import facility_zone, render
from portal.learning import services
from portal.learning.services import MEDIA_POLICY, change, read
from portal.review import charts

routes = web.RouteTableDef()
education = staff(StaffRole.EDUCATION)
DONE = {"imported": N_("The course was imported."),
        "published": N_("The version is published: new enrolments get it."),
        "enrolled": N_("Enrolled: the course's sites are open to them now."),
        "withdrawn": N_("Withdrawn: the course's sites are closed to them now."),
        "groups": N_("Who may take the course was saved."), "excluded": N_("The exclusion was recorded."),
        "included": N_("The exclusion was removed."), "accepted": N_("The request was accepted."),
        "refused": N_("The request was refused; the inmate sees your reason."),
        "revoked": N_("The certificate was revoked; verification says so from now on.")}


@dataclass(frozen=True, slots=True)
class Row:
    slug: str
    title: str
    version: int
    status: str
    language: str
    active: int
    completed: int
    requested: int


def _courses(session: Session) -> list[Row]:
    counts: dict[tuple[int, str], int] = {
        (course_id, status): n for course_id, status, n in session.execute(
            select(Enrolment.course_id, Enrolment.status, func.count()).group_by(Enrolment.course_id,
                                                                                 Enrolment.status))}
    rows = []
    for course in session.scalars(select(Course).order_by(Course.slug)):
        versions = list(course.versions)
        shown = next((v for v in versions if v.status == "published"), versions[-1] if versions else None)
        if shown is None:
            continue
        rows.append(Row(course.slug, shown.title, shown.number, shown.status, shown.language,
                        counts.get((course.id, "active"), 0), counts.get((course.id, "completed"), 0),
                        counts.get((course.id, "requested"), 0)))
    return rows


async def _act(request: web.Request, tag: Tag, work: Callable[[Session, str], enrolment.Outcome | str]) -> str:
    """Run `work(session, actor)` in one transaction, record it, announce its events; returns its summary."""
    kernel = request.app[KERNEL]
    actor, address = acting(request)
    outcome = await change(kernel, lambda s: work(s, actor))
    summary = outcome if isinstance(outcome, str) else outcome.summary
    await services_record(kernel, AuditEvent(tag, "portal", actor=actor, client_addr=address, decision="allow",
                                    reason=summary))
    if isinstance(outcome, enrolment.Outcome):
        for row in outcome.enrolments:
            if tag in (Tag.LEARNING_ENROLMENT_ADDED, Tag.LEARNING_ENROLMENT_WITHDRAWN):
                opened = tag is Tag.LEARNING_ENROLMENT_ADDED
                await services_record(kernel, AuditEvent(
                    Tag.LEARNING_GRANT_OPENED if opened else Tag.LEARNING_GRANT_CLOSED, "portal", actor=actor,
                    client_addr=address, decision="allow" if opened else "deny",
                    reason=f"{row.inmate.number}: the sites of course {row.course.slug} "
                           + ("open" if opened else "close")))
        for event in outcome.events:
            await announce(kernel, event)
    return summary


def _clean(value: Any) -> str:
    return " ".join(str(value or "").split())


# -- courses -----------------------------------------------------------------------------------------------------

async def _courses_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    rows = await read(request.app[KERNEL], _courses)
    done = DONE.get(request.query.get("done", ""))
    return render(request, "learning/teach.html", {"rows": rows, "done": _(done) if done else "",
                                                   "problems": context.pop("problems", []), **context}, status)


@routes.get("/teach", name="teach")
@education
async def courses(request: web.Request) -> web.Response:
    return await _courses_page(request)


@routes.post("/teach/import", name="teach-package")
@education
async def import_package(request: web.Request) -> web.Response:
    data = await request.post()
    upload = data.get("package")
    if not isinstance(upload, web.FileField):
        return await _courses_page(request, 400, message=_("Choose a course package (.zip) to import."))
    body = upload.file.read()
    name = Path(upload.filename or "course.zip").name
    draft = data.get("draft") == "1"

    def load() -> Any:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / (name if name.endswith(".zip") else name + ".zip")
            path.write_bytes(body)
            return load_package(path)

    try:
        course = await asyncio.to_thread(load)

        def work(session: Session, actor: str) -> str:
            made = catalog.import_course(session, course, by=actor, now=utcnow(), publish=not draft)
            return f"course {course.id} version {made.number} ({made.status}); from {name}"

        await _act(request, Tag.LEARNING_COURSE_IMPORTED, work)
    except PackageError as exc:
        return await _courses_page(request, 400, problems=exc.errors, message=_(
            "Nothing was imported: the package has %(num)d problems. Mend them and import it again.")
            % {"num": len(exc.errors)})
    raise web.HTTPSeeOther("/teach?done=imported")


@dataclass(frozen=True, slots=True)
class CoursePage:
    slug: str
    title: str
    versions: list[CourseVersion]
    groups: list[str]
    exclusions: list[tuple[str, str, str]]
    lines: list[reports.Line]
    certificates: dict[str, tuple[str, str, bool]]
    """Inmate number -> (certificate id, short code, revoked)."""
    sites: tuple[Site, ...]
    """What the published (else the newest) version says the course needs."""


def _course_page(session: Session, slug: str, group: str) -> CoursePage:
    versions = catalog.versions(session, slug)
    course = versions[0].course
    certs = {row.enrolment.inmate.number: (row.id, row.short_code, row.revoked_at is not None)
             for row in session.scalars(select(IssuedCertificate).join(Enrolment).where(
                 Enrolment.course_id == course.id))}
    current = next((v for v in versions if v.status == "published"), versions[-1])
    return CoursePage(slug, current.title, versions, list(course.eligible_groups),
                      [(e.inmate_number, e.reason, e.created_by) for e in _exclusions(session, slug)],
                      reports.course_lines(session, slug, group), certs, catalog.course_of(current).sites)


@dataclass(frozen=True, slots=True)
class Excluded:
    inmate_number: str
    reason: str
    created_by: str


def _exclusions(session: Session, slug: str) -> list[Excluded]:
    found = []
    for row in enrolment.exclusions(session, slug):
        inmate = session.get(Inmate, row.inmate_id)
        found.append(Excluded(inmate.number if inmate else "?", row.reason, row.created_by))
    return found


async def _course(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    slug, group = request.match_info["slug"], request.query.get("group", "")
    try:
        page = await read(request.app[KERNEL], lambda s: _course_page(s, slug, group))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such course.")) from None
    if request.query.get("format") == "csv":
        return web.Response(text=reports.to_csv(page.lines), content_type="text/csv", charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="{slug}-progress.csv"'})
    hard = await read(request.app[KERNEL], lambda s: reports.hardest(s, slug))
    sites = services.site_states(request.app[KERNEL].policies.snapshot, page.sites, services.course_subject(slug),
                                 utcnow())
    bands = reports.progress_bands(page.lines)
    charts_shown = {
        "progress": charts.horizontal_bars(
            "progress", [(band, n, 0) for band, n in bands], title=_("Learners by progress"),
            description=_("How many learners have done how much of the course; the table below has each one."),
            allowed_label=_("learners"), denied_label=""),
        "hard": charts.horizontal_bars(
            "hard", [(h.prompt, h.right, h.answered - h.right) for h in hard], title=_("Hardest questions"),
            description=_("Right and wrong answers to the questions answered wrong most often."),
            allowed_label=_("right"), denied_label=_("wrong")) if hard else ""}
    done = DONE.get(request.query.get("done", ""))
    return render(request, "learning/teach_course.html", {
        "page": page, "hard": hard, "group": group, "sites": sites, "bands": bands, "charts": charts_shown,
        "done": _(done) if done else "",
        "errors": context.pop("errors", {}), "values": context.pop("values", {}), **context}, status)


@routes.get("/teach/courses/{slug}", name="teach-course")
@education
async def course(request: web.Request) -> web.Response:
    return await _course(request)


async def _do(request: web.Request, tag: Tag, work: Callable[[Session, str], Any], done: str,
              values: dict[str, str] | None = None) -> web.Response:
    slug = request.match_info["slug"]
    try:
        await _act(request, tag, work)
    except (Conflict, InvalidInput, NotFound) as exc:
        return await _course(request, 409, message=_("Nothing was changed: %(problem)s") % {"problem": str(exc)},
                             values=values or {})
    raise web.HTTPSeeOther(f"/teach/courses/{slug}?done={done}")


@routes.post("/teach/courses/{slug}/publish", name="teach-publish")
@education
async def publish(request: web.Request) -> web.Response:
    data = await request.post()
    slug = request.match_info["slug"]
    try:
        number = int(str(data.get("version", "")))
    except ValueError:
        raise web.HTTPBadRequest(text=_("Choose a version to publish.")) from None

    def work(session: Session, actor: str) -> str:
        chosen = next((v for v in catalog.versions(session, slug) if v.number == number), None)
        if chosen is None:
            raise NotFound(f"the course has no version {number}")
        catalog.publish(session, chosen.id, by=actor, now=utcnow())
        return f"course {slug} version {number} published"
    return await _do(request, Tag.LEARNING_COURSE_PUBLISHED, work, "published")


@routes.post("/teach/courses/{slug}/enrol", name="teach-enrol")
@education
async def enrol(request: web.Request) -> web.Response:
    data = await request.post()
    slug, zone = request.match_info["slug"], facility_zone(request)
    who, number, group = str(data.get("who", "inmate")), _clean(data.get("number")).upper(), _clean(data.get("group"))
    starts, until = _clean(data.get("starts")), _clean(data.get("until"))
    values = {"who": who, "number": number, "group": group, "starts": starts, "until": until}
    errors: dict[str, str] = {}
    if who == "group" and not group:
        errors["group"] = _("Enter the group.")
    if who != "group" and not number:
        errors["number"] = _("Enter the inmate number.")
    try:
        starts_at = enrolment.day_start(starts, zone, "first day") if starts else None
    except InvalidInput:
        errors["starts"] = _("Write the date as YYYY-MM-DD.")
    try:
        ends_at = enrolment.day_start(until, zone, "last day", after=True) if until else None
    except InvalidInput:
        errors["until"] = _("Write the date as YYYY-MM-DD.")
    if errors:
        return await _course(request, 400, errors=errors, values=values)

    def work(session: Session, actor: str) -> enrolment.Outcome:
        if who == "group":
            return enrolment.enrol_group(session, course=slug, group=group, by=actor, now=utcnow(),
                                         starts_at=starts_at, ends_at=ends_at)
        return enrolment.enrol(session, course=slug, inmate=number, by=actor, now=utcnow(), starts_at=starts_at,
                               ends_at=ends_at)
    return await _do(request, Tag.LEARNING_ENROLMENT_ADDED, work, "enrolled", values)


@routes.post("/teach/courses/{slug}/withdraw", name="teach-withdraw")
@education
async def withdraw(request: web.Request) -> web.Response:
    data = await request.post()
    slug, number, reason = request.match_info["slug"], _clean(data.get("number")), _clean(data.get("reason"))
    if not reason:
        return await _course(request, 400, errors={f"reason-{number}": _("Give a reason: it is recorded.")})
    return await _do(request, Tag.LEARNING_ENROLMENT_WITHDRAWN, lambda s, actor: enrolment.withdraw(
        s, course=slug, inmate=number, reason=reason, by=actor, now=utcnow()), "withdrawn")


@routes.post("/teach/courses/{slug}/groups", name="teach-groups")
@education
async def groups(request: web.Request) -> web.Response:
    data = await request.post()
    slug = request.match_info["slug"]
    chosen = sorted({g.strip().lower() for g in str(data.get("groups", "")).replace(";", ",").split(",") if g.strip()})

    def work(session: Session, actor: str) -> str:
        enrolment.set_eligible_groups(session, course=slug, groups=chosen)
        return f"course {slug} open to " + (", ".join(chosen) if chosen else "everyone")
    return await _do(request, Tag.LEARNING_ELIGIBILITY_CHANGED, work, "groups")


@routes.post("/teach/courses/{slug}/exclude", name="teach-exclude")
@education
async def exclude(request: web.Request) -> web.Response:
    data = await request.post()
    slug, number, reason = request.match_info["slug"], _clean(data.get("number")).upper(), _clean(data.get("reason"))
    errors = {k: v for k, v in (("exclude_number", _("Enter the inmate number.") if not number else ""),
                                ("exclude_reason", _("Give a reason: staff see it at enrolment.") if not reason
                                 else "")) if v}
    if errors:
        return await _course(request, 400, errors=errors, values={"exclude_number": number})

    def work(session: Session, actor: str) -> str:
        enrolment.exclude(session, course=slug, inmate=number, reason=reason, by=actor, now=utcnow())
        return f"{number} excluded from {slug}: {reason}"
    return await _do(request, Tag.LEARNING_ELIGIBILITY_CHANGED, work, "excluded", {"exclude_number": number})


@routes.post("/teach/courses/{slug}/include", name="teach-include")
@education
async def include(request: web.Request) -> web.Response:
    slug, number = request.match_info["slug"], _clean((await request.post()).get("number"))

    def work(session: Session, actor: str) -> str:
        enrolment.include(session, course=slug, inmate=number)
        return f"{number} no longer excluded from {slug}"
    return await _do(request, Tag.LEARNING_ELIGIBILITY_CHANGED, work, "included")


@routes.post("/teach/courses/{slug}/revoke", name="teach-revoke")
@education
async def revoke(request: web.Request) -> web.Response:
    data = await request.post()
    certificate_id, reason = _clean(data.get("certificate")), _clean(data.get("reason"))
    if not reason:
        return await _course(request, 400, errors={
            f"revoke-{certificate_id}": _("Give a reason: verification shows it.")})

    def work(session: Session, actor: str) -> str:
        row = awards.revoke(session, certificate_id, reason=reason, by=actor, now=utcnow())
        return f"certificate {row.id} of {row.enrolment.inmate.number} revoked: {reason}"
    return await _do(request, Tag.LEARNING_CERTIFICATE_REVOKED, work, "revoked")


# -- requests ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Asked:
    id: int
    number: str
    name: str
    groups: str
    slug: str
    title: str
    asked_at: str
    problems: list[str]


def _requests(session: Session, zone: ZoneInfo) -> list[Asked]:
    found = []
    for row in enrolment.requests(session):
        why = enrolment.eligibility(session, row.course.slug, row.inmate.number)
        versions = catalog.versions(session, row.course.slug)
        title = next((v.title for v in versions if v.status == "published"), versions[-1].title)
        found.append(Asked(row.id, row.inmate.number, row.inmate.name, ", ".join(sorted(row.inmate.group_names)),
                           row.course.slug, title,
                           i18n.format_datetime(row.requested_at or row.created_at, zone, "short"), why.reasons))
    return found


async def _requests_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    zone = facility_zone(request)
    rows = await read(request.app[KERNEL], lambda s: _requests(s, zone))
    done = DONE.get(request.query.get("done", ""))
    return render(request, "learning/teach_requests.html", {
        "rows": rows, "done": _(done) if done else "", "errors": context.pop("errors", {}), **context}, status)


@routes.get("/teach/requests", name="teach-requests")
@education
async def requests_page(request: web.Request) -> web.Response:
    return await _requests_page(request)


@routes.post("/teach/requests/{id}", name="teach-answer")
@education
async def answer_request(request: web.Request) -> web.Response:
    data = await request.post()
    try:
        enrolment_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    reason = _clean(data.get(f"reason-{enrolment_id}"))
    accept = data.get("answer") == "accept"
    if not accept and not reason:
        return await _requests_page(request, 400, errors={
            f"reason-{enrolment_id}": _("Give a reason: the inmate sees it.")})
    try:
        if accept:
            await _act(request, Tag.LEARNING_ENROLMENT_ADDED, lambda s, actor: enrolment.accept(
                s, enrolment_id, by=actor, now=utcnow()))
        else:
            await _act(request, Tag.LEARNING_ENROLMENT_REFUSED, lambda s, actor: enrolment.refuse(
                s, enrolment_id, reason=reason, by=actor, now=utcnow()))
    except (Conflict, NotFound, InvalidInput) as exc:
        return await _requests_page(request, 409, message=_("Nothing was changed: %(problem)s") % {
            "problem": str(exc)})
    raise web.HTTPSeeOther(f"/teach/requests?done={'accepted' if accept else 'refused'}")


@routes.get("/teach/inmates/{number}/record.json", name="teach-record")
@education
async def learning_record(request: web.Request) -> web.Response:
    """The inmate's signed learning record, for release or transfer (another facility imports it with
    `gatehouse certificate record-import` and this facility's published keys)."""
    number = request.match_info["number"].upper()
    kernel = request.app[KERNEL]
    try:
        data = await read(kernel, lambda s: record.export_record(s, kernel.settings, number, now=utcnow()))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no inmate with this number.")) from None
    actor, address = acting(request)
    await services_record(kernel, AuditEvent(Tag.LEARNING_RECORD_EXPORTED, "portal", actor=actor,
                                             client_addr=address, decision="allow",
                                             reason=f"learning record of {number}"))
    return web.Response(body=data, headers={"Content-Type": "application/json",
                                            "Content-Disposition": f'attachment; filename="{number}-record.json"'})


@routes.get("/teach/inmates/{number}", name="teach-inmate")
@education
async def inmate_report(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    try:
        lines = await read(request.app[KERNEL], lambda s: reports.inmate_lines(s, number))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no inmate with this number.")) from None
    if request.query.get("format") == "csv":
        return web.Response(text=reports.to_csv(lines), content_type="text/csv", charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="{number}-learning.csv"'})
    return render(request, "learning/teach_inmate.html", {"number": number.upper(), "lines": lines})



# -- authoring: a draft edited file by file --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DraftPage:
    slug: str
    version: CourseVersion
    course: Course_
    files: list[str]
    lesson_numbers: dict[str, int]


def _draft_page(session: Session, slug: str) -> DraftPage | None:
    waiting = [v for v in catalog.versions(session, slug) if v.status == "draft"]
    if not waiting:
        return None
    version = waiting[-1]
    course = catalog.course_of(version)
    return DraftPage(slug, version, course, sorted(authoring.files_of(session, version)),
                     {lesson.file: n for n, lesson in enumerate(content.lessons_of(course), 1)})


@routes.get("/teach/courses/{slug}/draft", name="teach-draft")
@education
async def draft_page(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    try:
        page = await read(request.app[KERNEL], lambda s: _draft_page(s, slug))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such course.")) from None
    done = {"made": _("A draft was made from the published version. Learners see nothing of it until you publish "
                      "it."), "saved": _("Saved in the draft."), "moved": _("The lesson was moved.")}.get(
        request.query.get("done", ""), "")
    return render(request, "learning/teach_draft.html", {"slug": slug, "page": page, "done": done,
                                                         "message": request.query.get("problem", "")})


@routes.post("/teach/courses/{slug}/draft", name="teach-draft-make")
@education
async def make_draft(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]

    def work(session: Session, actor: str) -> str:
        made = authoring.draft(session, slug, by=actor, now=utcnow())
        return f"course {slug}: draft version {made.number}"
    try:
        await _act(request, Tag.LEARNING_COURSE_EDITED, work)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such course.")) from None
    raise web.HTTPSeeOther(f"/teach/courses/{slug}/draft?done=made")


async def _editor(request: web.Request, file: str, text: str | None = None, status: int = 200,
                  problems: list[str] | None = None, preview: str = "", message: str = "") -> web.Response:
    slug = request.match_info["slug"]
    page = await read(request.app[KERNEL], lambda s: _draft_page(s, slug))
    if page is None:
        raise web.HTTPSeeOther(f"/teach/courses/{slug}/draft")
    if text is None:
        version_id = page.version.id
        files = await read(request.app[KERNEL], lambda s: authoring.files_of(s, catalog.version(s, version_id)))
        if file not in files:
            raise web.HTTPNotFound(text=_("The course has no such file."))
        text = files[file]
    return render(request, "learning/teach_edit.html", {
        "slug": slug, "page": page, "file": file, "text": text, "problems": problems or [], "preview": preview,
        "message": message}, status)


@routes.get("/teach/courses/{slug}/draft/edit", name="teach-edit")
@education
async def edit_form(request: web.Request) -> web.Response:
    return await _editor(request, request.query.get("file", "course.yaml"))


@routes.post("/teach/courses/{slug}/draft/edit", name="teach-edit-save")
@education
async def edit_save(request: web.Request) -> web.Response:
    """Preview shows the lesson as learners will see it, or the package's problems; Save stores the file only if
    the whole package is still sound. Either way the text stays in the editor: nothing typed is lost."""
    slug = request.match_info["slug"]
    data = await request.post()
    file, text = str(data.get("file", "")), str(data.get("text", ""))
    page = await read(request.app[KERNEL], lambda s: _draft_page(s, slug))
    if page is None:
        raise web.HTTPSeeOther(f"/teach/courses/{slug}/draft")
    version_id = page.version.id
    try:
        if data.get("action") == "preview":
            await read(request.app[KERNEL], lambda s: authoring.check(s, catalog.version(s, version_id), {file: text}))
            shown = lessons.render_lesson(text, lambda path: f"/teach/courses/{slug}/draft/{path}") \
                if file.endswith(".md") else ""
            return await _editor(request, file, text, preview=shown, message="")
        def work(session: Session, actor: str) -> str:
            saved = authoring.edit(session, version_id, file, text)
            return f"course {slug} draft version {saved.number}: {file} saved"
        await _act(request, Tag.LEARNING_COURSE_EDITED, work)
    except PackageError as exc:
        return await _editor(request, file, text, 400, exc.errors, message=_(
            "Not saved: the course would have %(num)d problems. Mend them and save again.") % {"num": len(exc.errors)})
    except (Conflict, InvalidInput, NotFound) as exc:
        return await _editor(request, file, text, 409, message=_("Not saved: %(problem)s") % {"problem": str(exc)})
    raise web.HTTPSeeOther(f"/teach/courses/{slug}/draft?done=saved")


@routes.post("/teach/courses/{slug}/draft/move", name="teach-move")
@education
async def move(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    data = await request.post()
    try:
        number, delta = int(str(data.get("lesson", ""))), -1 if data.get("direction") == "up" else 1
        version_id = int(str(data.get("version", "")))
    except ValueError:
        raise web.HTTPBadRequest(text=_("Choose a lesson to move.")) from None
    def work(session: Session, actor: str) -> str:
        moved = authoring.move_lesson(session, version_id, number, delta)
        return f"course {slug} draft version {moved.number}: lesson {number} moved {'up' if delta < 0 else 'down'}"
    try:
        await _act(request, Tag.LEARNING_COURSE_EDITED, work)
    except (Conflict, InvalidInput, NotFound) as exc:
        raise web.HTTPSeeOther(f"/teach/courses/{slug}/draft?problem={quote(str(exc))}") from None
    raise web.HTTPSeeOther(f"/teach/courses/{slug}/draft?done=moved")


@routes.get("/teach/courses/{slug}/draft/media/{path:.+}", name="teach-draft-media")
@education
async def draft_media(request: web.Request) -> web.Response:
    """The draft's media, for the preview (staff only; learners get theirs through their enrolment)."""
    slug, path = request.match_info["slug"], "media/" + request.match_info["path"]

    def work(session: Session) -> tuple[str, bytes] | None:
        page = _draft_page(session, slug)
        found = None if page is None else catalog.media(session, page.version.id, path)
        return None if found is None else (found.content_type, found.data)
    got = await read(request.app[KERNEL], work)
    if got is None:
        raise web.HTTPNotFound(text=_("The course has no such file."))
    return web.Response(body=got[1], headers={"Content-Type": got[0], "Cache-Control": "private, max-age=600",
                                              "Content-Security-Policy": MEDIA_POLICY})
