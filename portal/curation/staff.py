"""Curation screens for staff: the queue of requests, proposals, four-eyes approval, the rules in force.

HTTP only: what a screen shows and what a button does is `staff_services`'s; who may decide is the domain's
(`gatehouse.curation.proposals`), checked on the server for every POST whatever the page showed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from gatehouse.curation import preview as pages
from gatehouse.curation import proposals as domain
from gatehouse.curation import ruleset
from gatehouse.curation.models import ProposalKind
from gatehouse.curation.proposals import TRIGGERS, Draft
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from portal import i18n
from portal.access import acting, staff, staff_of
from portal.curation import staff_services as services
from portal.i18n import N_, _
from portal.keys import KERNEL
from portal.layout import facility_zone, render

routes = web.RouteTableDef()
curators = staff(StaffRole.EDUCATION, StaffRole.SECURITY)
DONE = {"refused": N_("The request was refused; the inmate sees your reason."),
        "proposed": N_("Proposed. It becomes policy when a second staff member approves it."),
        "approved": N_("Approved. Every gateway applies the change within a second."),
        "declined": N_("The proposal was refused; the proposer sees your reason."),
        "returned": N_("The proposal was sent back to be changed."),
        "cleared": N_("The flag was cleared.")}
PURPOSES = {"course": N_("For a course"), "jobs": N_("Jobs"), "housing": N_("Housing"), "legal": N_("Legal matters"),
            "family": N_("Family"), "other": N_("Something else")}
SCOPES = {"inmate": N_("One inmate"), "group": N_("A group"), "course": N_("A course's learners"),
          "everyone": N_("Everyone"), "visit": N_("A visit")}
KINDS = {"add": N_("New rule"), "edit": N_("Change of a rule"), "remove": N_("Removal of a rule")}
STATUSES = {"open": N_("open"), "proposed": N_("proposed"), "granted": N_("granted"), "refused": N_("refused"),
            "withdrawn": N_("withdrawn"), "pending": N_("waits for approval"), "approved": N_("approved"),
            "returned": N_("sent back")}
WHY = {TRIGGERS["everyone"]: N_("it is for everyone"), TRIGGERS["group"]: N_("it is for a group"),
       TRIGGERS["course"]: N_("it is for a course's learners"),
       TRIGGERS["passthrough"]: N_("it is passthrough (not inspected)"),
       TRIGGERS["methods"]: N_("it allows methods other than GET and HEAD"),
       TRIGGERS["websocket"]: N_("it allows WebSocket"), TRIGGERS["ports"]: N_("it allows ports other than 80 and 443")}
FLAGS = {pages.FORM_ELSEWHERE: N_("a form that sends what is typed to another site"),
         pages.LOGIN: N_("a password field (a login)"), pages.UPLOAD: N_("a way to upload files"),
         pages.MAIL: N_("a way to send mail or messages"),
         pages.POST: N_("a form that sends data to the site (more than a search)")}
LATE = {"approved": N_("Too late: %(who)s approved this proposal already."),
        "refused": N_("Too late: %(who)s refused this proposal already."),
        "returned": N_("Too late: %(who)s sent this proposal back already.")}
"""What a decision that lost its race says; the domain's English stays in the audit log."""


def _words(table: dict[str, str]) -> Callable[[str], str]:
    return lambda key: _(table[key]) if key in table else key


def _frame(request: web.Request, **context: Any) -> dict[str, Any]:
    """What every curation screen prints with: times in the facility's zone, the words for stored values."""
    zone = facility_zone(request)
    done = DONE.get(request.query.get("done", ""))

    def when(moment: datetime | None) -> str:
        return i18n.format_datetime(moment, zone, "short") if moment is not None else ""
    return {"when": when, "purpose": _words(PURPOSES), "scope_name": _words(SCOPES), "kind_name": _words(KINDS),
            "status_name": _words(STATUSES), "why_text": _words(WHY), "flag_name": _words(FLAGS),
            "done": _(done) if done else "", "message": "", "errors": {}, **context}


def _number(request: web.Request, name: str = "id") -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None


def _clean(value: Any) -> str:
    return " ".join(str(value or "").split())


# -- the queue and one request ---------------------------------------------------------------------------------

@routes.get("/curation", name="curation")
@curators
async def queue(request: web.Request) -> web.Response:
    rows = await services.waiting(request.app[KERNEL])
    return render(request, "curation/staff_queue.html", _frame(request, rows=rows))


async def _request_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    try:
        view = await services.request_view(request.app[KERNEL], _number(request), utcnow())
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such request.")) from None
    return render(request, "curation/staff_request.html",
                  _frame(request, **{"view": view, "preview": None, "values": {}, **context}), status)


@routes.get("/curation/requests/{id}", name="curation-request")
@curators
async def request_page(request: web.Request) -> web.Response:
    return await _request_page(request)


@routes.post("/curation/requests/{id}/preview", name="curation-preview")
@curators
async def preview(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    try:
        view = await services.request_view(kernel, _number(request), utcnow())
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such request.")) from None
    seen = await services.preview(kernel, view.request.url, by=acting(request)[0])
    return await _request_page(request, preview=seen)


@routes.post("/curation/requests/{id}/refuse", name="curation-refuse-request")
@curators
async def refuse_request(request: web.Request) -> web.Response:
    data = await request.post()
    reason = _clean(data.get("reason"))
    if not reason:
        return await _request_page(request, 400, errors={"reason": _("Say why: the inmate reads it.")})
    try:
        await services.refuse_request(request.app[KERNEL], _number(request), reason=reason, by=acting(request)[0],
                                      now=utcnow())
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such request.")) from None
    except (Conflict, InvalidInput) as exc:
        return await _request_page(request, 409, values={"reason": reason},
                                   message=_("Nothing was changed: %(problem)s") % {"problem": str(exc)})
    raise web.HTTPSeeOther("/curation?done=refused")


# -- the proposal form (for a request, or to change a curated rule) --------------------------------------------

async def _form(request: web.Request, *, draft: Draft, why: str, kind: ProposalKind, action: str,
                asked: services.Asked | None = None, rule: services.CuratedRule | None = None, status: int = 200,
                message: str = "", assessed: services.Assessed | None = None) -> web.Response:
    errors = assessed.errors if assessed is not None else {}
    return render(request, "curation/staff_propose.html", _frame(
        request, draft=draft, why=why, kind=kind.value, action=action, asked=asked, rule=rule,
        before_line=domain.one_line(rule.spec) if rule else "", assessed=assessed, errors=errors,
        message=message or (_("The rule has problems; they are shown at their fields.") if errors else ""),
        scope_choices=[(k, _(SCOPES[k])) for k in domain.SCOPES],
        mode_choices=[("inspect", _("Inspect every request (the default)")),
                      ("passthrough", _("Passthrough (not inspected)"))]), 400 if errors else status)


async def _asked(request: web.Request) -> services.Asked:
    try:
        view = await services.request_view(request.app[KERNEL], _number(request), utcnow())
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such request.")) from None
    if view.request.status != "open":
        raise web.HTTPConflict(text=_("This request is not open any more, so it gets no new proposal."))
    return view.request


@routes.get("/curation/requests/{id}/propose", name="curation-propose")
@curators
async def propose_form(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    asked = await _asked(request)
    draft, why = services.draft_for(asked, first_day=services.today(kernel, utcnow()),
                                    days=kernel.settings["curation.default_days"]), ""
    if again := await _again(request, request_id=asked.id):
        draft, why = again
    return await _form(request, draft=draft, why=why, kind=ProposalKind.ADD, action=request.path, asked=asked)


async def _again(request: web.Request, *, request_id: int | None = None, rule_id: str = "") -> tuple[Draft, str] | None:
    """`?from=N`: the form of proposal N, sent back to be changed, to propose again."""
    given = request.query.get("from", "")
    if not given.isdigit():
        return None
    return await services.returned_draft(request.app[KERNEL], int(given), request_id=request_id, rule_id=rule_id)


async def _proposed(request: web.Request, *, kind: ProposalKind, url: str, requester: str,
                    asked: services.Asked | None = None, rule: services.CuratedRule | None = None) -> web.Response:
    """The two steps of the form: "Show what changes" checks the rule and shows its impact; "Propose" saves the
    rule that was shown (if it was changed since, its impact is shown again instead)."""
    data = await request.post()
    draft, why = Draft.of(data), str(data.get("note", "")).strip()
    common: dict[str, Any] = {"draft": draft, "why": why, "kind": kind, "action": request.path, "asked": asked,
                              "rule": rule}
    assessed = await services.assess(request.app[KERNEL], draft, url=url, requester=requester, now=utcnow(),
                                     kind=kind, rule_id=rule.rule_id if rule else "",
                                     before=rule.spec if rule else None)
    if assessed.errors or data.get("step") != "propose":
        return await _form(request, assessed=assessed, **common)
    if data.get("shown") != assessed.digest:
        return await _form(request, assessed=assessed, status=409, message=_(
            "The rule changed since you looked at what it changes. Check it again, then propose it."), **common)
    try:
        made = await services.make_proposal(request.app[KERNEL], assessed.spec, by=acting(request)[0], now=utcnow(),
                                            why=why, request_id=asked.id if asked else None, kind=kind,
                                            rule_id=rule.rule_id if rule else "")
    except (Conflict, InvalidInput, NotFound) as exc:
        return await _form(request, assessed=assessed, status=409,
                           message=_("Nothing was proposed: %(problem)s") % {"problem": str(exc)}, **common)
    raise web.HTTPSeeOther(f"/curation/proposals/{made.id}?done=proposed")


@routes.post("/curation/requests/{id}/propose", name="curation-propose-save")
@curators
async def propose(request: web.Request) -> web.Response:
    asked = await _asked(request)
    return await _proposed(request, kind=ProposalKind.ADD, url=asked.url, requester=asked.number, asked=asked)


async def _curated(request: web.Request) -> services.CuratedRule:
    try:
        rule = await services.curated_rule(request.app[KERNEL], request.match_info["rule_id"])
    except NotFound:
        raise web.HTTPNotFound(text=_(
            "There is no curated rule with this id. A rule from a policy file is changed in its file.")) from None
    if rule.waiting is not None:
        raise web.HTTPConflict(text=_(
            "A proposal for this rule waits for approval already (proposal %(id)d); decide it first.")
            % {"id": rule.waiting})
    return rule


@routes.get("/curation/rules/{rule_id}/change", name="curation-change")
@curators
async def change_form(request: web.Request) -> web.Response:
    rule = await _curated(request)
    draft, why = await _again(request, rule_id=rule.rule_id) or (Draft.from_spec(rule.spec), "")
    return await _form(request, draft=draft, why=why, kind=ProposalKind.EDIT, action=request.path, rule=rule)


@routes.post("/curation/rules/{rule_id}/change", name="curation-change-save")
@curators
async def change(request: web.Request) -> web.Response:
    rule = await _curated(request)
    return await _proposed(request, kind=ProposalKind.EDIT, url=ruleset.url_for(rule.spec), requester="",
                           rule=rule)


@routes.post("/curation/rules/{rule_id}/remove", name="curation-remove")
@curators
async def remove(request: web.Request) -> web.Response:
    rule = await _curated(request)
    data = await request.post()
    why = _clean(data.get("note"))
    if not why:
        return await _rules_page(request, 400, errors={f"note-{rule.rule_id}": _(
            "Say why it should go: the approver reads it.")})
    try:
        made = await services.make_proposal(request.app[KERNEL], {}, by=acting(request)[0], now=utcnow(), why=why,
                                            kind=ProposalKind.REMOVE, rule_id=rule.rule_id)
    except (Conflict, InvalidInput, NotFound) as exc:
        return await _rules_page(request, 409, message=_("Nothing was proposed: %(problem)s") % {"problem": str(exc)})
    raise web.HTTPSeeOther(f"/curation/proposals/{made.id}?done=proposed")


# -- proposals and their decision ------------------------------------------------------------------------------

@routes.get("/curation/proposals", name="curation-proposals")
@curators
async def proposals_page(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    who = staff_of(request)
    rows, flagged = await services.pending(kernel), await services.flags(kernel)
    returned = await services.sent_back(kernel, who.username)
    return render(request, "curation/staff_proposals.html", _frame(
        request, rows=rows, flagged=flagged, returned=returned, me=who.username,
        may_clear=who.has(StaffRole.SECURITY.value)))


async def _proposal_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    try:
        page = await services.proposal_page(request.app[KERNEL], _number(request), utcnow())
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such proposal.")) from None
    who = staff_of(request)
    shown = page.proposal
    return render(request, "curation/staff_proposal.html", _frame(
        request, **{"page": page, "p": shown, "me": who.username, "values": {},
                    "may_approve": shown.may_approve(who.username, who.roles),
                    "may_refuse": shown.may_refuse(who.username, who.roles), **context}), status)


@routes.get("/curation/proposals/{id}", name="curation-proposal")
@curators
async def proposal_page(request: web.Request) -> web.Response:
    return await _proposal_page(request)


async def _decide(request: web.Request, action: str) -> web.Response:
    data = await request.post()
    field = f"{action}_reason"
    reason = _clean(data.get(field))
    if action != "approve" and not reason:
        return await _proposal_page(request, 400, errors={field: _("Say why: the proposer reads it.")})
    who = staff_of(request)
    try:
        await services.decide(request.app[KERNEL], _number(request), action=action, by=who.username,
                              roles=who.roles, now=utcnow(), reason=reason)
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such proposal.")) from None
    except services.Denied as exc:
        return await _proposal_page(request, 403, message=_("You may not decide this proposal: %(why)s")
                                    % {"why": _refusal(str(exc), who.username)}, values={field: reason})
    except services.Late as exc:
        return await _proposal_page(request, 409, message=_(LATE.get(exc.status, LATE["approved"]))
                                    % {"who": exc.by})
    except InvalidInput as exc:
        return await _proposal_page(request, 400, errors={field: str(exc)})
    done = {"approve": "approved", "refuse": "declined", "return": "returned"}[action]
    raise web.HTTPSeeOther(f"/curation/proposals/{_number(request)}?done={done}")


def _refusal(said: str, username: str) -> str:
    """The domain's reason in the reader's language where it is one of the four-eyes rules."""
    if said.startswith(f"{username} proposed it"):
        return _("you proposed it, and a second staff member must approve it (four eyes).")
    if said.startswith("it needs security staff's approval"):
        return _("it needs the approval of security staff.")
    return said


@routes.post("/curation/proposals/{id}/approve", name="curation-approve")
@curators
async def approve(request: web.Request) -> web.Response:
    return await _decide(request, "approve")


@routes.post("/curation/proposals/{id}/refuse", name="curation-refuse")
@curators
async def refuse(request: web.Request) -> web.Response:
    return await _decide(request, "refuse")


@routes.post("/curation/proposals/{id}/return", name="curation-send-back")
@curators
async def send_back(request: web.Request) -> web.Response:
    return await _decide(request, "return")


# -- the rules in force, and pages that changed -----------------------------------------------------------------

async def _rules_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    rows = await services.rules(request.app[KERNEL], utcnow())
    chosen = services.Filters.of(request.query)
    kept = [row for row in rows if chosen.keeps(row)]
    return render(request, "curation/staff_rules.html", _frame(
        request, rows=kept, total=len(rows), soon=[row for row in rows if row.ending_soon], filters=chosen,
        may_clear=staff_of(request).has(StaffRole.SECURITY.value),
        scope_filter=[("", _("Any"))] + [(k, _(SCOPES[k])) for k in services.SCOPES],
        source_filter=[("", _("Any")), ("file", _("A policy file")), ("curated", _("Curated in the portal"))],
        **context), status)


@routes.get("/curation/rules", name="curation-rules")
@curators
async def rules_page(request: web.Request) -> web.Response:
    return await _rules_page(request)


@routes.post("/curation/checks/{id}/clear", name="curation-clear")
@curators
async def clear(request: web.Request) -> web.Response:
    """Security staff only: they judge whether a page that changed may stay open."""
    who = staff_of(request)
    if not who.has(StaffRole.SECURITY.value):
        return render(request, "errors/error.html", {
            "title": _("You cannot do this"),
            "message": _("Only security staff clear a flag on a page that changed.")}, status=403)
    try:
        await services.clear_flag(request.app[KERNEL], _number(request), by=who.username, now=utcnow())
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such flag.")) from None
    except Conflict as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    raise web.HTTPSeeOther("/curation/proposals?done=cleared")
