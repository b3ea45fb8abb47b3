"""The public listener for visitors (families and lawyers): its own aiohttp application, meant for the internet.

Nothing of the inmate or staff portal is mounted here, and no portal handler can be: every route must declare a
visitor rule of this module (`anyone`, `code_step`, `visitor`, `verified`), which no portal handler carries, or
the listener does not start. Static files are a short list, not the portal's folder. The portal's pieces that
hold no identity are reused: its security headers, CSRF, error pages, languages and page frame (this app's
`base.html` replaces the portal's, so the portal's partials and error page look like visitor pages here).

Other visitor pages (booking, joining a call) are added with `create_public_app(kernel, extra=[routes])`, or by
adding their table to `ROUTES`; their handlers read the visitor with `visitor_of(request)`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gatehouse.audit import AuditEvent, AuditUnavailable, Tag
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.settings import LANGUAGES, Settings
from gatehouse.visits import visitors
from gatehouse.visits.visitors import VisitorIdentity, VisitorSessionPolicy
from portal import i18n
from portal.access import LANGUAGE_COOKIE, Viewer, client_address, language_of
from portal.errors import errors_middleware
from portal.i18n import N_, _
from portal.keys import ACTOR, KERNEL, VIEWER
from portal.layout import Link, facility_zone, render, safe_next
from portal.security import csrf_middleware, headers_middleware, set_cookie
from portal.transactions import read
from portal.visits.calls import Calls, use_calls

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
PORTAL = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
VISITOR_COOKIE = "gh_visitor"
VISITOR = web.RequestKey("visitor", VisitorIdentity)
"""Set on a request whose cookie belongs to an open visitor session (also one still at the code step)."""
VISITOR_POLICY = web.AppKey("visitor_policy", VisitorSessionPolicy)
STATIC_FILES = ("portal.css", "visits/call.css", "visits/call.js")
"""All this listener serves of the portal's static folder: the pages' style and the call's page."""
ROUTES: list[web.RouteTableDef] = []
"""Route tables every public listener serves besides the accounts' (a domain adds its table here)."""
SECRET_ROUTES = frozenset({"/confirm/{secret}"})
"""Routes whose path holds a secret: the audit log records the route instead."""
_MARK = "__gatehouse_visitor_rule__"
_serving: ContextVar[web.Request | None] = ContextVar("visits_public_request", default=None)
"""The request the current task serves, for the frame that every template (and error page) draws."""


class Need(enum.Enum):
    ANYONE = "anyone"
    CODE = "code"
    """The password was right; the code of the visitor's app is still to come."""
    VISITOR = "visitor"
    """Logged in with every factor the account has."""
    VERIFIED = "verified"
    """Logged in, and the identity checked by staff: may book and join visits."""


def _declare(need: Need) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _MARK, need)
        return handler
    return mark


anyone = _declare(Need.ANYONE)
code_step = _declare(Need.CODE)
visitor = _declare(Need.VISITOR)
verified = _declare(Need.VERIFIED)


def need_of(handler: object) -> Need | None:
    need = getattr(handler, _MARK, None)
    return need if isinstance(need, Need) else None


def check_routes(app: web.Application) -> None:
    """Refuse to start with a route that does not say which visitors may use it (a portal handler says not)."""
    for route in app.router.routes():
        if need_of(route.handler) is None:
            raise RuntimeError(f"route {route.method} {route.resource.canonical if route.resource else '?'} of the "
                               "public listener does not declare who may use it (portal.visits.public)")


def allows(need: Need, who: VisitorIdentity | None) -> bool:
    if need is Need.ANYONE:
        return True
    if need is Need.CODE:
        return who is not None and not who.totp_done
    return who is not None and who.totp_done and (need is Need.VISITOR or who.verified)


def visitor_of(request: web.Request) -> VisitorIdentity:
    """The visitor behind a request on a `visitor` or `verified` route (a wrong rule is refused, not trusted)."""
    if VISITOR not in request or not request[VISITOR].totp_done:
        raise web.HTTPForbidden()
    return request[VISITOR]


def public_url(settings: Settings) -> str:
    """Where visitors reach this listener, as e-mails link to it."""
    url: str = settings["visits.public_url"]
    return (url or f"http://{settings['visits.host']}:{settings['visits.port']}").rstrip("/")


def _refusal(request: web.Request, need: Need, who: VisitorIdentity | None) -> web.StreamResponse:
    if who is None:
        raise web.HTTPFound("/login")
    if not who.totp_done:
        raise web.HTTPFound("/login/code")
    if need is Need.CODE:
        raise web.HTTPFound("/visits")
    return render(request, "errors/error.html", {
        "title": _("Your account is not verified yet"),
        "message": _("Staff must check your identity document before you can book or join a visit.")}, status=403)


@web.middleware
async def visitor_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who the visitor is, then their language, then the route's rule: for every route."""
    request[VIEWER] = Viewer()  # nobody of the portal: the portal's frame and error pages show no one
    _serving.set(request)
    who: VisitorIdentity | None = None
    token = request.cookies.get(VISITOR_COOKIE)
    if token:
        who = await asyncio.to_thread(visitors.resolve_session, request.app[KERNEL].factory,
                                      request.app[VISITOR_POLICY], token, utcnow())
    if who is not None:
        request[VISITOR], request[ACTOR] = who, f"visitor:{who.visitor_id}"
    i18n.activate(who.language if who is not None and who.totp_done else language_of(request, Viewer()))
    need = need_of(request.match_info.handler)
    if need is None:
        if isinstance(request.match_info.http_exception, web.HTTPException):
            raise request.match_info.http_exception  # 404/405 for what this listener does not serve, form or not
        raise web.HTTPForbidden(text="route without an access rule")
    if not allows(need, who):
        return _refusal(request, need, who)
    return await handler(request)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "-"


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request in the audit log, as the portal records its own, with the visitor as the actor; a
    confirmation link's secret is in its path and must not reach the log (`SECRET_ROUTES`)."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if not request.path.startswith("/static/"):
            await _record(request, status)


async def _record(request: web.Request, status: int) -> None:
    kernel = request.app[KERNEL]
    if kernel.audit is None:
        return
    route = _route(request)
    path = route if route in SECRET_ROUTES else request.path
    who = request.get(VISITOR)
    role = "anonymous" if who is None else "visitor" if who.totp_done else "visitor-code-step"
    event = AuditEvent(Tag.PORTAL_REQUEST, "visits", actor=request.get(ACTOR, ""), client_addr=client_address(request),
                       method=request.method, host=request.host, path=path,
                       status=status, reason=f"role={role} route={route}")
    try:
        await kernel.audit.write(event)
    except AuditUnavailable as exc:
        log.error("visits: request record lost (%s %s): %s", request.method, route, exc)


def frame(request: web.Request) -> dict[str, Any]:
    """What the visitors' frame shows: their links and name, or the way in."""
    who = request.get(VISITOR)
    signed = who is not None and who.totp_done
    links = ((("/", N_("Video visits")), ("/visits", N_("My visits")), ("/account", N_("My account"))) if signed else
             (("/", N_("Video visits")), ("/register", N_("Register")), ("/login", N_("Log in"))))
    path = request.path
    under = [href for href, _label in links if path == href or (href != "/" and path.startswith(href + "/"))]
    current = max(under, key=len, default="")
    return {"links": [Link(href, _(label), href == current) for href, label in links],
            "name": who.name if who is not None and signed else "", "signed_in": signed}


def _current_frame() -> dict[str, Any]:
    """The frame of the request this task serves (templates, error pages included, call it without arguments)."""
    request = _serving.get()
    if request is None:
        raise RuntimeError("a visitor page rendered outside a request of the public listener")
    return frame(request)


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A visitor page in the shared frame."""
    return render(request, template, context, status)


# -- the pages of this module: what visits are, my visits, the language, static files, health -------------------

routes = web.RouteTableDef()


@routes.get("/", name="visits-index")
@anyone
async def index(request: web.Request) -> web.Response:
    settings = request.app[KERNEL].settings
    return page(request, "visits/public/index.html", record=settings["visits.record"],
                max_visitors=settings["visits.max_visitors"])


@routes.get("/visits", name="visits-mine")
@visitor
async def my_visits(request: web.Request) -> web.Response:
    who = visitor_of(request)
    now = utcnow()

    def work(session: Any) -> tuple[list[visitors.Listed], list[visitors.VisitSummary]]:
        return visitors.inmates_of(session, who.visitor_id), visitors.visits_of(session, who.visitor_id, now)

    inmates, visits = await read(request.app[KERNEL], work)
    zone = facility_zone(request)
    shown = [{"id": v.id, "inmate": v.inmate_name, "day": i18n.format_date(v.starts_at, zone),
              "time": f"{i18n.format_time(v.starts_at, zone)} – {i18n.format_time(v.ends_at, zone)}",
              "legal": v.visit_class == "legal", "status": _(STATUS_WORDS.get(v.status, v.status)),
              "reason": v.close_reason, "recorded": v.recorded, "past": v.ends_at <= now} for v in visits]
    return page(request, "visits/public/visits.html", who=who, inmates=inmates, visits=shown)


STATUS_WORDS = {"requested": N_("Waiting for approval"), "approved": N_("Booked"), "cancelled": N_("Cancelled"),
                "refused": N_("Refused"), "ended": N_("Ended early")}


@routes.post("/language", name="visits-language")
@anyone
async def choose_language(request: web.Request) -> web.Response:
    """Kept with the visitor's account once logged in (their e-mails follow it), in a cookie before."""
    data = await request.post()
    language = str(data.get("language", ""))
    if language not in LANGUAGES:
        raise web.HTTPBadRequest(text=f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    who = request.get(VISITOR)
    if who is not None and who.totp_done:
        await asyncio.to_thread(visitors.set_language, request.app[KERNEL].factory, who.visitor_id, language)
    response = web.HTTPSeeOther(safe_next(str(data.get("next", "/"))))
    set_cookie(request, response, LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, navigable=True)
    raise response


@routes.get("/static/{name:.+}", name="visits-static")
@anyone
async def static_file(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(PORTAL / "static" / name, headers={"Cache-Control": "public, max-age=3600"})


@routes.get("/healthz", name="visits-healthz")
@anyone
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def templates() -> jinja2.BaseLoader:
    """This listener's `base.html` first; then the portal's partials and error page, and the visits' screens."""
    return jinja2.FileSystemLoader([TEMPLATES / "visits" / "public" / "frame", PORTAL / "templates", TEMPLATES])


async def _check_at_start(app: web.Application) -> None:
    check_routes(app)  # routes added after the factory returned are checked too


def create_public_app(kernel: Kernel, *, extra: Iterable[web.RouteTableDef] = (),
                      policy: VisitorSessionPolicy | None = None, calls: Calls | None = None) -> web.Application:
    """The visitors' listener: accounts, the visits page, the call and whatever `extra` (and `ROUTES`) hold.
    `calls`: the video visits' hub, shared with the portal when both run in this process."""
    from portal.visits import accounts, join  # their views use this module's rules

    app = web.Application(middlewares=[headers_middleware, audit_middleware, errors_middleware, visitor_middleware,
                                       csrf_middleware], client_max_size=1024 * 1024)
    app[KERNEL] = kernel
    app[VISITOR_POLICY] = policy or VisitorSessionPolicy()
    env = aiohttp_jinja2.setup(app, loader=templates(), autoescape=True, undefined=jinja2.StrictUndefined,
                               extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["portal_name"] = "Gatehouse"
    env.globals["visitor_frame"] = _current_frame
    for table in (routes, accounts.routes, join.visitor_routes, *ROUTES, *extra):
        app.add_routes(table)
    use_calls(app, calls or Calls(kernel))
    check_routes(app)
    app.on_startup.append(_check_at_start)
    return app

