"""Login, home and logout pages for inmates at a terminal."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from gatehouse.sessions import ActiveSession, LoginRefused
from portal.auth import services
from portal.auth.forms import LoginForm
from portal.keys import ACTOR, KERNEL, TERMINAL
from portal.security import csrf_token

SESSION_COOKIE = "gh_session"
routes = web.RouteTableDef()


def _address(request: web.Request) -> str:
    remote = request.remote or ""
    return remote[7:] if remote.startswith("::ffff:") else remote


async def _active(request: web.Request) -> ActiveSession | None:
    active = await services.current(request.app[KERNEL], _address(request), request.cookies.get(SESSION_COOKIE))
    if active is not None:
        request[ACTOR], request[TERMINAL] = active.inmate_number, active.terminal_name
    return active


def _login_page(request: web.Request, form: LoginForm, message: str = "", status: int = 200) -> web.Response:
    context: dict[str, Any] = {"form": form, "message": message, "csrf_token": csrf_token(request)}
    return aiohttp_jinja2.render_template("auth/login.html", request, context, status=status)


@routes.get("/", name="index")
async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/home" if await _active(request) else "/login")


@routes.get("/login", name="login")
async def login_form(request: web.Request) -> web.Response:
    if await _active(request):
        raise web.HTTPFound("/home")
    return _login_page(request, LoginForm())


@routes.post("/login")
async def login_submit(request: web.Request) -> web.Response:
    form = LoginForm.parse(await request.post())
    if form.errors:
        return _login_page(request, form, status=400)
    try:
        active = await services.log_in(request.app[KERNEL], _address(request), form.inmate_number, form.pin)
    except LoginRefused as refused:
        form.pin = ""
        return _login_page(request, form, str(refused), status=403)
    request[ACTOR], request[TERMINAL] = active.inmate_number, active.terminal_name
    response = web.HTTPSeeOther("/home")
    response.set_cookie(SESSION_COOKIE, active.token, httponly=True, samesite="Strict", path="/")
    raise response


@routes.get("/home", name="home")
async def home(request: web.Request) -> web.Response:
    active = await _active(request)
    if active is None:
        raise web.HTTPFound("/login")
    return aiohttp_jinja2.render_template("auth/home.html", request, {
        "session": active, "csrf_token": csrf_token(request),
        "facility": request.app[KERNEL].settings["facility.name"],
    })


@routes.post("/logout", name="logout")
async def logout(request: web.Request) -> web.Response:
    active = await _active(request)
    if active is not None:
        await services.log_out(request.app[KERNEL], active, _address(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
