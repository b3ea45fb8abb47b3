"""Curation screens for inmates: ask for a site (from a block page's link or the home page), see what became of
each request, and withdraw one that still waits.

The domain's messages are English, for staff and the CLI; an inmate reads each in their own language, chosen by
the field the message names and what it says (`_problem`), never the English text itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlalchemy.orm import Session

from gatehouse.audit import Tag
from gatehouse.curation import asking
from gatehouse.curation.models import AccessRequest, Purpose, RequestStatus
from gatehouse.db.engine import utcnow
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.sessions import ActiveSession
from portal import i18n
from portal.access import inmate
from portal.curation.services import change, note, read
from portal.i18n import N_, _, ngettext
from portal.keys import KERNEL, VIEWER
from portal.layout import facility_zone, render

routes = web.RouteTableDef()

PURPOSES: tuple[tuple[str, str], ...] = (
    (Purpose.COURSE.value, N_("For a course I take")),
    (Purpose.JOBS.value, N_("To look for a job")),
    (Purpose.HOUSING.value, N_("To find a place to live")),
    (Purpose.LEGAL.value, N_("For legal matters")),
    (Purpose.FAMILY.value, N_("For my family")),
    (Purpose.OTHER.value, N_("For something else")),
)
STATES = {RequestStatus.OPEN.value: N_("Waiting for education staff"),
          RequestStatus.PROPOSED.value: N_("Being reviewed"),
          RequestStatus.GRANTED.value: N_("Allowed"),
          RequestStatus.REFUSED.value: N_("Refused"),
          RequestStatus.WITHDRAWN.value: N_("Withdrawn by you")}
DONE = {"asked": N_("Your request was sent. Education staff will answer it here."),
        "again": N_("You asked for this site already; we added your new reason to that request."),
        "waiting": N_("You asked for this site already. That request is still waiting."),
        "withdrawn": N_("Your request was withdrawn.")}
FIELDS = ("url", "purpose", "reason")


@dataclass(frozen=True, slots=True)
class Mine:
    """One of the inmate's requests, as the list shows it."""

    id: int
    url: str
    host: str
    purpose: str
    reason: str
    status: str
    asked_at: datetime
    decided_at: datetime | None
    answer: str


@dataclass(frozen=True, slots=True)
class Sent:
    id: int
    url: str
    host: str
    purpose: str
    new: bool


def _me(request: web.Request) -> ActiveSession:
    active = request[VIEWER].inmate
    if active is None:  # the route's rule lets only inmates through
        raise web.HTTPForbidden()
    return active


def _mine(row: AccessRequest) -> Mine:
    return Mine(row.id, row.url, row.host, row.purpose, row.reason, row.status, row.created_at, row.decided_at,
                row.answer)


def _problem(message: str) -> tuple[str, str]:
    """The field a domain refusal names ("url: …") and what to tell the inmate about it, in their language."""
    field, _colon, detail = message.partition(": ")
    if field == "purpose":
        return "purpose", _("Choose what you need the site for.")
    if field != "url":
        return "", _("The request could not be sent. Check what you typed and try again.")
    if detail.startswith("give the address"):
        return "url", _("Give the address of the site. You find it on the page that was blocked.")
    if detail.startswith("at most"):
        return "url", _("This address is too long: at most %(num)d characters.") % {"num": asking.MAX_URL}
    if "are not web sites" in detail:
        return "url", _("This is not the address of a web site. Give an address that starts with http:// or "
                        "https://.")
    if "user name or password" in detail:
        return "url", _("An address with a user name or password in it cannot be asked for. Leave out the part "
                        "before the @.")
    return "url", _("This address cannot be read. Copy it exactly as it is on the page that was blocked.")


def _check(values: dict[str, str]) -> dict[str, str]:
    """Every field's problem at once, so the inmate fixes them in one go (the domain checks again on asking)."""
    errors: dict[str, str] = {}
    for field, check in (("url", lambda: asking.clean_url(values["url"])),
                         ("purpose", lambda: asking.purpose_of(values["purpose"]))):
        try:
            check()
        except InvalidInput as exc:
            errors[field] = _problem(str(exc))[1]
    if len(" ".join(values["reason"].split())) > asking.MAX_REASON:
        errors["reason"] = _("Your reason is too long: at most %(num)d characters. Shorten it and send again.") % {
            "num": asking.MAX_REASON}
    return errors


def _form(request: web.Request, values: dict[str, str], errors: dict[str, str] | None = None, message: str = "",
          status: int = 200, full: bool = False) -> web.Response:
    return render(request, "curation/ask.html", {
        "values": values, "errors": errors or {}, "message": message, "full": full, "purposes": PURPOSES,
        "max_reason": asking.MAX_REASON, "limit": request.app[KERNEL].settings["curation.max_open_requests"]},
        status=status)


@routes.get("/ask", name="ask")
@inmate
async def ask_form(request: web.Request) -> web.Response:
    """The form, with the address of the page that was blocked when the block page's link led here."""
    return _form(request, {"url": request.query.get("url", "")[:asking.MAX_URL * 2], "purpose": "", "reason": ""})


@routes.post("/ask", name="ask-send")
@inmate
async def ask_send(request: web.Request) -> web.Response:
    me = _me(request)
    data = await request.post()
    values = {field: str(data.get(field, "")) for field in FIELDS}
    errors = _check(values)
    if errors:
        return _form(request, values, errors, _("The request was not sent. Check the fields marked below."), 400)
    kernel = request.app[KERNEL]
    limit: int = kernel.settings["curation.max_open_requests"]

    def work(session: Session) -> Sent:
        asked = asking.ask(session, inmate=me.inmate_number, url=values["url"], purpose=values["purpose"],
                           reason=values["reason"], now=utcnow(), limit=limit)
        row = asked.request
        return Sent(row.id, row.url, row.host, row.purpose, asked.new)

    try:
        sent = await change(kernel, work)
    except InvalidInput as exc:
        field, text = _problem(str(exc))
        if not field:
            return _form(request, values, message=text, status=400)
        return _form(request, values, {field: text}, _("The request was not sent. Check the fields marked below."),
                     400)
    except Conflict:  # the only conflict of asking: too many requests wait already
        text = ngettext("You have %(num)d request waiting, the most you may have at once. Wait for its answer, or "
                        "withdraw it, before you ask for another site.",
                        "You have %(num)d requests waiting, the most you may have at once. Wait for an answer, or "
                        "withdraw one, before you ask for another site.", limit) % {"num": limit}
        return _form(request, values, message=text, status=409, full=True)
    except NotFound:
        raise web.HTTPNotFound(text=_("Your account cannot ask for sites now. Ask staff.")) from None
    said = "asks" if sent.new else "asks again"
    await note(kernel, Tag.CURATION_REQUEST_ASKED, me.inmate_number,
               f"request {sent.id}: {me.inmate_number} {said} for {sent.url} ({sent.purpose})",
               terminal=me.terminal_name, host=sent.host)
    done = "asked" if sent.new else "again" if values["reason"].strip() else "waiting"
    raise web.HTTPSeeOther(f"/requests?done={done}")


async def _list(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    number = _me(request).inmate_number
    rows = await read(request.app[KERNEL], lambda s: [_mine(r) for r in asking.requests_of(s, number)])
    zone = facility_zone(request)
    when = {row.id: (i18n.format_datetime(row.asked_at, zone, "short"),
                     i18n.format_datetime(row.decided_at, zone, "short") if row.decided_at else "") for row in rows}
    done = DONE.get(request.query.get("done", ""), "") if not message else ""
    return render(request, "curation/requests.html", {
        "rows": rows, "when": when, "states": STATES, "purposes": dict(PURPOSES), "message": message,
        "done": _(done) if done else "", "limit": request.app[KERNEL].settings["curation.max_open_requests"]},
        status=status)


@routes.get("/requests", name="requests")
@inmate
async def requests_page(request: web.Request) -> web.Response:
    return await _list(request)


@routes.post("/requests/{id}/withdraw", name="request-withdraw")
@inmate
async def withdraw(request: web.Request) -> web.Response:
    me = _me(request)
    missing = web.HTTPNotFound(text=_("This request is not yours, or does not exist."))
    try:
        request_id = int(request.match_info["id"])
    except ValueError:
        raise missing from None
    kernel = request.app[KERNEL]
    try:
        row = await change(kernel, lambda s: _mine(asking.withdraw(s, request_id, inmate=me.inmate_number,
                                                                   now=utcnow())))
    except NotFound:
        raise missing from None
    except Conflict:
        return await _list(request, _("This request is no longer waiting, so it cannot be withdrawn. Its state is "
                                      "shown below."), 409)
    await note(kernel, Tag.CURATION_REQUEST_WITHDRAWN, me.inmate_number,
               f"request {row.id}: {me.inmate_number} withdraws the request for {row.url}",
               terminal=me.terminal_name, host=row.host)
    raise web.HTTPSeeOther("/requests?done=withdrawn")
