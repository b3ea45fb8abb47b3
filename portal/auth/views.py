"""Inmate pages at a terminal (login, home, logout) and the language switch every page carries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gatehouse.sessions import LoginRefused
from gatehouse.settings import LANGUAGES
from gatehouse.staff import set_language as set_staff_language
from portal.access import INMATE_COOKIE, LANGUAGE_COOKIE, client_address, inmate, public
from portal.auth import services, sites
from portal.auth.forms import LoginForm
from portal.keys import ACTOR, KERNEL, TERMINAL, VIEWER
from portal.labels import CATEGORY_LABELS, KIND_LABELS, label
from portal.layout import facility_zone, render, safe_next
from portal.learning import services as learning
from portal.security import rotate_csrf, set_cookie
from portal.throttle import LoginUnavailable, Throttled

routes = web.RouteTableDef()


def _login_page(request: web.Request, form: LoginForm, message: str = "", status: int = 200) -> web.Response:
    context: dict[str, Any] = {"form": form, "message": message}
    return render(request, "auth/login.html", context, status)


@routes.get("/", name="index")
@public
async def index(request: web.Request) -> web.Response:
    kind = request[VIEWER].kind
    raise web.HTTPFound({"inmate": "/home", "staff": "/staff", "pending": "/staff/totp"}.get(kind, "/login"))


@routes.get("/login", name="login")
@public
async def login_form(request: web.Request) -> web.Response:
    if request[VIEWER].inmate is not None:
        raise web.HTTPFound("/home")
    return _login_page(request, LoginForm())


@routes.post("/login")
@public
async def login_submit(request: web.Request) -> web.Response:
    form = LoginForm.parse(await request.post())
    if form.errors:
        return _login_page(request, form, status=400)
    kernel = request.app[KERNEL]
    try:
        active = await services.log_in(kernel, client_address(request), form.inmate_number, form.pin)
    except LoginRefused as refused:
        form.pin = ""
        return _login_page(request, form, services.refusal_message(refused, facility_zone(request)), status=403)
    except Throttled as throttled:
        return _login_page(request, form, throttled.message(facility_zone(request)), status=429)
    except LoginUnavailable as down:
        return _login_page(request, form, down.message(), status=503)
    request[ACTOR], request[TERMINAL] = active.inmate_number, active.terminal_name
    response = web.HTTPSeeOther("/home")
    set_cookie(request, response, INMATE_COOKIE, active.token, navigable=True)  # also bound to the terminal's address
    rotate_csrf(request)
    raise response


@routes.get("/home", name="home")
@inmate
async def home(request: web.Request) -> web.Response:
    active = request[VIEWER].inmate
    kind = active.terminal_kind if active is not None else ""
    now = datetime.now(UTC)
    today = now.astimezone(facility_zone(request)).date()
    weekly, closed = services.opening(request.app[KERNEL], kind, today)
    spent = await services.minutes_today(request.app[KERNEL], active, now) if active is not None else []
    minutes = None if spent is None else [(label(CATEGORY_LABELS, m.category), m) for m in spent]
    found = sites.open_now(request.app[KERNEL].policies.snapshot, active.subject, now) if active is not None else []
    exhausted = {m.category for m in spent or [] if m.left == 0}
    open_sites = [(label(CATEGORY_LABELS, category), group, category in exhausted)
                  for category, group in sites.by_category(found)]
    courses = await learning.titles(request.app[KERNEL], {c for site in found for c in site.courses})
    return render(request, "auth/home.html", {"session": active, "terminal_kind": label(KIND_LABELS, kind),
                                              "weekly": weekly, "closed_days": closed, "minutes": minutes,
                                              "sites": open_sites, "course_titles": courses})


@routes.post("/logout", name="logout")
@public
async def logout(request: web.Request) -> web.Response:
    active = request[VIEWER].inmate
    if active is not None:
        await services.log_out(request.app[KERNEL], active, client_address(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(INMATE_COOKIE, path="/")
    raise response


@routes.post("/language", name="language")
@public
async def choose_language(request: web.Request) -> web.Response:
    """Kept with the person when logged in (inmate or staff), in a cookie before login."""
    data = await request.post()
    language = str(data.get("language", ""))
    back = safe_next(str(data.get("next", "/")))
    if language not in LANGUAGES:
        raise web.HTTPBadRequest(text=f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    viewer = request[VIEWER]
    kernel = request.app[KERNEL]
    if viewer.inmate is not None:
        await services.choose_language(kernel, viewer.inmate, language)
    elif viewer.staff is not None:
        await asyncio.to_thread(set_staff_language, kernel.factory, viewer.staff.account_id, language)
    response = web.HTTPSeeOther(back)
    set_cookie(request, response, LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, navigable=True)
    raise response
