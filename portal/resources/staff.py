"""The directory for education staff: the list with its filters, the stale entries and the broken links, an HSDS
feed imported by upload, and each entry edited, marked checked, and its website opened or closed.

A website opens through curation's four eyes, never from here: the buttons make proposals (one rule to read the
site, one more for the form paths named), the entry then says it waits for approval with a link to each proposal,
and inmates get a link only once a second staff member with the role it needs has approved. The domain's messages
are English; each field's problem is shown beside it in the reader's language (`_problem`). An upload is read
whole before anything is written: every problem is listed as `FILE:LINE: message` and nothing is imported.
"""

from __future__ import annotations

import asyncio
import io
import json
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.curation import proposals
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.kernel import Kernel
from gatehouse.resources import directory, entries, hsds
from gatehouse.resources.entries import EDITABLE, STATUSES, WebsiteState
from gatehouse.resources.models import LinkState, Service, Website
from gatehouse.resources.search import Filters, search
from portal import i18n
from portal.access import acting, staff
from portal.auth.services import record
from portal.i18n import N_, _
from portal.keys import KERNEL
from portal.layout import facility_today, facility_zone, render, safe_next
from portal.resources import views, words
from portal.transactions import change, read

SHOWN_PROBLEMS = 500
"""Problems of an upload listed on the page; the rest are counted (the CLI prints them all)."""
routes = web.RouteTableDef()
education = staff(StaffRole.EDUCATION)
PAGE = 50
MAX_UNPACKED = 16 * 1024 * 1024
"""An uploaded zip that unpacks to more is refused before anything is written (a zip bomb, or the wrong file). The
reader holds a feed in memory at some 40 times its size (an 8 MB JSON takes 300 MB), so a bigger one is the
command's to import."""
MAX_LINES = 200_000
"""Lines in all the unpacked files: the reader keeps 1 to 1.5 kB for each CSV row however short, so 64 MB of
"s,o,n,active" rows (a zip of a few hundred kB) took 5 GB."""
MAX_MEMBERS = 200
CHUNK = 1024 * 1024
TEXTAREAS = frozenset({"description", "application_process", "fees_description", "eligibility_description"})
LABELS = {"name": N_("Name"), "alternate_name": N_("Other name"), "description": N_("Description"),
          "url": N_("Website"), "email": N_("E-mail"), "status": N_("Status"),
          "application_process": N_("How to apply"), "fees_description": N_("Fees"),
          "eligibility_description": N_("Who can go")}
STATUS_NAMES = {"active": N_("active"), "inactive": N_("inactive"), "defunct": N_("closed for good"),
                "temporarily closed": N_("temporarily closed")}
LINK_NAMES = {LinkState.UNCHECKED.value: N_("not visited yet"), LinkState.OK.value: N_("answers"),
              LinkState.REDIRECTED.value: N_("moved"), LinkState.DEAD.value: N_("does not answer")}
MODES = {Website.CLOSED.value: N_("Closed: inmates see the address as text"),
         Website.READ.value: N_("Open for reading (GET and HEAD) to every inmate"),
         Website.FORMS.value: N_("Open for reading, and for sending the forms at the paths below")}
DONE = {"saved": N_("The entry was saved."), "unchanged": N_("Nothing was changed."),
        "checked": N_("Marked as checked today."),
        "proposed": N_("Proposed. The website changes for inmates when a second staff member approves it.")}
VIEWS = ("all", "stale", "links")


def _number_of(query: Any, key: str) -> int:
    given = str(query.get(key, ""))
    return int(given) if given.isascii() and given.isdigit() and len(given) <= 9 else 0  # "²" is a digit to isdigit


def _frame(request: web.Request, **context: Any) -> dict[str, Any]:
    zone = facility_zone(request)

    def when(moment: datetime | None) -> str:
        return i18n.format_datetime(moment, zone, "short") if moment is not None else ""
    done = DONE.get(request.query.get("done", ""))
    return {"when": when, "checked": words.checked_words, "category_name": words.category_name,
            "status_name": lambda s: _(STATUS_NAMES[s]) if s in STATUS_NAMES else s,
            "link_name": lambda s: _(LINK_NAMES[s]) if s in LINK_NAMES else s,
            "done": _(done) if done else "", "message": "", "errors": {}, **context}


# -- the list ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    id: str
    name: str
    organization: str
    city: str
    status: str
    assured: date | None
    link_state: str
    link_detail: str
    website: str


def _row(service: Service) -> Row:
    return Row(service.id, service.name, service.organization.name, views.first_city(service), service.status,
               service.assured_date, service.link_state, service.link_detail, service.website)


def broken_links(session: Session) -> list[Service]:
    """Entries whose website the last link check found dead or moved, the dead first."""
    return list(session.scalars(
        select(Service).where(Service.link_state.in_((LinkState.DEAD.value, LinkState.REDIRECTED.value)))
        .order_by(Service.link_state, Service.name)))


@dataclass(frozen=True, slots=True)
class Listed:
    rows: list[Row]
    more: bool
    choices: views.Choices


async def _list_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    kernel = request.app[KERNEL]
    shown = request.query.get("view", "all")
    shown = shown if shown in VIEWS else "all"
    query = " ".join(request.query.get("q", "").split())[:views.MAX_QUERY]
    filters, offset, language = views.filters_of(request.query), views.offset_of(request.query), i18n.current()
    day, days = facility_today(request), int(kernel.settings["resources.stale_days"])

    def work(session: Session) -> Listed:
        if shown == "stale":
            found = entries.stale(session, day, days)
        elif shown == "links":
            found = broken_links(session)
        else:
            found = search(session, query, language, filters, limit=PAGE + 1, offset=offset, include_inactive=True)
        more = shown == "all" and len(found) > PAGE
        return Listed([_row(s) for s in (found[:PAGE] if shown == "all" else found)], more, views.choices(session))

    listed = await read(kernel, work)
    previous, following = views.page_links("/resources-admin", request.query, offset, len(listed.rows),
                                           listed.more, PAGE) if shown == "all" else ("", "")
    imported = ({k: _number_of(request.query, k) for k in ("added", "changed", "same", "orgs")}
                if request.query.get("done") == "imported" else None)
    return render(request, "resources/admin.html", _frame(request, **{
        "title": _("Directory of services"), "view": shown, "rows": listed.rows, "choices": listed.choices,
        "query": query, "filters": filters, "asked": bool(query) or filters != Filters(), "previous": previous,
        "next_page": following, "today": day, "stale_days": days, "imported": imported, "problems": [],
        "shown_problems": SHOWN_PROBLEMS,
        "feed_name": "", **context}), status)


@routes.get("/resources-admin", name="resources-admin")
@education
async def overview(request: web.Request) -> web.Response:
    return await _list_page(request)


# -- import ------------------------------------------------------------------------------------------------------

def unpack(name: str, body: bytes, folder: Path) -> tuple[Path | None, list[str]]:
    """Where the uploaded feed is to be read from, once written under `folder`: a .json file as it is; a .zip of a
    data package unpacked (its datapackage.json at the top or in one folder). Else the problems, `FILE:0: ...`."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".json":
        path = folder / "feed.json" if name in ("", ".json") else folder / PurePosixPath(name).name
        path.write_bytes(body)
        return path, []
    if suffix != ".zip":
        return None, [f"{name or '?'}:0: not a .zip of an HSDS data package nor an HSDS .json file"]
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile as exc:
        return None, [f"{name}:0: not a zip file ({exc})"]
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNPACKED:
            return None, [f"{name}:0: more than {MAX_MEMBERS} files or {MAX_UNPACKED} bytes unpacked; import a "
                          "feed that large with the command gatehouse resources import"]
        problems = []
        for member in members:
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                problems.append(f"{member.filename}:0: a path outside the package")
            elif stat.S_ISLNK(member.external_attr >> 16):
                problems.append(f"{member.filename}:0: a symbolic link; put the file itself in the zip")
        if problems:
            return None, problems
        lines = 0
        for member in members:
            target = folder.joinpath(*PurePosixPath(member.filename.replace("\\", "/")).parts)
            try:
                lines += _extract(archive, member, target, MAX_LINES - lines)
            except _TooLong:
                return None, [f"{name}:0: more than {MAX_LINES} lines unpacked; import a feed that large with the "
                              "command gatehouse resources import"]
            except RuntimeError:  # how zipfile says a member needs a password
                return None, [f"{member.filename}:0: encrypted; zip the package without a password"]
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
                return None, [f"{member.filename}:0: cannot be unpacked ({exc}); zip the package again"]
    indexes = sorted(folder.rglob("datapackage.json"), key=lambda p: len(p.parts))
    if indexes and len(indexes[0].relative_to(folder).parts) <= 2:
        return indexes[0].parent, []
    documents = [p for p in folder.rglob("*.json")]
    if len(documents) == 1:
        return documents[0], []
    return None, [f"{name}:0: no datapackage.json in the zip; zip the data package's folder, or its files"]


class _TooLong(Exception):
    """More lines than an upload may unpack to."""


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, lines_left: int) -> int:
    """One member written in chunks (a whole read inflates as much as the compressed data holds, gigabytes from a
    small upload, before it stops at the size the archive declares, which alone was checked); its lines."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = 0
    with archive.open(member) as source, target.open("wb") as out:
        while chunk := source.read(CHUNK):
            lines += chunk.count(b"\n")
            if lines > lines_left:
                raise _TooLong()
            out.write(chunk)
    return lines


@routes.post("/resources-admin/import", name="resources-admin-feed")
@education
async def import_feed(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    data = await request.post()
    upload = data.get("feed")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return await _list_page(request, 400, errors={"feed": _(
            "Choose a file: a .zip of the HSDS data package, or an HSDS .json file.")})
    name = PurePosixPath(upload.filename.replace("\\", "/")).name
    body = upload.file.read()

    def parse() -> tuple[hsds.Directory | None, list[str]]:
        with tempfile.TemporaryDirectory() as folder:
            where, problems = unpack(name, body, Path(folder))
            if where is None:
                return None, problems
            try:
                return hsds.read(where), []
            except hsds.HsdsError as exc:
                return None, [str(p) for p in exc.problems]

    feed, problems = await asyncio.to_thread(parse)
    if feed is None:
        return await _list_page(request, 400, problems=problems, feed_name=name, message=_(
            "Nothing was imported: %(file)s has problems (listed below). Mend them and upload it again.")
            % {"file": name})
    by, address = acting(request)
    done = await change(kernel, lambda session: directory.import_directory(session, feed, now=utcnow()))
    await _note(kernel, Tag.RESOURCES_IMPORTED, by, address, f"{done}; from {name}")
    raise web.HTTPSeeOther(f"/resources-admin?done=imported&added={done.added}&changed={done.changed}"
                           f"&same={done.same}&orgs={done.organizations}")


async def _note(kernel: Kernel, tag: Tag, by: str, address: str, reason: str, host: str = "") -> None:
    await record(kernel, AuditEvent(tag, "portal", actor=by, client_addr=address, host=host, decision="allow",
                                    reason=reason[:8000]))


# -- one entry ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Waiting:
    id: int
    needs: str
    kind: str


@dataclass(frozen=True, slots=True)
class AdminEntry:
    id: str
    name: str
    organization: str
    fields: dict[str, str]
    assured: date | None
    assurer: str
    imported_at: datetime
    updated_by: str
    updated_at: datetime
    link_state: str
    link_detail: str
    link_checked_at: datetime | None
    site: str
    mode: str
    form_paths: tuple[str, ...]
    state: str
    rules: tuple[str, ...]
    waiting: tuple[Waiting, ...]


def _admin_entry(session: Session, service_id: str) -> AdminEntry:
    service = entries.get(session, service_id)
    status = entries.website_status(session, service)
    waiting = tuple(Waiting(p.id, p.needs, p.kind) for p in (proposals.get(session, n) for n in status.waiting))
    return AdminEntry(service.id, service.name, service.organization.name,
                      {name: str(getattr(service, name) or "") for name in EDITABLE}, service.assured_date,
                      service.assurer_email, service.imported_at, service.updated_by, service.updated_at,
                      service.link_state, service.link_detail, service.link_checked_at,
                      service.url or service.organization.website, service.website, tuple(service.form_paths or ()),
                      status.state.value, status.rules, waiting)


def _id(request: web.Request) -> str:
    return request.match_info["id"]


async def _entry_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    try:
        entry = await read(request.app[KERNEL], lambda session: _admin_entry(session, _id(request)))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such entry in the directory.")) from None
    values = {**entry.fields, **context.pop("values", {})}
    return render(request, "resources/admin_service.html", _frame(request, **{
        "title": entry.name, "entry": entry, "values": values, "fields": EDITABLE, "textareas": TEXTAREAS,
        "labels": {k: _(v) for k, v in LABELS.items()},
        "statuses": [(s, _(STATUS_NAMES.get(s, s))) for s in STATUSES],
        "modes": [(m, _(text)) for m, text in MODES.items()], "chosen_mode": context.pop("chosen_mode", entry.mode),
        "paths_text": context.pop("paths_text", "\n".join(entry.form_paths)), "today": facility_today(request),
        "waiting_state": WebsiteState.WAITING.value, **context}), status)


@routes.get("/resources-admin/service/{id}", name="resources-admin-service")
@education
async def entry_page(request: web.Request) -> web.Response:
    return await _entry_page(request)


def _problem(field: str, detail: str) -> str:
    """One of the domain's problems with a field, in the reader's language."""
    if detail.startswith("at most"):
        words = detail.split()
        limit = int(words[2]) if len(words) > 2 and words[2].isdigit() else 0
        return _("This is too long: at most %(num)d characters.") % {"num": limit}
    if field == "name":
        return _("An entry needs a name.")
    if field == "status":
        return _("Choose one of the statuses.")
    if field == "url":
        return _("Give a web address that starts with https:// or http://, or leave it empty.")
    if field == "form_paths" and "must start with" in detail:
        return _("Each form path starts with / (for example /apply).")
    if field == "form_paths":
        return _("Name the paths of the forms to allow, one per line (for example /apply).")
    return detail


def problems_of(message: str) -> dict[str, str]:
    """`field: problem; field: problem` (as the domain raises InvalidInput) by field."""
    found: dict[str, str] = {}
    for part in message.split("; "):
        field, colon, detail = part.partition(": ")
        if colon and (field in EDITABLE or field == "form_paths"):
            found.setdefault(field, _problem(field, detail))
        else:
            found.setdefault("form", part)
    return found


@routes.post("/resources-admin/service/{id}", name="resources-admin-edit")
@education
async def edit(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    data = await request.post()
    given = {name: str(data.get(name, "")).replace("\r\n", "\n") for name in EDITABLE if name in data}
    by, address = acting(request)
    try:
        before, after = await change(kernel, lambda session: entries.edit(session, _id(request), given, by=by,
                                                                          now=utcnow()))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such entry in the directory.")) from None
    except InvalidInput as exc:
        errors = problems_of(str(exc))
        return await _entry_page(request, 400, values=given, errors=errors, message=_(
            "Nothing was saved. Correct the fields marked below; what you typed is kept."))
    if not after:
        raise web.HTTPSeeOther(f"/resources-admin/service/{_id(request)}?done=unchanged")
    await _note(kernel, Tag.RESOURCES_SERVICE_CHANGED, by, address,
                f"{_id(request)}: before {json.dumps(before, ensure_ascii=False, sort_keys=True)}; "
                f"after {json.dumps(after, ensure_ascii=False, sort_keys=True)}")
    raise web.HTTPSeeOther(f"/resources-admin/service/{_id(request)}?done=saved")


@routes.post("/resources-admin/service/{id}/check", name="resources-admin-check")
@education
async def mark_checked(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    data = await request.post()
    by, address = acting(request)
    day = facility_today(request)
    try:
        name = await change(kernel, lambda session: entries.mark_checked(session, _id(request), by=by, today=day,
                                                                         now=utcnow()).name)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such entry in the directory.")) from None
    await _note(kernel, Tag.RESOURCES_SERVICE_CHECKED, by, address, f"{_id(request)}: {name}; checked on {day}")
    back = safe_next(str(data.get("next", "")), "")
    if not back.startswith("/resources-admin"):
        back = f"/resources-admin/service/{_id(request)}"
    raise web.HTTPSeeOther(f"{back}{'&' if '?' in back else '?'}done=checked")


@routes.post("/resources-admin/service/{id}/website", name="resources-admin-website")
@education
async def website(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    data = await request.post()
    chosen, paths_text = str(data.get("mode", "")), str(data.get("form_paths", "")).replace("\r\n", "\n")
    kept = {"chosen_mode": chosen, "paths_text": paths_text}
    if chosen not in MODES:
        return await _entry_page(request, 400, errors={"mode": _("Choose what inmates may do on the site.")}, **kept)
    by, address = acting(request)
    triggers = kernel.settings["curation.security_approves"]
    taken = {rule.id for rule in kernel.policies.snapshot.rules if rule.source != "database"}

    def work(session: Session) -> list[tuple[int, str, str, str, str]]:
        made = entries.propose_website(session, _id(request), Website(chosen), form_paths=paths_text.splitlines(),
                                       by=by, now=utcnow(), triggers=triggers, taken=taken)
        return [(p.id, p.kind, p.rule_id, proposals.one_line(p.spec), str(p.spec.get("allow", [""])[0]))
                for p in made]
    try:
        made = await change(kernel, work)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such entry in the directory.")) from None
    except Conflict as exc:
        return await _entry_page(request, 409, message=_("Nothing was proposed: %(problem)s") % {"problem": str(exc)},
                                 **kept)
    except InvalidInput as exc:
        field = str(exc).partition(": ")[0]
        if field in ("form_paths", "url"):
            return await _entry_page(request, 400, errors={"form_paths" if field == "form_paths" else "mode":
                                                           _problem(field, str(exc).partition(": ")[2])}, **kept)
        return await _entry_page(request, 400, message=_("Nothing was proposed: %(problem)s") % {"problem": str(exc)},
                                 **kept)
    host = made[0][4] if made else ""
    for number, kind, rule_id, line, _allowed in made:
        await _note(kernel, Tag.CURATION_PROPOSAL_MADE, by, address, f"proposal {number} ({kind} {rule_id}): {line}",
                    host=host)
    await _note(kernel, Tag.RESOURCES_WEBSITE_PROPOSED, by, address,
                f"{_id(request)}: {chosen}; proposals {', '.join(str(m[0]) for m in made)}", host=host)
    raise web.HTTPSeeOther(f"/resources-admin/service/{_id(request)}?done=proposed")
