"""Administration screens: staff accounts, terminals, inmates (with roster import), facility and units.

Administrators only. After a change the browser is sent back to the list with `?done=CODE` (post, redirect,
get), so a reload never repeats the change and the confirmation is shown in the reader's language.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.pins import PIN_MAX, PIN_MIN
from gatehouse.roster import Problem
from gatehouse.staff import PASSWORD_MIN
from portal import i18n
from portal.access import acting, staff
from portal.admin import services
from portal.admin.forms import InmateEdit, NewInmate, NewStaff, NewTerminal, RolesForm, UnitForm
from portal.i18n import N_, _
from portal.keys import KERNEL
from portal.labels import KIND_LABELS, ROLE_LABELS, STATUS_LABELS, choices
from portal.layout import facility_zone, render
from portal.staff.services import lift_limits
from portal.throttle import LoginUnavailable

routes = web.RouteTableDef()
admin = staff(StaffRole.ADMIN)
MAX_ROSTER = 5 * 1024 * 1024

DONE = {
    "staff-added": N_("The account was added. Its holder sets up their authenticator app at first login."),
    "roles-changed": N_("The roles were changed."),
    "2fa-reset": N_("Two-step login was reset. The account holder sets up their app again at next login."),
    "disabled": N_("The account was disabled and its sessions ended."),
    "enabled": N_("The account was enabled."),
    "unlocked": N_("The login limits of this account were lifted: it can log in again at once."),
    "terminal-added": N_("The terminal was added."),
    "terminal-removed": N_("The terminal was removed; any session on it ended."),
    "unit-added": N_("The unit was added."),
    "unit-removed": N_("The unit was removed."),
    "inmate-added": N_("The inmate was added."),
    "inmate-saved": N_("The changes were saved."),
}


def _page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    done = DONE.get(request.query.get("done", ""))
    context.setdefault("done", _(done) if done else "")
    context.update(password_min=PASSWORD_MIN, pin_min=PIN_MIN, pin_max=PIN_MAX)
    return render(request, template, context, status)


def _back(path: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?done={done}")


def _choices() -> dict[str, Any]:
    return {"role_choices": choices(ROLE_LABELS), "kind_choices": choices(KIND_LABELS),
            "status_choices": choices(STATUS_LABELS), "language_choices": list(i18n.NAMES.items()),
            "role_label": dict(choices(ROLE_LABELS)), "kind_label": dict(choices(KIND_LABELS)),
            "status_label": dict(choices(STATUS_LABELS))}


# Staff accounts

async def _staff_list(request: web.Request, form: NewStaff, status: int = 200) -> web.Response:
    rows = await services.staff_rows(request.app[KERNEL])
    return _page(request, "admin/staff.html", status, rows=rows, form=form, **_choices())


@routes.get("/admin/staff", name="admin-staff")
@admin
async def staff_list(request: web.Request) -> web.Response:
    return await _staff_list(request, NewStaff())


@routes.post("/admin/staff")
@admin
async def staff_add(request: web.Request) -> web.Response:
    form = NewStaff.parse(await request.post())
    if form.errors:
        return await _staff_list(request, form, 400)
    try:
        await services.add_staff(request.app[KERNEL], form, *acting(request))
    except Conflict:
        form.errors["username"] = _("This username is taken. Choose another.")
        return await _staff_list(request, form, 409)
    raise _back("/admin/staff", "staff-added")


async def _staff_page(request: web.Request, username: str, status: int = 200, **context: Any) -> web.Response:
    try:
        row = await services.staff_detail(request.app[KERNEL], username)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no staff account with this username.")) from None
    context.setdefault("roles_form", RolesForm(list(row.roles)))
    return _page(request, "admin/staff_detail.html", status, account=row,
                 is_self=row.username == acting(request)[0], **context, **_choices())


@routes.get("/admin/staff/{username}", name="admin-staff-detail")
@admin
async def staff_detail(request: web.Request) -> web.Response:
    return await _staff_page(request, request.match_info["username"])


def _refusal(reason: str) -> str:
    if reason == "self-disable":
        return _("You cannot disable your own account. Ask another administrator.")
    if reason == "self-demote":
        return _("You cannot take away your own administrator role. Ask another administrator.")
    if reason == "unit-in-use":
        return _("Terminals stand in this unit. Move or remove them first.")
    return _("This change is not allowed.")


async def _staff_change(request: web.Request, done: str, action: str, **values: Any) -> web.Response:
    username = request.match_info["username"]
    kernel = request.app[KERNEL]
    try:
        if action == "roles":
            await services.set_staff_roles(kernel, username, values["roles"], *acting(request))
        elif action == "state":
            await services.set_staff_disabled(kernel, username, values["disabled"], *acting(request))
        else:
            await services.reset_staff_2fa(kernel, username, *acting(request))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no staff account with this username.")) from None
    except services.Refused as refused:
        return await _staff_page(request, username, 409, message=_refusal(str(refused)))
    raise _back(f"/admin/staff/{quote(username)}", done)


@routes.post("/admin/staff/{username}/roles", name="admin-staff-roles")
@admin
async def staff_roles(request: web.Request) -> web.Response:
    form = RolesForm.parse(await request.post())
    if form.errors:
        return await _staff_page(request, request.match_info["username"], 400, roles_form=form)
    return await _staff_change(request, "roles-changed", "roles", roles=form.roles)


@routes.post("/admin/staff/{username}/state", name="admin-staff-state")
@admin
async def staff_state(request: web.Request) -> web.Response:
    disabled = (await request.post()).get("disabled") == "yes"
    return await _staff_change(request, "disabled" if disabled else "enabled", "state", disabled=disabled)


@routes.post("/admin/staff/{username}/reset-2fa", name="admin-staff-reset")
@admin
async def staff_reset(request: web.Request) -> web.Response:
    return await _staff_change(request, "2fa-reset", "reset")


@routes.post("/admin/staff/{username}/unlock", name="admin-staff-unlock")
@admin
async def staff_unlock(request: web.Request) -> web.Response:
    """Lift the account's login limits (its wait, its failures from every address); recorded."""
    username = request.match_info["username"]
    row = await _staff_detail_or_404(request, username)
    try:
        await lift_limits(request.app[KERNEL], row.username, *acting(request))
    except LoginUnavailable as down:
        return await _staff_page(request, username, 503, message=down.message())
    raise _back(f"/admin/staff/{quote(row.username)}", "unlocked")


async def _staff_detail_or_404(request: web.Request, username: str) -> services.StaffRow:
    try:
        return await services.staff_detail(request.app[KERNEL], username)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no staff account with this username.")) from None


# Terminals

async def _terminals(request: web.Request, form: NewTerminal, status: int = 200, **context: Any) -> web.Response:
    kernel = request.app[KERNEL]
    rows = await services.terminal_rows(kernel)
    units = [u.name for u in await services.unit_rows(kernel)]
    return _page(request, "admin/terminals.html", status, rows=rows, form=form,
                 unit_choices=[(u, u) for u in units], **context, **_choices())


@routes.get("/admin/terminals", name="admin-terminals")
@admin
async def terminals(request: web.Request) -> web.Response:
    return await _terminals(request, NewTerminal())


@routes.post("/admin/terminals")
@admin
async def terminal_add(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    units = [u.name for u in await services.unit_rows(kernel)]
    form = NewTerminal.parse(await request.post(), units)
    if form.errors:
        return await _terminals(request, form, 400)
    try:
        await services.add_terminal_now(kernel, form, *acting(request))
    except Conflict as exc:
        field = "address" if "address" in str(exc) else "name"
        form.errors[field] = (_("This address belongs to another terminal.") if field == "address" else
                              _("A terminal with this name exists already."))
        return await _terminals(request, form, 409)
    raise _back("/admin/terminals", "terminal-added")


@routes.post("/admin/terminals/{name}/remove", name="admin-terminal-remove")
@admin
async def terminal_remove(request: web.Request) -> web.Response:
    try:
        await services.remove_terminal_now(request.app[KERNEL], request.match_info["name"], *acting(request))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no terminal with this name.")) from None
    raise _back("/admin/terminals", "terminal-removed")


# Facility and units

async def _facility(request: web.Request, form: UnitForm, status: int = 200, **context: Any) -> web.Response:
    settings = request.app[KERNEL].settings
    units = await services.unit_rows(request.app[KERNEL])
    return _page(request, "admin/facility.html", status, units=units, form=form,
                 timezone=settings["facility.timezone"], default_language=settings["facility.language"], **context)


@routes.get("/admin/facility", name="admin-facility")
@admin
async def facility(request: web.Request) -> web.Response:
    return await _facility(request, UnitForm())


@routes.post("/admin/facility/units", name="admin-units")
@admin
async def unit_add(request: web.Request) -> web.Response:
    form = UnitForm.parse(await request.post())
    if form.errors:
        return await _facility(request, form, 400)
    try:
        await services.add_unit(request.app[KERNEL], form.name, *acting(request))
    except Conflict:
        form.errors["name"] = _("A unit with this name exists already.")
        return await _facility(request, form, 409)
    raise _back("/admin/facility", "unit-added")


@routes.post("/admin/facility/units/{name}/remove", name="admin-unit-remove")
@admin
async def unit_remove(request: web.Request) -> web.Response:
    try:
        await services.remove_unit(request.app[KERNEL], request.match_info["name"], *acting(request))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no unit with this name.")) from None
    except services.Refused as refused:
        return await _facility(request, UnitForm(), 409, message=_refusal(str(refused)))
    raise _back("/admin/facility", "unit-removed")


# Inmates

async def _inmates(request: web.Request, form: NewInmate, status: int = 200, **context: Any) -> web.Response:
    query = request.query.get("q", "").strip()[:64]
    after = request.query.get("after", "")[:64]
    page = await services.inmate_page(request.app[KERNEL], query, after)
    return _page(request, "admin/inmates.html", status, page=page, query=query, after=after, form=form,
                 **context, **_choices())


@routes.get("/admin/inmates", name="admin-inmates")
@admin
async def inmates(request: web.Request) -> web.Response:
    return await _inmates(request, NewInmate())


@routes.post("/admin/inmates")
@admin
async def inmate_add(request: web.Request) -> web.Response:
    form = NewInmate.parse(await request.post())
    if form.errors:
        return await _inmates(request, form, 400)
    try:
        await services.add_inmate_now(request.app[KERNEL], form, *acting(request))
    except Conflict:
        form.errors["number"] = _("An inmate with this number exists already.")
        return await _inmates(request, form, 409)
    raise _back("/admin/inmates", "inmate-added")


@routes.post("/admin/inmates/import", name="admin-roster")
@admin
async def inmate_import(request: web.Request) -> web.Response:
    """A CSV roster: every bad row is listed with its line; nothing is imported unless every row is good."""
    data = await request.post()
    upload = data.get("roster")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return await _inmates(request, NewInmate(), 400, import_error=_("Choose a CSV file to import."))
    raw = upload.file.read(MAX_ROSTER + 1)
    if len(raw) > MAX_ROSTER:
        return await _inmates(request, NewInmate(), 413, import_error=_("The file is larger than %(num)d MB.") % {
            "num": MAX_ROSTER // 2**20})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            return await _inmates(request, NewInmate(), 400,
                                  import_error=_("The file is not text. Save the roster as CSV and try again."))
    report = await services.import_roster(request.app[KERNEL], text, upload.filename, *acting(request))
    status = 400 if report.errors else 200
    return await _inmates(request, NewInmate(), status, report=report, filename=upload.filename,
                          problems=[(p.line, problem_text(p)) for p in report.problems])


def problem_text(problem: Problem) -> str:
    """A roster line's problem in the reader's language (the CLI prints the English `message`)."""
    value, code = problem.value, problem.code
    texts = {
        "number": lambda: _("Inmate number %(value)s: use 1 to 32 letters, digits, '/', '.', '_' or '-'.") % {
            "value": value or "–"},
        "name": lambda: _("The name is empty or longer than 255 characters."),
        "language": lambda: _("Language %(value)s is not one of en, nl, fr, de.") % {"value": value},
        "groups": lambda: _("Groups %(value)s: use lower-case letters, digits, '.', '_' or '-'.") % {"value": value},
        "pin": lambda: _("A PIN is %(min)d to %(max)d digits.") % {"min": PIN_MIN, "max": PIN_MAX},
        "cells": lambda: _("This line has %(found)s cells; the header has %(expected)d.") % {
            "found": value, "expected": problem.other_line},
        "duplicate": lambda: _("Inmate %(value)s is on line %(line)d already.") % {
            "value": value, "line": problem.other_line},
        "column": lambda: _("Column %(value)s is given twice.") % {"value": value},
        "no-number-column": lambda: _("There is no inmate number column (number, inmate_number or offender_id)."),
        "no-name-column": lambda: _("There is no name column (name, or first_name and last_name)."),
        "empty": lambda: _("The file is empty."),
        "no-rows": lambda: _("There are no inmate lines after the header."),
    }
    text = texts.get(code)
    return text() if text else _("This line cannot be read as CSV (%(detail)s).") % {"detail": problem.message}


async def _inmate_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    try:
        row = await services.inmate_detail(request.app[KERNEL], request.match_info["number"])
    except (NotFound, InvalidInput):
        raise web.HTTPNotFound(text=_("There is no inmate with this number.")) from None
    form = context.pop("form", None) or InmateEdit(row.name, row.language, list(row.groups), row.status)
    locked = row.locked_until is not None and row.locked_until > utcnow()
    zone = facility_zone(request)
    return _page(request, "admin/inmate.html", status, inmate=row, form=form, **context, **_choices(),
                 locked_until=i18n.format_datetime(row.locked_until, zone) if locked and row.locked_until else "")


@routes.get("/admin/inmates/{number}", name="admin-inmate")
@admin
async def inmate_detail(request: web.Request) -> web.Response:
    return await _inmate_page(request)


@routes.post("/admin/inmates/{number}")
@admin
async def inmate_save(request: web.Request) -> web.Response:
    form = InmateEdit.parse(await request.post())
    if form.errors:
        return await _inmate_page(request, 400, form=form)
    number = request.match_info["number"]
    try:
        await services.save_inmate(request.app[KERNEL], number, form, *acting(request))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no inmate with this number.")) from None
    raise _back(f"/admin/inmates/{quote(number)}", "inmate-saved")
