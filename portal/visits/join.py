"""Joining a visit's call: the inmate from a booth, the visitor from the public site, the supervisor from the
staff portal (today's visits, each watched silently; a legal visit is refused and the refusal recorded).

Each page and its socket ask the database who may be there (`portal.visits.calls`); the page carries only what
`visits/_call.html` needs, and the hub decides the rest (the waiting room, the end, the supervisor's silence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.models import Inmate, StaffRole
from gatehouse.visits import booking
from gatehouse.visits.models import Visit, VisitStatus
from gatehouse.visits.room import Role, Ticket
from portal import i18n
from portal.access import inmate, staff, staff_of
from portal.auth.services import record
from portal.i18n import _
from portal.keys import KERNEL, VIEWER
from portal.layout import facility_today, facility_zone, render
from portal.transactions import read
from portal.visits import calls, public

routes = web.RouteTableDef()
"""The portal's: the inmate's call and the supervisor's screens."""
visitor_routes = web.RouteTableDef()
"""The visitors' listener's: the visitor's call."""
supervisor = staff(StaffRole.SUPERVISOR)


def _visit_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPNotFound(text=_("There is no such visit."))
    return int(raw)


def _not_joinable(request: web.Request, visit: Visit | None) -> web.Response | None:
    """A page that says why, for a visit that is not one this person may join now."""
    if visit is None:
        return render(request, "errors/error.html", {"title": _("There is no such visit."), "message": ""},
                      status=404)
    if visit.status != VisitStatus.APPROVED.value:
        message = (_("Reason: %(reason)s") % {"reason": visit.close_reason} if visit.close_reason
                   else _("Staff have not approved it yet."))
        return render(request, "errors/error.html", {"title": _("You cannot join this visit."), "message": message},
                      status=409)
    return None


def _page(request: web.Request, template: str, t: Ticket, ws: str, **context: object) -> web.Response:
    zone = str(request.app[KERNEL].settings["facility.timezone"])
    response = render(request, template, {"call": calls.call_context(t, ws, zone), **context})
    if t.role is not Role.SUPERVISOR:
        response.headers["Permissions-Policy"] = calls.CALL_POLICY
    return response


# The inmate ---------------------------------------------------------------------------------------------------


async def _inmate_ticket(request: web.Request) -> tuple[Visit | None, Ticket | None]:
    me = request[VIEWER].inmate
    if me is None:
        raise web.HTTPForbidden()
    visit_id = _visit_id(request)
    settings = request.app[KERNEL].settings

    def work(session: Session) -> tuple[Visit | None, Ticket | None]:
        visit = session.get(Visit, visit_id)
        person = session.scalar(select(Inmate).where(Inmate.number == me.inmate_number))
        if visit is None or person is None or person.id != visit.inmate_id:
            return None, None
        if not calls.inmate_may_join(visit, me.terminal_name, me.terminal_kind):
            return visit, None
        return visit, calls.ticket(settings, visit, Role.INMATE, f"inmate:{me.inmate_number}", me.inmate_name)

    return await read(request.app[KERNEL], work)


@routes.get("/visits/{id}/call", name="visit-call")
@inmate
async def inmate_call(request: web.Request) -> web.Response:
    visit, t = await _inmate_ticket(request)
    refused = _not_joinable(request, visit)
    if refused is not None:
        return refused
    if t is None:
        return render(request, "errors/error.html", {
            "title": _("You cannot join this visit here."),
            "message": _("Join it from the visit booth: staff take you there.")}, status=403)
    return _page(request, "visits/call.html", t, f"/visits/{t.visit_id}/call/ws")


@routes.get("/visits/{id}/call/ws", name="visit-call-ws")
@inmate
async def inmate_socket(request: web.Request) -> web.StreamResponse:
    async def resolve(request: web.Request) -> Ticket | None:
        visit, t = await _inmate_ticket(request)
        return t if visit is not None and visit.status == VisitStatus.APPROVED.value else None
    return await calls.socket(request, resolve)


# The visitor --------------------------------------------------------------------------------------------------


async def _visitor_ticket(request: web.Request) -> tuple[Visit | None, Ticket | None]:
    who = public.visitor_of(request)
    visit_id = _visit_id(request)
    settings = request.app[KERNEL].settings

    def work(session: Session) -> tuple[Visit | None, Ticket | None]:
        visit = session.get(Visit, visit_id)
        if visit is None or who.visitor_id not in {g.visitor_id for g in visit.visitors}:
            return None, None
        return visit, calls.ticket(settings, visit, Role.VISITOR, f"visitor:{who.visitor_id}", who.name)

    return await read(request.app[KERNEL], work)


@visitor_routes.get("/visits/{id}/call", name="visitor-call")
@public.verified
async def visitor_call(request: web.Request) -> web.Response:
    visit, t = await _visitor_ticket(request)
    refused = _not_joinable(request, visit)
    if refused is not None:
        return refused
    if t is None:
        raise web.HTTPNotFound(text=_("There is no such visit."))
    return _page(request, "visits/public/call.html", t, f"/visits/{t.visit_id}/call/ws",
                 recorded=bool(visit and visit.recorded))


@visitor_routes.get("/visits/{id}/call/ws", name="visitor-call-ws")
@public.verified
async def visitor_socket(request: web.Request) -> web.StreamResponse:
    async def resolve(request: web.Request) -> Ticket | None:
        visit, t = await _visitor_ticket(request)
        return t if visit is not None and visit.status == VisitStatus.APPROVED.value else None
    return await calls.socket(request, resolve)


# The supervisor -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Today:
    id: int
    time: str
    booth: str
    inmate: str
    visitors: tuple[str, ...]
    status: str
    status_label: str
    legal: bool
    present: int


def _today(session: Session, start: datetime, end: datetime) -> list[tuple[Visit, str]]:
    visits = booking.day_visits(session, start, end)
    ids = {v.inmate_id for v in visits}
    names = {key: number for key, number in session.execute(select(Inmate.id, Inmate.number).where(Inmate.id.in_(ids)))}
    return [(v, names.get(v.inmate_id, "?")) for v in visits]


@routes.get("/staff/visits/watch", name="visits-watch")
@supervisor
async def watch_list(request: web.Request) -> web.Response:
    """Today's visits in the facility's time, with how many are in each room now and a link to watch."""
    zone = facility_zone(request)
    day = facility_today(request)
    start = datetime.combine(day, time(0), zone)
    rows = await read(request.app[KERNEL], lambda s: _today(s, start, start + timedelta(days=1)))
    hub = calls.calls_of(request).hub
    today = [Today(v.id, f"{i18n.format_time(booking.aware(v.starts_at), zone)}–"
                         f"{i18n.format_time(booking.aware(v.ends_at), zone)}", v.booth.name, number,
                   tuple(g.visitor.name for g in v.visitors), v.status, public.STATUS_WORDS.get(v.status, v.status),
                   calls.legal(v),
                   len([p for p in hub.present(str(v.id)) if not p.startswith("staff:")]))
             for v, number in rows]
    return render(request, "visits/watch_list.html", {"today": today})


def _refuse_legal(request: web.Request) -> web.Response:
    return render(request, "errors/error.html", {
        "title": _("This is a legal visit: no one may watch it."),
        "message": _("Legal visits are never watched or recorded. The attempt is in the audit log.")}, status=403)


async def _supervisor_ticket(request: web.Request) -> tuple[Visit | None, Ticket | None]:
    me = staff_of(request)
    visit_id = _visit_id(request)
    settings = request.app[KERNEL].settings

    def work(session: Session) -> tuple[Visit | None, Ticket | None]:
        visit = session.get(Visit, visit_id)
        if visit is None:
            return None, None
        # a legal visit gets a ticket too: the hub refuses it by construction and records the refusal
        return visit, calls.ticket(settings, visit, Role.SUPERVISOR, f"staff:{me.username}", me.display_name)

    return await read(request.app[KERNEL], work)


@routes.get("/staff/visits/{id}/watch", name="visit-watch")
@supervisor
async def watch(request: web.Request) -> web.Response:
    visit, t = await _supervisor_ticket(request)
    refused = _not_joinable(request, visit)
    if refused is not None:
        return refused
    if t is None:
        raise web.HTTPNotFound(text=_("There is no such visit."))
    if t.legal:
        await record(request.app[KERNEL], AuditEvent(Tag.VISITS_CALL_REFUSED, "portal", actor=t.participant,
                                                     reason=f"visit:{t.visit_id} code=legal-no-supervisor"))
        return _refuse_legal(request)
    return _page(request, "visits/watch.html", t, f"/staff/visits/{t.visit_id}/watch/ws")


@routes.get("/staff/visits/{id}/watch/ws", name="visit-watch-ws")
@supervisor
async def watch_socket(request: web.Request) -> web.StreamResponse:
    async def resolve(request: web.Request) -> Ticket | None:
        visit, t = await _supervisor_ticket(request)
        return t if visit is not None and visit.status == VisitStatus.APPROVED.value else None
    return await calls.socket(request, resolve)
