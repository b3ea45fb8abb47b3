"""Staff pages: two-step login, TOTP enrolment, overview with security notices, own account."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web

from gatehouse import otp
from gatehouse import staff as accounts
from gatehouse.db.engine import utcnow
from gatehouse.errors import NotFound
from gatehouse.staff import NoticeKind
from portal import i18n
from portal.access import STAFF_COOKIE, Viewer, client_address, pending, public, staff, staff_of
from portal.i18n import N_, _
from portal.keys import ACTOR, KERNEL, STAFF_POLICY, VIEWER
from portal.layout import facility_zone, render
from portal.security import rotate_csrf, set_cookie
from portal.staff import services
from portal.staff.forms import CodeForm, ConfirmPasswordForm, PasswordForm, StaffLoginForm
from portal.throttle import LoginUnavailable, Throttled

routes = web.RouteTableDef()
ROLE_NAMES = {"education": N_("Education"), "security": N_("Security"), "supervisor": N_("Visit supervisor"),
              "admin": N_("Administrator")}


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return render(request, template, context, status)


def _code_message(refused: services.CodeRefused) -> str:
    if refused.reason == "out-of-sync":
        return _("That code belongs to another time. Check your device's clock (date, time and time zone), "
                 "then try again.")
    if refused.reason == "replayed":
        return _("That code was used already. Wait for the next code in your app.")
    if refused.reason == "recovery":
        return _("That recovery code is not valid or was used already.")
    return _("That code is not right. Enter the code your app shows now.")


R = TypeVar("R", bound=web.StreamResponse)


def _with_session(request: web.Request, response: R, token: str) -> R:
    set_cookie(request, response, STAFF_COOKIE, token)
    return response


@routes.get("/staff/login", name="staff-login")
@public
async def login_form(request: web.Request) -> web.Response:
    kind = request[VIEWER].kind
    if kind == "staff":
        raise web.HTTPFound("/staff")
    return _render(request, "staff/login.html", form=StaffLoginForm())


@routes.post("/staff/login")
@public
async def login_submit(request: web.Request) -> web.Response:
    form = StaffLoginForm.parse(await request.post())
    if form.errors:
        return _render(request, "staff/login.html", 400, form=form)
    kernel = request.app[KERNEL]
    try:
        token = await services.password_step(kernel, request.app[STAFF_POLICY], client_address(request),
                                             form.username, form.password)
    except services.WrongCredentials:
        return _render(request, "staff/login.html", 403, form=form,
                       message=_("Wrong username or password."))
    except Throttled as throttled:
        return _render(request, "staff/login.html", 429, form=form, message=throttled.message(facility_zone(request)))
    except LoginUnavailable as down:
        return _render(request, "staff/login.html", 503, form=form, message=down.message())
    request[ACTOR] = form.username
    rotate_csrf(request)
    raise _with_session(request, web.HTTPSeeOther("/staff/totp"), token)


@routes.get("/staff/totp", name="staff-totp")
@pending
async def totp_form(request: web.Request) -> web.Response:
    if not staff_of(request).enrolled:
        raise web.HTTPFound("/staff/enrol")
    return _render(request, "staff/totp.html", form=CodeForm())


@routes.post("/staff/totp")
@pending
async def totp_submit(request: web.Request) -> web.Response:
    who = staff_of(request)
    if not who.enrolled:
        raise web.HTTPFound("/staff/enrol")
    form = CodeForm.parse(await request.post())
    if form.errors:
        return _render(request, "staff/totp.html", 400, form=form)
    try:
        token = await services.second_step(request.app[KERNEL], request.app[STAFF_POLICY], who,
                                           request.cookies[STAFF_COOKIE], client_address(request), form.code)
    except services.CodeRefused as refused:
        if refused.reason == "double":  # this login's first submission logged in; its cookie is the one to keep
            raise web.HTTPSeeOther("/staff") from None
        form.errors["code"] = _code_message(refused)
        return _render(request, "staff/totp.html", 403, form=form)
    except NotFound:  # another request of this login finished it first; its cookie is the one to keep
        raise web.HTTPSeeOther("/staff") from None
    except Throttled as throttled:
        return _render(request, "staff/totp.html", 429, form=form, message=throttled.message(facility_zone(request)))
    except LoginUnavailable as down:
        return _render(request, "staff/totp.html", 503, form=form, message=down.message())
    rotate_csrf(request)
    raise _with_session(request, web.HTTPSeeOther("/staff"), token)


async def _enrol_page(request: web.Request, form: CodeForm, status: int = 200, message: str = "") -> web.Response:
    enrolment = await services.enrolment(request.app[KERNEL], staff_of(request))
    return _render(request, "staff/enrol.html", status, form=form, message=message, qr=enrolment.qr,
                   secret=otp.grouped(enrolment.secret))


@routes.get("/staff/enrol", name="staff-enrol")
@pending
async def enrol_form(request: web.Request) -> web.Response:
    if staff_of(request).enrolled:
        raise web.HTTPFound("/staff/totp")
    return await _enrol_page(request, CodeForm())


@routes.post("/staff/enrol")
@pending
async def enrol_submit(request: web.Request) -> web.Response:
    who = staff_of(request)
    if who.enrolled:
        raise web.HTTPFound("/staff/totp")
    form = CodeForm.parse(await request.post())
    if form.errors:
        return await _enrol_page(request, form, 400)
    try:
        token, codes = await services.enrol(request.app[KERNEL], request.app[STAFF_POLICY], who,
                                            request.cookies[STAFF_COOKIE], client_address(request), form.code)
    except services.CodeRefused as refused:
        if refused.reason == "double":
            raise web.HTTPSeeOther("/staff") from None
        form.errors["code"] = _code_message(refused)
        return await _enrol_page(request, form, 403)
    except NotFound:
        raise web.HTTPSeeOther("/staff") from None
    except Throttled as throttled:
        return await _enrol_page(request, form, 429, throttled.message(facility_zone(request)))
    except LoginUnavailable as down:
        return await _enrol_page(request, form, 503, down.message())
    # Shown in this response only: never stored in clear, never behind a URL that could be reloaded. Both factors
    # have passed, so the page's frame is that of the full session (its name, its links, the way out).
    rotate_csrf(request)
    full = await asyncio.to_thread(accounts.resolve_session, request.app[KERNEL].factory, request.app[STAFF_POLICY],
                                   token, utcnow())
    if full is not None:
        request[VIEWER] = Viewer(staff=full)
    response = _render(request, "staff/recovery_codes.html", codes=codes, first_time=True)
    return _with_session(request, response, token)


@routes.post("/staff/logout", name="staff-logout")
@public
async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        await services.log_out(request.app[KERNEL], request[VIEWER].staff, token, client_address(request))
    response = web.HTTPSeeOther("/staff/login")
    response.del_cookie(STAFF_COOKIE, path="/")
    raise response


def _notice_text(kind: str, at: str, address: str) -> str:
    if kind == NoticeKind.TOTP_REPLAYED:
        return _("On %(time)s someone entered a code for your account that had been used already "
                 "(from %(address)s). If that was not you, tell an administrator now.") % {
                     "time": at, "address": address}
    return _("On %(time)s a recovery code was used to log in to your account (from %(address)s). "
             "If that was not you, tell an administrator now.") % {"time": at, "address": address}


@routes.get("/staff", name="staff-overview")
@staff()
async def overview(request: web.Request) -> web.Response:
    who = staff_of(request)
    kernel = request.app[KERNEL]
    zone = facility_zone(request)
    notices = await asyncio.to_thread(accounts.take_notices, kernel.factory, who.account_id, utcnow())
    left = await asyncio.to_thread(accounts.recovery_codes_left, kernel.factory, who.account_id)
    return _render(request, "staff/overview.html",
                   roles=[_(ROLE_NAMES[r]) for r in sorted(who.roles) if r in ROLE_NAMES],
                   notices=[_notice_text(n.kind, i18n.format_datetime(n.at, zone), n.address) for n in notices],
                   codes_left=left)


def _account_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("password_form", PasswordForm())
    context.setdefault("codes_form", ConfirmPasswordForm())
    return _render(request, "staff/account.html", status, **context)


@routes.get("/staff/account", name="staff-account")
@staff()
async def account(request: web.Request) -> web.Response:
    return _account_page(request)


@routes.post("/staff/account/password", name="staff-password")
@staff()
async def password_submit(request: web.Request) -> web.Response:
    who = staff_of(request)
    form = PasswordForm.parse(await request.post(), who.username)
    if form.errors:
        return _account_page(request, 400, password_form=form)
    try:
        token = await services.change_password(request.app[KERNEL], who, request.cookies[STAFF_COOKIE],
                                               client_address(request), form.current, form.new)
    except Throttled as throttled:
        return _account_page(request, 429, password_form=form, message=throttled.message(facility_zone(request)))
    except LoginUnavailable as down:
        return _account_page(request, 503, password_form=form, message=down.message())
    except NotFound:
        raise web.HTTPSeeOther("/staff") from None
    if token is None:
        form.errors["current"] = _("That is not your current password.")
        return _account_page(request, 403, password_form=form)
    rotate_csrf(request)
    response = _account_page(request, done=_("Your password was changed. Every other session of your account "
                                             "has ended."))
    return _with_session(request, response, token)


@routes.post("/staff/account/recovery-codes", name="staff-recovery-codes")
@staff()
async def recovery_codes_submit(request: web.Request) -> web.Response:
    who = staff_of(request)
    form = ConfirmPasswordForm.parse(await request.post())
    if form.errors:
        return _account_page(request, 400, codes_form=form)
    try:
        codes = await services.regenerate_codes(request.app[KERNEL], who, client_address(request), form.password)
    except Throttled as throttled:
        return _account_page(request, 429, codes_form=form, message=throttled.message(facility_zone(request)))
    except LoginUnavailable as down:
        return _account_page(request, 503, codes_form=form, message=down.message())
    if codes is None:
        form.errors["password"] = _("That is not your password.")
        return _account_page(request, 403, codes_form=form)
    return _render(request, "staff/recovery_codes.html", codes=codes, first_time=False)
