"""Who may use which route: every handler declares it, the session middleware enforces it, nothing is implied.

A route without a declaration stops the portal at start-up (`check_routes`), and the middleware refuses it
too, so a forgotten decorator fails closed rather than open.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.sessions import ActiveSession
from gatehouse.staff import StaffIdentity, Stage, resolve_session
from portal import i18n
from portal.i18n import _
from portal.keys import ACTOR, KERNEL, STAFF_POLICY, TERMINAL, VIEWER
from portal.layout import render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
INMATE_COOKIE = "gh_session"
STAFF_COOKIE = "gh_staff"
LANGUAGE_COOKIE = "gh_lang"
_ATTR = "__gatehouse_access__"


class Kind(enum.Enum):
    PUBLIC = "public"
    INMATE = "inmate"
    PENDING = "pending"
    """A staff member between password and second factor."""
    STAFF = "staff"
    READER = "reader"
    """An inmate or any staff member with a full session (the offline libraries)."""


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    roles: frozenset[str] = frozenset()
    """For STAFF: any of these roles; empty means any staff member."""

    def describe(self) -> str:
        return self.kind.value + (f"({', '.join(sorted(self.roles))})" if self.roles else "")


@dataclass(frozen=True, slots=True)
class Viewer:
    inmate: ActiveSession | None = None
    staff: StaffIdentity | None = None

    @property
    def kind(self) -> str:
        if self.staff is not None:
            return "staff" if self.staff.stage is Stage.FULL else "pending"
        return "inmate" if self.inmate is not None else "anonymous"

    def has(self, *roles: str) -> bool:
        return self.staff is not None and self.staff.has(*roles)


def _declare(rule: Rule) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _ATTR, rule)
        return handler
    return mark


public = _declare(Rule(Kind.PUBLIC))
inmate = _declare(Rule(Kind.INMATE))
reader = _declare(Rule(Kind.READER))
pending = _declare(Rule(Kind.PENDING))


def staff(*roles: StaffRole) -> Callable[[H], H]:
    return _declare(Rule(Kind.STAFF, frozenset(r.value for r in roles)))


def rule_of(handler: object) -> Rule | None:
    rule = getattr(handler, _ATTR, None)
    return rule if isinstance(rule, Rule) else None


def check_routes(app: web.Application) -> None:
    """Refuse to start with a route that does not say who may use it."""
    for route in app.router.routes():
        if isinstance(route.resource, web.StaticResource):
            continue
        if rule_of(route.handler) is None:
            raise RuntimeError(f"route {route.method} {route.resource.canonical if route.resource else '?'} "
                               f"does not declare who may use it (portal.access)")


def allows(rule: Rule, viewer: Viewer) -> bool:
    if rule.kind is Kind.PUBLIC:
        return True
    if rule.kind is Kind.INMATE:
        return viewer.inmate is not None and viewer.staff is None
    if rule.kind is Kind.PENDING:
        return viewer.kind == "pending"
    if rule.kind is Kind.READER:
        return viewer.kind in ("inmate", "staff")
    return viewer.kind == "staff" and (not rule.roles or viewer.has(*rule.roles))


def staff_of(request: web.Request) -> StaffIdentity:
    """The staff member behind a request on a staff route (its rule let only staff through; a wrong rule is
    refused here rather than trusted)."""
    who = request[VIEWER].staff
    if who is None:
        raise web.HTTPForbidden()
    return who


def reader_of(request: web.Request) -> tuple[str, str]:
    """Who reads on a `reader` route, as audit records name them: a staff member, or an inmate and their terminal."""
    viewer = request[VIEWER]
    if viewer.staff is not None:
        return viewer.staff.username, ""
    if viewer.inmate is None:  # the route's rule lets only inmates and staff through
        raise web.HTTPForbidden()
    return viewer.inmate.inmate_number, viewer.inmate.terminal_name


def acting(request: web.Request) -> tuple[str, str]:
    """Who acts and from where, as audit records name them."""
    return staff_of(request).username, client_address(request)


def client_address(request: web.Request) -> str:
    remote = request.remote or ""
    return remote[7:] if remote.startswith("::ffff:") else remote


async def _viewer(request: web.Request) -> Viewer:
    kernel = request.app[KERNEL]
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        identity = await asyncio.to_thread(resolve_session, kernel.factory, request.app[STAFF_POLICY], token,
                                           utcnow())
        if identity is not None:
            request[ACTOR] = identity.username
            return Viewer(staff=identity)
    token = request.cookies.get(INMATE_COOKIE)
    if token:
        from portal.auth import services  # the inmate domain's own lookup

        active = await services.current(kernel, client_address(request), token)
        if active is not None:
            request[ACTOR], request[TERMINAL] = active.inmate_number, active.terminal_name
            return Viewer(inmate=active)
    return Viewer()


def language_of(request: web.Request, viewer: Viewer) -> str:
    """The person's own choice once known; before login the language cookie, then the browser's."""
    if viewer.staff is not None:
        return viewer.staff.language
    if viewer.inmate is not None:
        return viewer.inmate.language
    default: str = request.app[KERNEL].settings["facility.language"]
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in i18n.NAMES:
        return chosen
    return i18n.negotiate(request.headers.get("Accept-Language", ""), default)


def _refusal(request: web.Request, rule: Rule, viewer: Viewer) -> web.StreamResponse:
    if viewer.kind == "anonymous" and rule.kind in (Kind.INMATE, Kind.READER):
        raise web.HTTPFound("/login")
    if viewer.kind == "anonymous" and rule.kind in (Kind.STAFF, Kind.PENDING):
        raise web.HTTPFound("/staff/login")
    if viewer.staff is not None and viewer.kind == "pending" and rule.kind in (Kind.STAFF, Kind.READER):
        raise web.HTTPFound("/staff/totp" if viewer.staff.enrolled else "/staff/enrol")
    if viewer.kind == "staff" and rule.kind is Kind.PENDING:
        raise web.HTTPFound("/staff")
    return render(request, "errors/error.html", {
        "title": _("You cannot open this page"),
        "message": _("This page is for staff only.") if viewer.kind == "inmate" else
        _("Your account does not give access to this page. If you need it, ask an administrator."),
    }, status=403)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identity, then language, then the route's rule: in that order, for every route but static files."""
    match = request.match_info
    if isinstance(match.route.resource, web.StaticResource):
        return await handler(request)
    viewer = await _viewer(request)
    request[VIEWER] = viewer
    i18n.activate(language_of(request, viewer))
    rule = rule_of(match.handler)
    if rule is None:
        if isinstance(match.http_exception, web.HTTPException):
            return await handler(request)  # aiohttp's own 404/405 for unknown paths
        raise web.HTTPForbidden(text="route without an access rule")
    if not allows(rule, viewer):
        return _refusal(request, rule, viewer)
    return await handler(request)
