"""Security staff verify visitors: who waits (their e-mail address confirmed), the identity document as staff
read it, the lawyer flag, verified or refused with a reason. Every decision is in the audit log; how much visit
mail waits for the relay is said here too, since a family that never got its link waits on this page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.visits import visitors
from gatehouse.visits.models import Visitor
from portal import i18n
from portal.access import acting, staff
from portal.auth.services import record
from portal.i18n import N_, _
from portal.keys import KERNEL
from portal.layout import facility_zone, render
from portal.transactions import change, read
from portal.visits import mailing

routes = web.RouteTableDef()
security = staff(StaffRole.SECURITY)
DOCUMENTS = {"identity-card": N_("Identity card"), "passport": N_("Passport"),
             "residence-permit": N_("Residence permit"), "driving-licence": N_("Driving licence")}
DONE = {"verified": N_("The visitor is verified."), "refused": N_("The visitor was refused; they read your reason.")}


@dataclass(frozen=True, slots=True)
class Waiting:
    id: int
    name: str
    email: str
    registered: datetime
    confirmed: datetime | None
    verified: bool
    suspended: str


def _waiting(visitor: Visitor) -> Waiting:
    return Waiting(visitor.id, visitor.name, visitor.email, visitor.created_at, visitor.email_confirmed_at,
                   visitor.verified_at is not None, visitor.suspended_reason)


def _number(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text=_("There is no such visitor.")) from None


def _context(request: web.Request, **context: Any) -> dict[str, Any]:
    zone = facility_zone(request)

    def when(moment: datetime | None) -> str:
        return i18n.format_datetime(moment, zone, "short") if moment is not None else ""
    done = DONE.get(request.query.get("done", ""))
    return {"when": when, "done": _(done) if done else "", "message": "", "errors": {}, "values": {},
            "documents": [(code, _(label)) for code, label in DOCUMENTS.items()], **context}


@routes.get("/staff/visitors", name="visits-verify")
@security
async def queue(request: web.Request) -> web.Response:
    def work(session: Session) -> tuple[list[Waiting], int]:
        return [_waiting(v) for v in visitors.waiting(session)], mailing.waiting(session)

    rows, mail_waiting = await read(request.app[KERNEL], work)
    return render(request, "visits/verify.html", _context(
        request, rows=rows, mail_waiting=mail_waiting, relay=bool(request.app[KERNEL].settings["mail.host"])))


async def _visitor_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    visitor_id = _number(request)
    try:
        person = await read(request.app[KERNEL], lambda session: _waiting(visitors.get_visitor(session, visitor_id)))
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such visitor.")) from None
    return render(request, "visits/verify_visitor.html", _context(request, person=person, **context), status)


@routes.get("/staff/visitors/{id}", name="visits-verify-visitor")
@security
async def visitor_page(request: web.Request) -> web.Response:
    return await _visitor_page(request)


def _clean(value: object) -> str:
    return " ".join(str(value or "").split())


@routes.post("/staff/visitors/{id}/verify", name="visits-verify-yes")
@security
async def verify(request: web.Request) -> web.Response:
    data = await request.post()
    kind, number, lawyer = _clean(data.get("kind")), _clean(data.get("number")), data.get("lawyer") == "yes"
    values = {"kind": kind, "number": number, "lawyer": lawyer}
    errors = {}
    if kind not in DOCUMENTS:
        errors["kind"] = _("Choose the kind of document you saw.")
    if not number:
        errors["number"] = _("Enter the document's number as you read it.")
    elif len(number) > 200:
        errors["number"] = _("A document number has at most 200 characters.")
    if errors:
        return await _visitor_page(request, 400, errors=errors, values=values)
    visitor_id, (by, address) = _number(request), acting(request)
    now = utcnow()
    try:
        email = await change(request.app[KERNEL], lambda session: visitors.verify(
            session, visitor_id, by=by, document=f"{kind}: {number}", lawyer=lawyer, now=now).email)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such visitor.")) from None
    except (Conflict, InvalidInput) as exc:
        return await _visitor_page(request, 409, values=values,
                                   message=_("Nothing was changed: %(problem)s") % {"problem": str(exc)})
    await record(request.app[KERNEL], AuditEvent(
        Tag.VISITS_VISITOR_VERIFIED, "portal", actor=by, client_addr=address,
        reason=f"visitor:{visitor_id} {email} document={kind} lawyer={'yes' if lawyer else 'no'}"))
    raise web.HTTPSeeOther("/staff/visitors?done=verified")


@routes.post("/staff/visitors/{id}/refuse", name="visits-verify-no")
@security
async def refuse(request: web.Request) -> web.Response:
    reason = _clean((await request.post()).get("reason"))
    if not reason:
        return await _visitor_page(request, 400, errors={"reason": _("Say why: the visitor reads it.")})
    visitor_id, (by, address) = _number(request), acting(request)
    now = utcnow()
    try:
        email = await change(request.app[KERNEL], lambda session: visitors.suspend(
            session, visitor_id, by=by, reason=reason, now=now).email)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such visitor.")) from None
    except InvalidInput as exc:
        return await _visitor_page(request, 400, errors={"reason": str(exc)}, values={"reason": reason})
    await record(request.app[KERNEL], AuditEvent(Tag.VISITS_VISITOR_REFUSED, "portal", actor=by, client_addr=address,
                                                 reason=f"visitor:{visitor_id} {email}: {reason}"))
    raise web.HTTPSeeOther("/staff/visitors?done=refused")
