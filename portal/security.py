"""Headers, CSRF and the audit record of every request, as middlewares applied to all routes."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping

from aiohttp import web

from gatehouse.audit import AuditEvent, AuditUnavailable, Tag
from portal.i18n import _
from portal.keys import ACTOR, CSRF, KERNEL, TERMINAL, VIEWER

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSRF_COOKIE = "gh_csrf"
CSRF_FIELD = "csrf_token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def csrf_token(request: web.Request) -> str:
    """The token for forms on this page; the same value lives in a cookie (double submit, SameSite=Strict)."""
    token = request.get(CSRF) or request.cookies.get(CSRF_COOKIE)
    if not token or len(token) < 20:
        token = secrets.token_urlsafe(24)
    request[CSRF] = token
    return str(token)


def _not_text(values: Iterable[object]) -> bool:
    """A NUL in a field or in the address: no page takes one, and PostgreSQL refuses it in text."""
    return any(isinstance(v, str) and "\x00" in v for v in values)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every form carries the token of its cookie; no field and no part of the address holds a NUL."""
    if "\x00" in request.path or _not_text(request.query.values()):
        raise web.HTTPBadRequest(text=_("A field holds a character that is not text. Remove it and try again."))
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        form = await request.post()
        if _not_text(form.values()):
            raise web.HTTPBadRequest(text=_("A field holds a character that is not text. Remove it and try again."))
        sent = str(form.get(CSRF_FIELD, ""))
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not sent or not cookie or not hmac.compare_digest(sent, cookie):
            raise web.HTTPForbidden(text=_("The form expired or did not come from this portal. "
                                           "Go back, reload the page and try again."))
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect after login carries the new token too
        if CSRF in request:
            set_cookie(request, exc, CSRF_COOKIE, request[CSRF])
        raise
    if CSRF in request:
        set_cookie(request, response, CSRF_COOKIE, request[CSRF])
    return response


def rotate_csrf(request: web.Request) -> None:
    """A new token when who is logged in changes, so a token seen before login is worth nothing after it."""
    request[CSRF] = secrets.token_urlsafe(24)


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               max_age: int | None = None, *, navigable: bool = False) -> None:
    """Every cookie of the portal: HttpOnly, Secure when the portal is served over HTTPS, SameSite=Strict.

    `navigable`: SameSite=Lax instead, for a cookie that must come along when the inmate follows a link to the
    portal from another site (a block page's "Open the portal"). Lax sends it on top-level GET navigations only,
    and no GET of the portal changes anything; every POST still needs the CSRF token, whose cookie stays Strict,
    so a form posted from another site is refused (and carries no Lax cookie either)."""
    response.set_cookie(name, value, httponly=True, samesite="Lax" if navigable else "Strict", path="/",
                        max_age=max_age, secure=request.app[KERNEL].settings["portal.secure_cookies"])


def _harden(request: web.Request, headers: MutableMapping[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")  # staff pages must not come back from the cache


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _harden(request, exc.headers)
        raise
    _harden(request, response.headers)
    return response


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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


def _role(request: web.Request) -> str:
    """Who the request came from: `inmate`, a staff member's roles (`pending` before the second step), or
    `anonymous`."""
    viewer = request.get(VIEWER)
    if viewer is None or viewer.kind == "anonymous":
        return "anonymous"
    if viewer.staff is not None:
        return "pending" if viewer.kind == "pending" else ",".join(sorted(viewer.staff.roles))
    return "inmate"


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "-"


async def _record(request: web.Request, status: int) -> None:
    kernel = request.app[KERNEL]
    if kernel.audit is None:
        return
    event = AuditEvent(Tag.PORTAL_REQUEST, "portal", actor=request.get(ACTOR, ""),
                       client_addr=request.remote or "", method=request.method, host=request.host,
                       path=request.path, status=status, terminal=request.get(TERMINAL, ""),
                       reason=f"role={_role(request)} route={_route(request)}")
    try:
        await kernel.audit.write(event)
    except AuditUnavailable as exc:
        log.error("portal: request record lost (%s %s): %s", request.method, request.path, exc)
