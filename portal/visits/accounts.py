"""Visitors' accounts on the public listener: register, confirm the address, log in (password, then the code of
an app if the visitor set one up), log out, change the password, set up the app.

Every password and code is checked under the login limits that staff logins have (realm `visitor`, so a
visitor's address and a staff username never share a counter), reserved before any hash or code is computed;
wrong ones are in the audit log. One message for an unknown address and a wrong password.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import segno
from aiohttp import web

from gatehouse import otp
from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.staff import PASSWORD_MAX, PASSWORD_MIN
from gatehouse.visits import visitors
from gatehouse.visits.models import Visitor
from gatehouse.visits.visitors import VisitorIdentity
from portal import i18n, throttle
from portal.access import client_address
from portal.auth.services import record
from portal.i18n import _
from portal.keys import ACTOR, KERNEL
from portal.layout import facility_zone
from portal.security import rotate_csrf, set_cookie
from portal.transactions import change
from portal.visits.public import VISITOR, VISITOR_COOKIE, VISITOR_POLICY, anyone, code_step, page, visitor, visitor_of

REALM = "visitor"
BASE32 = re.compile(r"^[A-Z2-7]{16,64}$")
routes = web.RouteTableDef()
R = TypeVar("R", bound=web.StreamResponse)


def _text(data: Mapping[str, object], name: str) -> str:
    return str(data.get(name, ""))


def _new_password_errors(password: str, again: str, email: str) -> dict[str, str]:
    if len(password) < PASSWORD_MIN:
        return {"password": _("A password has at least %(num)d characters.") % {"num": PASSWORD_MIN}}
    if len(password) > PASSWORD_MAX:
        return {"password": _("A password has at most 1024 characters.")}
    if email and email in password.lower():
        return {"password": _("A password must not contain your e-mail address.")}
    if again != password:
        return {"again": _("The two passwords are not the same.")}
    return {}


@dataclass(slots=True)
class RegisterForm:
    name: str = ""
    email: str = ""
    password: str = ""
    again: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> RegisterForm:
        form = cls(" ".join(_text(data, "name").split()), _text(data, "email").strip().lower(),
                   _text(data, "password"), _text(data, "again"))
        if not form.name:
            form.errors["name"] = _("Enter your name as it is on your identity document.")
        elif len(form.name) > 255:
            form.errors["name"] = _("A name has at most 255 characters.")
        try:
            visitors.check_email(form.email)
        except InvalidInput:
            form.errors["email"] = _("Enter your e-mail address, like name@example.org.")
        form.errors.update(_new_password_errors(form.password, form.again, form.email))
        return form


@dataclass(slots=True)
class LoginForm:
    email: str = ""
    password: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> LoginForm:
        form = cls(_text(data, "email").strip().lower(), _text(data, "password"))
        if not form.email:
            form.errors["email"] = _("Enter your e-mail address.")
        elif len(form.email) > 255:
            form.errors["email"] = _("An e-mail address has at most 255 characters.")
        if not form.password:
            form.errors["password"] = _("Enter your password.")
        elif len(form.password) > PASSWORD_MAX:
            form.errors["password"] = _("A password has at most 1024 characters.")
        return form


def _code(data: Mapping[str, object], errors: dict[str, str]) -> str:
    code = "".join(_text(data, "code").split())
    if not code:
        errors["code"] = _("Enter the 6-digit code your app shows now.")
    elif len(code) != 6 or not code.isdigit():
        errors["code"] = _("A code is 6 digits.")
    return code


def _event(tag: Tag, actor: str, request: web.Request, reason: str = "") -> AuditEvent:
    return AuditEvent(tag, "visits", actor=actor, client_addr=client_address(request), reason=reason)


def _with_session(request: web.Request, response: R, token: str) -> R:
    set_cookie(request, response, VISITOR_COOKIE, token, navigable=True)  # Lax: links in e-mails log in
    rotate_csrf(request)
    return response


async def _reserve(request: web.Request, email: str = "") -> throttle.Attempt:
    """An attempt under the login limits, refused (and recorded) past them: before any hash or code."""
    kernel = request.app[KERNEL]
    try:
        return await throttle.before_attempt(kernel, client_address(request), email, realm=REALM)
    except throttle.Throttled as exc:
        await record(kernel, _event(Tag.VISITS_VISITOR_LOGIN_THROTTLED, email or "-", request, exc.scope))
        raise


def _limited(request: web.Request, exc: Exception) -> tuple[int, str]:
    """The status and the words for an attempt the limits refused, or for counters that do not answer."""
    if isinstance(exc, throttle.Throttled):
        return 429, exc.message(facility_zone(request))
    if isinstance(exc, throttle.LoginUnavailable):
        return 503, exc.message()
    raise exc


def _refused(request: web.Request, template: str, exc: Exception, **context: Any) -> web.Response:
    status, message = _limited(request, exc)
    return page(request, template, status, message=message, **context)


def _code_message(exc: otp.InvalidCode) -> str:
    if isinstance(exc, otp.Replayed):
        return _("That code was used already. Wait for the next code in your app.")
    if isinstance(exc, otp.OutOfSync):
        return _("That code belongs to another time. Check your device's clock (date, time and time zone), "
                 "then try again.")
    return _("That code is not right. Enter the code your app shows now.")


# -- register and confirm ---------------------------------------------------------------------------------------

@routes.get("/register", name="visits-register")
@anyone
async def register_form(request: web.Request) -> web.Response:
    return page(request, "visits/public/register.html", form=RegisterForm())


@routes.post("/register")
@anyone
async def register_submit(request: web.Request) -> web.Response:
    form = RegisterForm.parse(await request.post())
    if form.errors:
        return page(request, "visits/public/register.html", 400, form=form)
    kernel = request.app[KERNEL]
    try:
        await _reserve(request)  # one registration costs a hash and a mail: the address's limit holds
    except (throttle.Throttled, throttle.LoginUnavailable) as exc:
        return _refused(request, "visits/public/register.html", exc, form=form)
    language, now = i18n.current(), utcnow()

    def work(session: Any) -> tuple[int, bool]:
        person, secret = visitors.register(session, name=form.name, email=form.email, password=form.password,
                                           language=language, now=now)
        return person.id, bool(secret)

    try:
        visitor_id, new = await change(kernel, work)
    except InvalidInput:  # the form's checks are the kernel's; a difference is no reason to say more
        form.errors["email"] = _("Enter your e-mail address, like name@example.org.")
        return page(request, "visits/public/register.html", 400, form=form)
    await record(kernel, _event(Tag.VISITS_VISITOR_REGISTERED, f"visitor:{visitor_id}", request,
                                "new" if new else "registered already: the owner was mailed"))
    return page(request, "visits/public/registered.html", email=form.email)


async def _pending(request: web.Request) -> Visitor:
    secret = request.match_info["secret"]

    def work(session: Any) -> Visitor:
        return visitors.confirmation(session, secret, utcnow())

    try:
        return await change(request.app[KERNEL], work)
    except NotFound:
        raise web.HTTPNotFound(text=_("This link is not valid or has expired. Register again to get a new "
                                      "one.")) from None


@routes.get("/confirm/{secret}", name="visits-confirm")
@anyone
async def confirm_form(request: web.Request) -> web.Response:
    person = await _pending(request)
    return page(request, "visits/public/confirm.html", email=person.email, error="")


@routes.post("/confirm/{secret}")
@anyone
async def confirm_submit(request: web.Request) -> web.Response:
    """The password chosen at registration confirms the address: a link mailed to the owner of an address cannot
    confirm a registration that someone else made with it."""
    person = await _pending(request)
    password = _text(await request.post(), "password")[:PASSWORD_MAX]
    kernel = request.app[KERNEL]
    try:
        attempt = await _reserve(request, person.email)
    except (throttle.Throttled, throttle.LoginUnavailable) as exc:
        return _refused(request, "visits/public/confirm.html", exc, email=person.email, error="")
    who = await asyncio.to_thread(visitors.verify_password, kernel.factory, person.email, password)
    if who is None or who.visitor_id != person.id:
        await record(kernel, _event(Tag.VISITS_VISITOR_LOGIN_FAILURE, person.email, request, "confirmation"))
        return page(request, "visits/public/confirm.html", 403, email=person.email,
                    error=_("That is not the password you chose when you registered."))
    secret, now = request.match_info["secret"], utcnow()
    try:
        await change(kernel, lambda session: visitors.confirm_email(session, secret, now).id)
    except NotFound:
        raise web.HTTPSeeOther("/login") from None  # another request of this browser confirmed it first
    await attempt.logged_in()
    await record(kernel, _event(Tag.VISITS_VISITOR_CONFIRMED, f"visitor:{person.id}", request))
    token = await asyncio.to_thread(visitors.start_session, kernel.factory, request.app[VISITOR_POLICY], person.id,
                                    now)
    request[ACTOR] = f"visitor:{person.id}"
    raise _with_session(request, web.HTTPSeeOther("/visits"), token)


# -- log in and out ---------------------------------------------------------------------------------------------

@routes.get("/login", name="visits-login")
@anyone
async def login_form(request: web.Request) -> web.Response:
    who = request.get(VISITOR)
    if who is not None and who.totp_done:
        raise web.HTTPFound("/visits")
    return page(request, "visits/public/login.html", form=LoginForm())


def _state_message(who: VisitorIdentity) -> str:
    if who.suspended:
        return _("This account cannot be used. The facility gave this reason: %(reason)s") % {"reason": who.suspended}
    return _("Confirm your e-mail address first: follow the link in the e-mail we sent you.")


@routes.post("/login")
@anyone
async def login_submit(request: web.Request) -> web.Response:
    form = LoginForm.parse(await request.post())
    if form.errors:
        return page(request, "visits/public/login.html", 400, form=form)
    kernel = request.app[KERNEL]
    try:
        attempt = await _reserve(request, form.email)
    except (throttle.Throttled, throttle.LoginUnavailable) as exc:
        return _refused(request, "visits/public/login.html", exc, form=form)
    who = await asyncio.to_thread(visitors.verify_password, kernel.factory, form.email, form.password)
    form.password = ""
    if who is None:
        await record(kernel, _event(Tag.VISITS_VISITOR_LOGIN_FAILURE, form.email, request, "password"))
        return page(request, "visits/public/login.html", 403, form=form,
                    message=_("Wrong e-mail address or password."))
    await attempt.right()
    if who.suspended or not who.confirmed:  # said only to whoever knows the password
        return page(request, "visits/public/login.html", 403, form=form, message=_state_message(who))
    token = await asyncio.to_thread(visitors.start_session, kernel.factory, request.app[VISITOR_POLICY],
                                    who.visitor_id, utcnow())
    request[ACTOR] = f"visitor:{who.visitor_id}"
    if who.totp:
        raise _with_session(request, web.HTTPSeeOther("/login/code"), token)
    await attempt.logged_in()
    await record(kernel, _event(Tag.VISITS_VISITOR_LOGIN_SUCCESS, request[ACTOR], request))
    raise _with_session(request, web.HTTPSeeOther("/visits"), token)


@routes.get("/login/code", name="visits-login-code")
@code_step
async def code_form(request: web.Request) -> web.Response:
    return page(request, "visits/public/code.html", errors={})


@routes.post("/login/code")
@code_step
async def code_submit(request: web.Request) -> web.Response:
    who = request[VISITOR]
    errors: dict[str, str] = {}
    code = _code(await request.post(), errors)
    if errors:
        return page(request, "visits/public/code.html", 400, errors=errors)
    kernel = request.app[KERNEL]
    try:
        attempt = await _reserve(request, who.email)
    except (throttle.Throttled, throttle.LoginUnavailable) as exc:
        return _refused(request, "visits/public/code.html", exc, errors={})
    actor = f"visitor:{who.visitor_id}"
    try:
        await asyncio.to_thread(visitors.accept_code, kernel.factory, who.visitor_id, code, utcnow())
    except otp.InvalidCode as exc:
        replayed = isinstance(exc, otp.Replayed)
        await record(kernel, _event(Tag.VISITS_VISITOR_TOTP_REPLAYED if replayed else Tag.VISITS_VISITOR_LOGIN_FAILURE,
                                    actor, request, "code" if not replayed else ""))
        return page(request, "visits/public/code.html", 403, errors={"code": _code_message(exc)})
    try:
        token = await asyncio.to_thread(visitors.promote, kernel.factory, request.app[VISITOR_POLICY],
                                        request.cookies[VISITOR_COOKIE], utcnow())
    except NotFound:
        raise web.HTTPSeeOther("/login") from None
    await attempt.logged_in()
    await record(kernel, _event(Tag.VISITS_VISITOR_LOGIN_SUCCESS, actor, request))
    raise _with_session(request, web.HTTPSeeOther("/visits"), token)


@routes.post("/logout", name="visits-logout")
@anyone
async def logout(request: web.Request) -> web.Response:
    token, who = request.cookies.get(VISITOR_COOKIE), request.get(VISITOR)
    if token:
        await asyncio.to_thread(visitors.end_session, request.app[KERNEL].factory, token, utcnow())
    if who is not None:
        await record(request.app[KERNEL], _event(Tag.VISITS_VISITOR_LOGOUT, f"visitor:{who.visitor_id}", request))
    response = web.HTTPSeeOther("/")
    response.del_cookie(VISITOR_COOKIE, path="/")
    raise response


# -- my account -------------------------------------------------------------------------------------------------

def _account(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("errors", {})
    done = {"totp": _("Your code app is set up. Every login now asks for a code.")}.get(request.query.get("done", ""))
    context.setdefault("done", done or "")
    return page(request, "visits/public/account.html", status, who=visitor_of(request), **context)


@routes.get("/account", name="visits-account")
@visitor
async def account(request: web.Request) -> web.Response:
    return _account(request)


@routes.post("/account/password", name="visits-password")
@visitor
async def password_submit(request: web.Request) -> web.Response:
    who = visitor_of(request)
    data = await request.post()
    current, new = _text(data, "current")[:PASSWORD_MAX], _text(data, "new")
    errors = _new_password_errors(new, _text(data, "again"), who.email)
    errors = {"new" if k == "password" else k: v for k, v in errors.items()}
    if not current:
        errors["current"] = _("Enter your current password.")
    if errors:
        return _account(request, 400, errors=errors)
    kernel = request.app[KERNEL]
    try:
        attempt = await _reserve(request, who.email)
    except (throttle.Throttled, throttle.LoginUnavailable) as exc:
        status, message = _limited(request, exc)
        return _account(request, status, message=message)
    actor = f"visitor:{who.visitor_id}"
    if await asyncio.to_thread(visitors.verify_password, kernel.factory, who.email, current) is None:
        await record(kernel, _event(Tag.VISITS_VISITOR_LOGIN_FAILURE, actor, request, "password change"))
        return _account(request, 403, errors={"current": _("That is not your current password.")})
    await attempt.right()
    now = utcnow()
    await change(kernel, lambda session: visitors.change_password(session, who.visitor_id, new, now,
                                                                  keep=who.session_id))
    token = await asyncio.to_thread(visitors.rotate, kernel.factory, request.cookies[VISITOR_COOKIE], now)
    await record(kernel, _event(Tag.VISITS_VISITOR_PASSWORD_CHANGED, actor, request))
    response = _account(request, done=_("Your password was changed. Every other session of your account has "
                                        "ended."))
    return _with_session(request, response, token)


def _issuer(request: web.Request) -> str:
    return f"Gatehouse {request.app[KERNEL].settings['facility.name']}"


def _totp_page(request: web.Request, secret: str, status: int = 200, **context: Any) -> web.Response:
    uri = otp.provisioning_uri(secret, visitor_of(request).email, _issuer(request))
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="#000", light="#fff")
    context.setdefault("errors", {})
    return page(request, "visits/public/totp.html", status, qr=qr, secret=secret, grouped=otp.grouped(secret),
                **context)


@routes.get("/account/totp", name="visits-totp")
@visitor
async def totp_form(request: web.Request) -> web.Response:
    who = visitor_of(request)
    if who.totp:
        raise web.HTTPFound("/account")
    return _totp_page(request, visitors.begin_totp(who.email, _issuer(request)).secret)


@routes.post("/account/totp")
@visitor
async def totp_submit(request: web.Request) -> web.Response:
    """The secret travels in the form, as the QR code shows it: it is kept only once a code of it is right."""
    who = visitor_of(request)
    if who.totp:
        raise web.HTTPSeeOther("/account")
    data = await request.post()
    secret = _text(data, "secret")
    if not BASE32.match(secret):
        raise web.HTTPBadRequest(text=_("The form expired or did not come from this portal. "
                                        "Go back, reload the page and try again."))
    errors: dict[str, str] = {}
    code = _code(data, errors)
    if errors:
        return _totp_page(request, secret, 400, errors=errors)
    kernel = request.app[KERNEL]
    try:
        await _reserve(request, who.email)
    except (throttle.Throttled, throttle.LoginUnavailable) as exc:
        status, message = _limited(request, exc)
        return _totp_page(request, secret, status, message=message)
    try:
        await asyncio.to_thread(visitors.confirm_totp, kernel.factory, who.visitor_id, secret, code, utcnow())
    except otp.InvalidCode as exc:
        return _totp_page(request, secret, 403, errors={"code": _code_message(exc)})
    except Conflict:
        raise web.HTTPSeeOther("/account") from None
    await record(kernel, _event(Tag.VISITS_VISITOR_TOTP_ADDED, f"visitor:{who.visitor_id}", request))
    raise web.HTTPSeeOther("/account?done=totp")
