"""Live control for security staff: lockdowns, suspensions and terminals switched off, started and undone."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gatehouse import control
from gatehouse.audit import Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from portal.access import acting, staff
from portal.control import services
from portal.i18n import N_, _
from portal.keys import KERNEL
from portal.layout import render

routes = web.RouteTableDef()
security = staff(StaffRole.SECURITY)
DONE = {"lockdown": N_("The lockdown is in force: sessions there have ended and nobody can use those terminals."),
        "lifted": N_("The lockdown was lifted."),
        "suspended": N_("The inmate is suspended: their session has ended on every terminal."),
        "resumed": N_("The inmate can log in again."),
        "off": N_("The terminal is switched off."), "on": N_("The terminal is switched on again.")}


async def _page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    done = DONE.get(request.query.get("done", ""))
    current = await services.state(request.app[KERNEL])
    return render(request, "control/control.html", {
        "state": current, "done": _(done) if done else "", "errors": context.pop("errors", {}),
        "values": context.pop("values", {}),
        "unit_choices": [("", _("The whole facility"))] + [(u, u) for u in current.units],
        "terminal_choices": [(t, t) for t in current.terminals], **context}, status)


@routes.get("/control", name="control")
@security
async def page(request: web.Request) -> web.Response:
    return await _page(request)


def _reason(data: Any, errors: dict[str, str], field: str) -> str:
    reason = " ".join(str(data.get(field, "")).split())
    if not reason:
        errors[field] = _("Give a reason: it is recorded and shown to staff.")
    return reason


async def _do(request: web.Request, tag: Tag, action: Any, subject: str, done: str, why: str = "",
              values: dict[str, str] | None = None) -> web.Response:
    kernel = request.app[KERNEL]
    try:
        await services.act(kernel, tag, action, subject, *acting(request), why=why)
    except (NotFound, Conflict, InvalidInput) as exc:
        return await _page(request, 409, message=_("Nothing was changed: %(problem)s") % {"problem": str(exc)},
                           values=values or {})
    raise web.HTTPSeeOther(f"/control?done={done}")


@routes.post("/control/lockdown", name="control-lockdown")
@security
async def lockdown(request: web.Request) -> web.Response:
    data = await request.post()
    errors: dict[str, str] = {}
    unit = str(data.get("unit", ""))
    reason = _reason(data, errors, "lockdown_reason")
    if errors:
        return await _page(request, 400, errors=errors, values={"unit": unit})
    facility = services.facility_name(request.app[KERNEL])
    return await _do(request, Tag.CONTROL_LOCKDOWN,
                     lambda s: control.lock_down(s, facility, unit, reason, acting(request)[0], utcnow()),
                     f"{facility}/{unit}" if unit else facility, "lockdown", reason)


@routes.post("/control/lockdown/lift", name="control-lift")
@security
async def lift(request: web.Request) -> web.Response:
    unit = str((await request.post()).get("unit", ""))
    facility = services.facility_name(request.app[KERNEL])
    return await _do(request, Tag.CONTROL_LOCKDOWN_LIFTED,
                     lambda s: control.lift(s, facility, unit, acting(request)[0], utcnow()),
                     f"{facility}/{unit}" if unit else facility, "lifted")


@routes.post("/control/suspend", name="control-suspend")
@security
async def suspend(request: web.Request) -> web.Response:
    data = await request.post()
    errors: dict[str, str] = {}
    number = " ".join(str(data.get("number", "")).split()).upper()
    if not number:
        errors["number"] = _("Enter the inmate number.")
    reason = _reason(data, errors, "suspend_reason")
    if errors:
        return await _page(request, 400, errors=errors, values={"number": number})
    return await _do(request, Tag.CONTROL_SUSPENDED,
                     lambda s: control.suspend(s, number, reason, acting(request)[0], utcnow()), number, "suspended",
                     reason, {"number": number})


@routes.post("/control/resume", name="control-resume")
@security
async def resume(request: web.Request) -> web.Response:
    number = str((await request.post()).get("number", ""))
    return await _do(request, Tag.CONTROL_RESUMED,
                     lambda s: control.resume(s, number, acting(request)[0], utcnow()), number, "resumed")


@routes.post("/control/terminal/off", name="control-off")
@security
async def switch_off(request: web.Request) -> web.Response:
    data = await request.post()
    errors: dict[str, str] = {}
    name = str(data.get("terminal", ""))
    reason = _reason(data, errors, "off_reason")
    if errors:
        return await _page(request, 400, errors=errors, values={"terminal": name})
    return await _do(request, Tag.CONTROL_TERMINAL_OFF,
                     lambda s: control.disable_terminal(s, name, reason, acting(request)[0], utcnow()), name, "off",
                     reason)


@routes.post("/control/terminal/on", name="control-on")
@security
async def switch_on(request: web.Request) -> web.Response:
    name = str((await request.post()).get("terminal", ""))
    return await _do(request, Tag.CONTROL_TERMINAL_ON,
                     lambda s: control.enable_terminal(s, name, acting(request)[0], utcnow()), name, "on")
