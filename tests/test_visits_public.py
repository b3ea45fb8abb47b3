"""The visitors' public listener as `gatehouse run` starts it, with mail through a real SMTP server (aiosmtpd on
loopback): a family registers, follows the mailed link, is verified by security staff, logs in with a password
and a code app; wrong passwords are limited and recorded; a relay that is down loses nothing; visit mail in the
visitor's language with its .ics; no route of the portal is served there; axe-core in four languages."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pyotp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from icalendar import Calendar
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select, update

from gatehouse import staff as accounts
from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate
from gatehouse.sessions import login
from gatehouse.staff import StaffSessionPolicy
from gatehouse.visits import outbox, visitors
from gatehouse.visits.models import Booth, ListEntry, ListStatus, MailKind, Outbox, Visit, VisitGuest, VisitStatus
from portal import i18n
from portal.app import create_app
from portal.visits import mailing
from portal.visits.public import STATIC_FILES, need_of
from tests.conftest import Origin
from tests.helpers import (
    CELL,
    INMATE,
    NEEDS_CHROMIUM,
    PIN,
    Platform,
    free_port,
    launched_chromium,
    populate,
    staff_client,
)
from tests.test_access import targets
from tests.test_browser_portal import as_staff, axe, choose_language, opened

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.filterwarnings("ignore::ResourceWarning")]
PASSWORD = "the long road to the coast"
SENDER = "visits@gatehouse.test"
LINK = re.compile(r"(http://\S+/confirm/[A-Za-z0-9_-]+)")


@dataclass
class Inbox:
    """What the relay took, parsed; an aiosmtpd handler."""

    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 2.0.0 accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if address in str(m["To"])]

    async def wait_for(self, address: str, count: int = 1, seconds: float = 15) -> EmailMessage:
        deadline = time.monotonic() + seconds
        while len(self.to(address)) < count:
            assert time.monotonic() < deadline, f"no mail for {address} (got {len(self.to(address))})"
            await asyncio.sleep(0.1)
        return self.to(address)[count - 1]


@dataclass
class Relay:
    port: int
    inbox: Inbox = field(default_factory=Inbox)
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def calendar_of(message: EmailMessage) -> Calendar:
    [part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    content = part.get_payload(decode=True)
    assert isinstance(content, bytes)
    return Calendar.from_ical(content)


@dataclass
class Site(Platform):
    relay: Relay | None = None

    @property
    def public(self) -> str:
        assert self.up.visits is not None
        return f"http://{self.up.visits[0]}:{self.up.visits[1]}"


async def serve(tmp: Path, relay: Relay | None, **overrides: Any) -> AsyncIterator[Site]:
    settings = initialise(tmp / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    settings = settings.replace(mail__host="127.0.0.1" if relay else "", mail__port=relay.port if relay else 25,
                                mail__sender=SENDER, login__attempts_per_address=10_000,
                                login__attempts_per_minute=10_000, login__staff_failures_per_account=3, **overrides)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mailing, "ROUND_SECONDS", 0.3)  # the round's pace, so tests need not wait five seconds
        async with running(settings) as up:
            yield Site(up, Origin(), settings, relay)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    relay = Relay(free_port())
    relay.start()
    yield relay
    relay.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory, relay: Relay) -> AsyncIterator[Site]:
    async for up in serve(tmp_path_factory.mktemp("public"), relay):
        yield up


@dataclass(frozen=True)
class Reply:
    status: int
    location: str
    text: str
    url: str


def browser_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def get(client: aiohttp.ClientSession, url: str, follow: bool = False) -> Reply:
    async with client.get(url, allow_redirects=follow) as resp:
        return Reply(resp.status, resp.headers.get("Location", ""), html.unescape(await resp.text()), str(resp.url))


async def post(client: aiohttp.ClientSession, url: str, follow: bool = False, **fields: str) -> Reply:
    token = next((c.value for c in client.cookie_jar if c.key == "gh_csrf"), "")
    if not token:
        page = await get(client, url.rsplit("/", 1)[0] + "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    async with client.post(url, data={"csrf_token": token, **fields}, allow_redirects=follow) as resp:
        return Reply(resp.status, resp.headers.get("Location", ""), html.unescape(await resp.text()), str(resp.url))


async def register(site: Site, client: aiohttp.ClientSession, email: str, name: str = "Ann Janssens") -> Reply:
    return await post(client, f"{site.public}/register", name=name, email=email, password=PASSWORD, again=PASSWORD)


def visitor_id(site: Site, email: str) -> int:
    with site.up.kernel.factory() as db:
        return visitors.find_visitor(db, email).id


def ready_visitor(site: Site, email: str, *, language: str = "en", verified: bool = True) -> int:
    """A visitor as the pages make one: registered, confirmed, verified by staff (no mail sent for it)."""
    with site.up.kernel.factory.begin() as db:
        person, secret = visitors.register(db, name=f"Visitor {email.split('@')[0]}", email=email,
                                           password=PASSWORD, language=language, now=utcnow())
        visitors.confirm_email(db, secret, utcnow())
        if verified:
            visitors.verify(db, person.id, by="sam", document="passport: P1", lawyer=False, now=utcnow())
        db.execute(update(Outbox).where(Outbox.visitor_id == person.id).values(sent_at=utcnow()))
        return person.id


async def log_in(site: Site, client: aiohttp.ClientSession, email: str, password: str = PASSWORD) -> Reply:
    return await post(client, f"{site.public}/login", email=email, password=password)


# -- the whole way in -------------------------------------------------------------------------------------------

async def test_a_family_registers_confirms_is_verified_and_logs_in_with_a_code(site: Site) -> None:
    assert site.relay is not None
    email = "ann@family.test"
    async with browser_client() as family:
        answer = await register(site, family, email)
        assert answer.status == 200 and f"We sent an e-mail to {email}" in answer.text
        mail = await site.relay.inbox.wait_for(email)
        assert mail["Subject"] == "Confirm your e-mail address" and mail["From"].addresses[0].addr_spec == SENDER
        link = LINK.search(body(mail))
        assert link is not None and link.group(1).startswith(site.public + "/confirm/")
        page = await get(family, link.group(1))
        assert page.status == 200 and email in page.text
        wrong = await post(family, link.group(1), password="not the one I chose")
        assert wrong.status == 403 and "not the password you chose" in wrong.text
        done = await post(family, link.group(1), password=PASSWORD)
        assert (done.status, done.location) == (303, "/visits")
        mine = await get(family, f"{site.public}/visits")
        assert mine.status == 200 and "Staff have not checked your identity document yet" in mine.text
        assert (await get(family, link.group(1))).status == 404  # a link works once

    person = visitor_id(site, email)
    async with staff_client(site, CELL, "sec-verify", ["security"]) as security:
        queue = await get(security, f"{site.portal}/staff/visitors")
        assert queue.status == 200 and email in queue.text and f"/staff/visitors/{person}" in queue.text
        refused = await post(security, f"{site.portal}/staff/visitors/{person}/verify", kind="passport", number="")
        assert refused.status == 400 and "number as you read it" in refused.text
        verified = await post(security, f"{site.portal}/staff/visitors/{person}/verify", kind="passport",
                              number="EH 123456", lawyer="")
        assert (verified.status, verified.location) == (303, "/staff/visitors?done=verified")
    [decision] = site.records(tag="visits:visitor:verified")
    assert decision.actor == "sec-verify" and f"visitor:{person} {email} document=passport lawyer=no" in decision.reason
    with site.up.kernel.factory() as db:
        row = visitors.get_visitor(db, person)
        assert (row.verified, row.document, row.verified_by) == (True, "passport: EH 123456", "sec-verify")

    async with browser_client() as family:
        assert (await log_in(site, family, email)).location == "/visits"
        assert "Staff have not checked" not in (await get(family, f"{site.public}/visits")).text
        setup = await get(family, f"{site.public}/account/totp")
        secret = re.search(r'name="secret" value="([A-Z2-7]+)"', setup.text)
        assert secret is not None
        app = pyotp.TOTP(secret.group(1))
        added = await post(family, f"{site.public}/account/totp", secret=secret.group(1), code=app.now())
        assert (added.status, added.location) == (303, "/account?done=totp")
        assert "A code app is set up" in (await get(family, f"{site.public}/account")).text
        await post(family, f"{site.public}/logout")

    code = app.at(time.time() + 30)  # the next step's code: accepted now, and still a replay a minute from now
    async with browser_client() as family:
        first = await log_in(site, family, email)
        assert (first.status, first.location) == (303, "/login/code")
        assert (await get(family, f"{site.public}/visits")).location == "/login/code"  # the password is not enough
        done = await post(family, f"{site.public}/login/code", code=code)
        assert (done.status, done.location) == (303, "/visits")
        assert (await get(family, f"{site.public}/visits")).status == 200
    async with browser_client() as thief:  # someone who saw the code typed
        assert (await log_in(site, thief, email)).location == "/login/code"
        again = await post(thief, f"{site.public}/login/code", code=code)
        assert again.status == 403 and "That code was used already" in again.text
        assert (await get(thief, f"{site.public}/visits")).location == "/login/code"
    assert [r.actor for r in site.records(tag="visits:visitor:totp-replayed")] == [f"visitor:{person}"]
    assert len(site.records(tag="visits:visitor:login-success", actor=f"visitor:{person}")) == 2
    served = site.records(tag="portal:request:served", plane="visits")
    assert served and not any("/confirm/" in r.path and "{secret}" not in r.path for r in served)  # no secret kept


async def test_wrong_passwords_are_limited_like_staff_logins_and_recorded(site: Site) -> None:
    email = "ben@family.test"
    ready_visitor(site, email)
    async with browser_client() as guesser:
        for _ in range(3):
            wrong = await log_in(site, guesser, email, "a guess of a password")
            assert wrong.status == 403 and "Wrong e-mail address or password." in wrong.text
        held = await log_in(site, guesser, email)  # the right password, too late from this address
        assert held.status == 429 and "Too many failed attempts for this account" in held.text
        unknown = await log_in(site, guesser, "nobody@family.test", "a guess of a password")
        assert unknown.status == 403 and "Wrong e-mail address or password." in unknown.text
    failures = site.records(tag="visits:visitor:login-failure", actor=email)
    assert [r.reason for r in failures] == ["password"] * 3 and failures[0].client_addr == "127.0.0.1"
    assert [r.reason for r in site.records(tag="visits:visitor:login-throttled", actor=email)] == ["account-address"]
    assert site.records(tag="visits:visitor:login-failure", actor="nobody@family.test")
    assert not site.records(tag="staff:login:failure", actor=email)  # the visitors' realm is their own


async def test_a_registered_address_gets_the_same_answer_and_its_owner_a_mail(site: Site) -> None:
    assert site.relay is not None
    email = "cas@family.test"
    ready_visitor(site, email)
    async with browser_client() as stranger:
        answer = await register(site, stranger, email, name="Not Cas")
        assert answer.status == 200 and f"We sent an e-mail to {email}" in answer.text
    mail = await site.relay.inbox.wait_for(email)
    assert mail["Subject"] == "You have an account already" and "/confirm/" not in body(mail)
    async with browser_client() as owner:
        assert (await log_in(site, owner, email)).location == "/visits"


async def test_a_relay_that_is_down_leaves_the_mail_queued_until_it_is_back(site: Site) -> None:
    relay = site.relay
    assert relay is not None
    email = "dirk@family.test"
    relay.stop()
    try:
        async with browser_client() as family:
            assert (await register(site, family, email)).status == 200
        for _ in range(100):
            with site.up.kernel.factory() as db:
                row = db.scalar(select(Outbox).where(Outbox.recipient == email))
            if row is not None and row.attempts:
                break
            await asyncio.sleep(0.1)
        assert row is not None and row.attempts >= 1 and row.sent_at is None
        assert "could not connect to the mail relay" in row.last_error and row.payload.get("secret")
        assert relay.inbox.to(email) == []
        async with staff_client(site, CELL, "sec-relay", ["security"]) as security:
            waiting = await get(security, f"{site.portal}/staff/visitors")
            assert re.search(r"\d+ e-mails? waits? to be sent", waiting.text)
    finally:
        relay.start()
    with site.up.kernel.factory.begin() as db:  # its next try comes now rather than in a minute
        db.execute(update(Outbox).where(Outbox.id == row.id).values(next_try_at=utcnow()))
    mail = await relay.inbox.wait_for(email)
    assert LINK.search(body(mail))
    with site.up.kernel.factory() as db:
        sent = db.get(Outbox, row.id)
        assert sent is not None and sent.sent_at is not None and sent.payload == {} and sent.last_error == ""


async def test_without_a_relay_mail_waits_and_the_staff_page_says_how_many(tmp_path: Path) -> None:
    async for quiet in serve(tmp_path, None):
        async with browser_client() as family:
            assert (await register(quiet, family, "eva@family.test")).status == 200
            assert (await register(quiet, family, "fien@family.test")).status == 200
        await asyncio.sleep(1)  # three rounds
        with quiet.up.kernel.factory() as db:
            rows = list(db.scalars(select(Outbox)))
        assert [(r.attempts, r.sent_at) for r in rows] == [(0, None), (0, None)]
        async with staff_client(quiet, CELL, "sec-quiet", ["security"]) as security:
            page = await get(security, f"{quiet.portal}/staff/visitors")
        assert "No mail relay is set (mail.host), so 2 e-mails wait to be sent." in page.text


async def test_a_refused_visitor_reads_the_reason_after_the_password(site: Site) -> None:
    email = "gert@family.test"
    person = ready_visitor(site, email, verified=False)
    async with staff_client(site, CELL, "sec-refuse", ["security"]) as security:
        page = await get(security, f"{site.portal}/staff/visitors/{person}")
        assert page.status == 200 and email in page.text
        done = await post(security, f"{site.portal}/staff/visitors/{person}/refuse",
                          reason="the document was not his")
        assert done.location == "/staff/visitors?done=refused"
    assert site.records(tag="visits:visitor:refused", actor="sec-refuse")
    async with browser_client() as family:
        refused = await log_in(site, family, email)
        assert refused.status == 403 and "the document was not his" in refused.text
        assert "the document was not his" not in (await log_in(site, family, email, "a wrong password!")).text


# -- visit mail -------------------------------------------------------------------------------------------------

def inmate_id(site: Site, number: str = INMATE) -> int:
    with site.up.kernel.factory() as db:
        found = db.scalar(select(Inmate.id).where(Inmate.number == number))
        assert found is not None
        return found


async def test_visit_mail_is_in_the_visitors_language_with_its_calendar_and_never_names_the_booth(
        site: Site) -> None:
    assert site.relay is not None
    email = "hanne@family.test"
    person = ready_visitor(site, email, language="nl")
    start = (utcnow() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    with site.up.kernel.factory.begin() as db:
        booth = Booth(name="booth-east-wing-7", unit="A")
        db.add(booth)
        db.flush()
        visit = Visit(inmate_id=inmate_id(site), booth_id=booth.id, starts_at=start,
                      ends_at=start + timedelta(minutes=30), status=VisitStatus.APPROVED.value,
                      requested_by=f"visitor:{person}", requested_at=utcnow())
        visit.visitors = [VisitGuest(visitor_id=person)]
        db.add(visit)
        db.flush()
        outbox.queue(db, MailKind.INVITATION, email, utcnow(), visitor_id=person, visit_id=visit.id)
        visit_id = visit.id
    invitation = await site.relay.inbox.wait_for(email)
    zone = ZoneInfo(site.settings["facility.timezone"])
    i18n.activate("nl")
    day = i18n.format_date(start, zone)
    assert invitation["Subject"] == f"{i18n.gettext('Video visit with %(name)s on %(day)s')}" % {
        "name": "Jan Peeters", "day": day}
    text = body(invitation)
    assert day in text and i18n.format_time(start, zone) in text and f"/visits#visit-{visit_id}" in text
    assert "booth-east-wing-7" not in invitation.as_string()
    event = calendar_of(invitation).walk("VEVENT")[0]
    assert calendar_of(invitation)["METHOD"] == "REQUEST" and event["UID"] == f"visit-{visit_id}@gatehouse.test"
    assert (event.decoded("SEQUENCE"), event.decoded("DTSTART")) == (0, start.replace(tzinfo=UTC))

    with site.up.kernel.factory.begin() as db:
        row = db.get(Visit, visit_id)
        assert row is not None
        row.status, row.sequence, row.close_reason = VisitStatus.CANCELLED.value, 1, "lockdown: a search of unit A"
        outbox.queue(db, MailKind.INVITATION, email, utcnow(), visitor_id=person, visit_id=visit_id)  # stale now
        outbox.queue(db, MailKind.CANCELLED, email, utcnow(), visitor_id=person, visit_id=visit_id,
                     payload={"reason": "lockdown: a search of unit A"})
    cancelled = await site.relay.inbox.wait_for(email, 2)
    assert "lockdown: a search of unit A" in body(cancelled)
    assert calendar_of(cancelled)["METHOD"] == "CANCEL"
    assert calendar_of(cancelled).walk("VEVENT")[0].decoded("SEQUENCE") == 1
    await asyncio.sleep(1)
    assert len(site.relay.inbox.to(email)) == 2  # the stale invitation was dropped, and says why
    with site.up.kernel.factory() as db:
        dropped = list(db.scalars(select(Outbox).where(Outbox.recipient == email, Outbox.kind == "invitation")
                                  .order_by(Outbox.id)))
    assert [r.last_error for r in dropped] == ["", "not sent: the visit is cancelled now"]


async def test_list_mail_names_the_inmate_and_a_refusal_its_reason(site: Site) -> None:
    assert site.relay is not None
    email = "ilse@family.test"
    with site.up.kernel.factory.begin() as db:
        person = visitors.ensure_visitor(db, name="Ilse", email=email, now=utcnow())
        entry = ListEntry(inmate_id=inmate_id(site), visitor_id=person.id, relationship_="sister",
                          proposed_by=f"inmate:{INMATE}", proposed_at=utcnow())
        db.add(entry)
        db.flush()
        outbox.queue(db, MailKind.PROPOSED, email, utcnow(), visitor_id=person.id, payload={"entry": str(entry.id)})
        entry_id = entry.id
    proposed = await site.relay.inbox.wait_for(email)
    assert proposed["Subject"] == "Jan Peeters would like you to visit" and f"{site.public}/register" in body(proposed)
    with site.up.kernel.factory.begin() as db:
        row = db.get(ListEntry, entry_id)
        assert row is not None
        row.status, row.reason = ListStatus.REFUSED.value, "a no-contact order from the court"
        outbox.queue(db, MailKind.LIST_DECIDED, email, utcnow(), visitor_id=row.visitor_id,
                     payload={"entry": str(entry_id)})
    decided = await site.relay.inbox.wait_for(email, 2)
    assert "You may not visit Jan Peeters" in body(decided)
    assert "a no-contact order from the court" in body(decided)


# -- nothing of the portal on the public listener ---------------------------------------------------------------

PUBLIC_ROUTES = {
    ("GET", "/"): "anyone", ("GET", "/register"): "anyone", ("POST", "/register"): "anyone",
    ("GET", "/confirm/{secret}"): "anyone", ("POST", "/confirm/{secret}"): "anyone",
    ("GET", "/login"): "anyone", ("POST", "/login"): "anyone",
    ("GET", "/login/code"): "code", ("POST", "/login/code"): "code", ("POST", "/logout"): "anyone",
    ("GET", "/account"): "visitor", ("POST", "/account/password"): "visitor",
    ("GET", "/account/totp"): "visitor", ("POST", "/account/totp"): "visitor",
    ("GET", "/visits"): "visitor", ("POST", "/language"): "anyone",
    ("GET", "/visits/{id}/call"): "verified", ("GET", "/visits/{id}/call/ws"): "verified",
    ("GET", "/static/{name}"): "anyone", ("GET", "/healthz"): "anyone",
}
"""Every route of the visitors' listener and who may use it, written here rather than read from the code."""
SHARED = {"/", "/login", "/logout", "/language", "/healthz", "/visits/1/call", "/visits/1/call/ws"}
"""Paths both listeners answer, each with its own handler (the portal's for inmates and staff)."""


def public_routes(app: web.Application) -> dict[tuple[str, str], str]:
    found = {}
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        canonical = route.resource.canonical if route.resource else "?"
        need = need_of(route.handler)
        found[(route.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", canonical))] = need.value if need else "none"
    return found


async def test_every_public_route_is_in_the_table_with_its_rule(site: Site) -> None:
    from portal.visits.public import create_public_app

    assert public_routes(create_public_app(site.up.kernel)) == PUBLIC_ROUTES
    async with browser_client() as stranger:
        for (method, path), rule in PUBLIC_ROUTES.items():
            if method == "GET" and rule in ("visitor", "code"):
                assert (await get(stranger, site.public + path)).location == "/login", path


async def test_the_public_listener_serves_no_inmate_or_staff_route(site: Site) -> None:
    """Every route of the portal, asked of the public listener with an inmate's and a staff member's cookies:
    404, or (for the few paths both have) the visitors' own handler."""
    from portal.visits.public import create_public_app

    kernel = site.up.kernel
    portal_app, public_app = create_app(kernel), create_public_app(kernel)
    portal_handlers = {id(r.handler) for r in portal_app.router.routes()}
    active, _ = login(kernel.factory, kernel.session_policy, address=CELL, number=INMATE, pin=PIN, now=utcnow())
    with kernel.factory.begin() as db:
        staff_id = accounts.add_staff(db, username="sec-everything", roles=["security", "admin", "education",
                                                                            "supervisor"],
                                      password=PASSWORD, now=utcnow()).id
    policy = StaffSessionPolicy(timedelta(minutes=15), timedelta(hours=1))
    staff_token = accounts.promote(kernel.factory, policy, accounts.start_session(
        kernel.factory, policy, staff_id, CELL, utcnow()), utcnow())
    cookies = {"gh_session": active.token, "gh_staff": staff_token, "gh_csrf": "t" * 32}
    checked, shared = 0, set()
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        for target in targets(portal_app):
            match = await public_app.router.resolve(make_mocked_request(target.method, target.path))
            if match.http_exception is None:
                shared.add(target.path)
                assert id(match.handler) not in portal_handlers and need_of(match.handler) is not None, target
                assert match.handler.__module__.startswith("portal.visits."), target
                continue
            async with client.request(target.method, site.public + target.path, headers=headers,
                                      data={"csrf_token": "t" * 32} if target.method == "POST" else None,
                                      allow_redirects=False) as resp:
                assert resp.status == 404, (target, resp.status)
                if target.method != "HEAD":
                    assert "viewer-visitor" in await resp.text()  # the visitors' error page, not the portal's
            checked += 1
        assert checked > 80 and shared <= SHARED, shared
        for path in ("/staff/login", "/admin/staff", "/home", "/audit", "/ca.pem", "/staff/visitors"):
            async with client.get(site.public + path, headers=headers, allow_redirects=False) as resp:
                assert resp.status == 404, path
        login_page = await (await client.get(site.public + "/login")).text()
        assert 'name="email"' in login_page and "inmate_number" not in login_page
        folder = Path(mailing.__file__).resolve().parent.parent / "static"
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = file.relative_to(folder).as_posix()
            async with client.get(f"{site.public}/static/{name}") as resp:
                assert resp.status == (200 if name in STATIC_FILES else 404), name
        assert {"portal.css"} <= set(STATIC_FILES)


# -- the pages in a browser, in four languages ------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as chromium:
        yield chromium


LOCALES = {"en": "en-GB", "nl": "nl-BE", "fr": "fr-BE", "de": "de-DE"}


async def checked(page: Page, where: str, problems: list[str]) -> None:
    await expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^(en|nl|fr|de)$"))
    problems += [f"{where} [{await page.locator('html').get_attribute('lang')}]: {p}" for p in await axe(page)]


async def submit(page: Page, action: str) -> None:
    async with page.expect_navigation():
        await page.locator(f'form[action="{action}"] button[type=submit]').click()


@NEEDS_CHROMIUM
@pytest.mark.parametrize("language", list(LOCALES))
async def test_the_visitor_pages_have_no_axe_violations(site: Site, browser: Browser, language: str) -> None:
    assert site.relay is not None
    email, problems = f"{language}.family@family.test", list[str]()
    base = site.public
    async with opened(browser, LOCALES[language], axe=True) as page:
        for path in ("/", "/register", "/login", "/no-such-page"):
            await page.goto(base + path)
            await checked(page, path, problems)
        await page.goto(base + "/register")
        await submit(page, "/register")
        await checked(page, "/register with errors", problems)
        await page.locator("#name").fill(f"Family {language}")
        await page.locator("#email").fill(email)
        await page.locator("#password").fill(PASSWORD)
        await page.locator("#again").fill(PASSWORD)
        await submit(page, "/register")
        await expect(page.get_by_test_id("registered")).to_contain_text(email)
        await checked(page, "registered", problems)
        link = LINK.search(body(await site.relay.inbox.wait_for(email)))
        assert link is not None
        await page.goto(link.group(1))
        await checked(page, "/confirm", problems)
        await page.locator("#password").fill("a wrong one")
        async with page.expect_navigation():
            await page.locator("main form button[type=submit]").click()
        await checked(page, "/confirm with an error", problems)
        await page.locator("#password").fill(PASSWORD)
        async with page.expect_navigation():
            await page.locator("main form button[type=submit]").click()
        await expect(page.get_by_test_id("unverified")).to_be_visible()
        await checked(page, "/visits unverified", problems)

        person = visitor_id(site, email)
        start = (utcnow() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
        with site.up.kernel.factory.begin() as db:
            visitors.verify(db, person, by="sam", document="passport: P1", lawyer=False, now=utcnow())
            booth = db.scalar(select(Booth).where(Booth.name == "booth-axe")) or Booth(name="booth-axe", unit="A")
            db.add(booth)
            db.flush()
            db.add(ListEntry(inmate_id=inmate_id(site), visitor_id=person, relationship_="son",
                             status=ListStatus.APPROVED.value, proposed_by="inmate:A100", proposed_at=utcnow()))
            visit = Visit(inmate_id=inmate_id(site), booth_id=booth.id, starts_at=start,
                          ends_at=start + timedelta(minutes=30), status=VisitStatus.APPROVED.value,
                          requested_by="staff:sam", requested_at=utcnow())
            visit.visitors = [VisitGuest(visitor_id=person)]
            db.add(visit)
        await page.goto(base + "/visits")
        await expect(page.get_by_test_id("visits")).to_contain_text("Jan Peeters")
        await checked(page, "/visits", problems)
        for path in ("/account", "/account/totp"):
            await page.goto(base + path)
            await checked(page, path, problems)
        secret = "".join((await page.get_by_test_id("secret").inner_text()).split())
        await page.locator("#code").fill("12")
        await submit(page, "/account/totp")
        await checked(page, "/account/totp with an error", problems)
        await page.locator("#code").fill(pyotp.TOTP(secret).now())
        await submit(page, "/account/totp")
        await expect(page.get_by_test_id("totp-on")).to_be_visible()
        await checked(page, "/account with a code app", problems)
        await choose_language(page, language)  # the language buttons work here, and the choice is kept
        await submit(page, "/logout")
        await page.goto(base + "/login")
        await page.locator("#email").fill(email)
        await page.locator("#password").fill("a wrong one!")
        await submit(page, "/login")
        await checked(page, "/login with an error", problems)
        await page.locator("#password").fill(PASSWORD)
        await submit(page, "/login")
        assert page.url == base + "/login/code"
        await checked(page, "/login/code", problems)
        await page.locator("#code").fill("000")
        await submit(page, "/login/code")
        await checked(page, "/login/code with an error", problems)
        await page.locator("#code").fill(pyotp.TOTP(secret).at(time.time() + 30))
        await submit(page, "/login/code")
        assert page.url == base + "/visits"
    assert problems == []


@NEEDS_CHROMIUM
async def test_the_verify_pages_have_no_axe_violations(site: Site, browser: Browser) -> None:
    person = ready_visitor(site, "waiting@family.test", verified=False)
    problems: list[str] = []
    signed_in: dict[str, Any] = {}
    async with as_staff(browser, site, signed_in, "security", axe=True) as page:
        for language in LOCALES:
            await page.goto(f"{site.portal}/staff/visitors")
            await choose_language(page, language)
            await expect(page.locator(f'tr[data-visitor="{person}"]')).to_be_visible()
            await checked(page, "/staff/visitors", problems)
            await page.goto(f"{site.portal}/staff/visitors/{person}")
            await checked(page, "/staff/visitors/{id}", problems)
            await submit(page, f"/staff/visitors/{person}/verify")
            await checked(page, "/staff/visitors/{id} with errors", problems)
    assert problems == []
