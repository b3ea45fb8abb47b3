"""The call of a video visit: the signalling hub on its own (who is let in, what is relayed to whom, the silent
supervisor, warnings and the hard stop), its WebSocket, and three real Chromium pages with fake camera and
microphone holding a call on loopback, ending on time and by a lockdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp_jinja2
import jinja2
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from playwright.async_api import Error as PlaywrightError

from gatehouse.visits.room import CallEvent, Hub, JoinRefused, Member, Role, Ticket, directions
from portal import i18n
from portal.security import SECURITY_HEADERS
from portal.visits.signal import HUB, REFUSED_CLOSE, closing_hub, websocket_handler
from tests.helpers import NEEDS_CHROMIUM, launched_chromium
from tests.test_browser_portal import AXE_SOURCE, axe

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning")]
SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")
"""For the tests that use the module's server and browser (the hub's own tests each get a loop)."""

PORTAL = Path(__file__).resolve().parent.parent / "portal"
T0 = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


class Clock:
    """The hub's clock, moved by the test; the hub still sleeps on the event loop toward its next deadline."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakePage:
    """What a page's socket would carry: every message the hub sent it, and whether the hub closed it."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        self.got.append(message)

    async def close(self) -> None:
        self.closed = True

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.got if m["type"] == kind]

    def text(self) -> str:
        return json.dumps(self.got)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, str]]] = []

    async def __call__(self, event: CallEvent, visit_id: str, participant: str, details: Mapping[str, str]) -> None:
        self.seen.append((str(event), visit_id, participant, dict(details)))

    def named(self, event: str) -> list[tuple[str, str, str, dict[str, str]]]:
        return [e for e in self.seen if e[0] == event]


WHO = {Role.INMATE: ("inmate:A1001", "Jan Peeters"), Role.VISITOR: ("visitor:7", "Els Peeters"),
       Role.SUPERVISOR: ("staff:sam", "Sam Supervisor")}


def ticket(role: Role, *, visit: str = "v1", start: datetime = T0, minutes: int = 30, legal: bool = False,
           who: str | None = None, name: str | None = None, **more: Any) -> Ticket:
    participant, default_name = WHO[role]
    return Ticket(visit, who or participant, role, name or default_name, start, start + minutes * MIN, legal,
                  **more)


def hub_at(now: datetime, events: Events | None = None) -> tuple[Hub, Clock]:
    clock = Clock(now)
    return Hub(clock=clock, on_event=events or Events(), max_sleep_s=0.02), clock


async def joined(hub: Hub, role: Role, **kw: Any) -> tuple[Member, FakePage]:
    page = FakePage()
    member = await hub.join(ticket(role, **kw), page.send, close=page.close)
    return member, page


async def until(check: Any, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in time")


OFFER_RECVONLY = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
                  "a=mid:0\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n")


def sdp(*dirs: str, session: str = "") -> str:
    lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0"] + ([f"a={session}"] if session else [])
    for i, d in enumerate(dirs):
        lines += [f"m={'audio' if i % 2 == 0 else 'video'} 9 UDP/TLS/RTP/SAVPF 96", f"a=mid:{i}"]
        lines += [f"a={d}"] if d else []
    return "\r\n".join(lines) + "\r\n"


# -- the hub --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("role", "now", "legal", "stopped", "code"), [
    (Role.INMATE, T0 - 11 * MIN, False, False, "not-open"),
    (Role.VISITOR, T0 + 30 * MIN, False, False, "ended"),
    (Role.SUPERVISOR, T0 + MIN, True, False, "legal-no-supervisor"),
    (Role.SUPERVISOR, T0 - 11 * MIN, True, False, "legal-no-supervisor"),  # whatever the time
    (Role.INMATE, T0 + MIN, False, True, "ended-by-staff"),
])
async def test_a_join_is_refused_with_a_code_and_the_refusal_is_recorded(
        role: Role, now: datetime, legal: bool, stopped: bool, code: str) -> None:
    events = Events()
    hub, _ = hub_at(now, events)
    if stopped:
        await hub.end("v1", "rule breach", by="staff:sam")
    with pytest.raises(JoinRefused) as refused:
        await joined(hub, role, legal=legal)
    assert refused.value.code == code
    assert events.named("refused") == [("refused", "v1", WHO[role][0], {"code": code, "role": role.value})]
    assert hub.present("v1") == ()
    await hub.close()


async def test_the_waiting_room_opens_ten_minutes_before_and_relays_nothing_until_the_start() -> None:
    events = Events()
    hub, clock = hub_at(T0 - 9 * MIN, events)
    inmate, inmate_page = await joined(hub, Role.INMATE)
    visitor, visitor_page = await joined(hub, Role.VISITOR)
    welcome = visitor_page.of("welcome")[0]
    assert welcome["phase"] == "waiting" and welcome["late"] is False and "peers" not in welcome
    assert welcome["ends"] == "2026-05-04T14:30:00Z" and welcome["left_s"] == 39 * 60
    await visitor.receive({"type": "offer", "to": "inmate:A1001", "sdp": sdp("sendrecv")})
    assert inmate_page.of("offer") == []
    clock.now = T0
    await until(lambda: inmate_page.of("open") and visitor_page.of("open"))
    # In the order they joined: the later one calls the earlier one.
    assert inmate_page.of("open")[0]["peers"] == []
    assert visitor_page.of("open")[0]["peers"] == [{"id": "inmate:A1001", "name": "Jan Peeters", "side": "inmate"}]
    assert inmate_page.of("peer-joined") == [{"type": "peer-joined", "peer": {
        "id": "visitor:7", "name": "Els Peeters", "side": "visitors"}}]
    await visitor.receive({"type": "offer", "to": "inmate:A1001", "sdp": sdp("sendrecv")})
    assert inmate_page.of("offer") == [{"type": "offer", "from": "visitor:7", "sdp": sdp("sendrecv")}]
    assert [e[0] for e in events.seen] == ["join", "join"]
    await hub.close()


async def test_the_supervisor_is_never_named_to_the_others_and_receives_everyone() -> None:
    events = Events()
    hub, _ = hub_at(T0 + MIN, events)
    inmate, inmate_page = await joined(hub, Role.INMATE)
    supervisor, supervisor_page = await joined(hub, Role.SUPERVISOR)
    visitor, visitor_page = await joined(hub, Role.VISITOR)
    # The supervisor calls everyone already there and each newcomer; nobody is told of the supervisor.
    assert supervisor_page.of("welcome")[0]["peers"] == [
        {"id": "inmate:A1001", "name": "Jan Peeters", "side": "inmate"}]
    assert [m["peer"]["id"] for m in supervisor_page.of("peer-joined")] == ["visitor:7"]
    assert visitor_page.of("welcome")[0]["peers"] == [{"id": "inmate:A1001", "name": "Jan Peeters", "side": "inmate"}]
    assert [m["peer"]["id"] for m in inmate_page.of("peer-joined")] == ["visitor:7"]

    await supervisor.receive({"type": "offer", "to": "inmate:A1001", "sdp": OFFER_RECVONLY})
    await supervisor.receive({"type": "ice", "to": "visitor:7", "candidate": {"candidate": "c", "sdpMid": "0"}})
    silent_offer = inmate_page.of("offer")[0]
    assert silent_offer["silent"] is True and silent_offer["from"] == supervisor.token
    await inmate.receive({"type": "answer", "to": supervisor.token, "sdp": sdp("sendonly", "sendonly")})
    await visitor.receive({"type": "ice", "to": supervisor.token, "candidate": {"candidate": "d", "sdpMid": "0"}})
    assert [(m["type"], m["from"]) for m in supervisor_page.got if m["type"] in ("answer", "ice")] == [
        ("answer", "inmate:A1001"), ("ice", "visitor:7")]

    await supervisor.leave()
    assert inmate_page.of("silent-left") == [{"type": "silent-left", "id": supervisor.token}]
    for page in (inmate_page, visitor_page):
        assert "staff:sam" not in page.text() and "Sam Supervisor" not in page.text()
        assert "supervisor" not in page.text().replace('"role": "inmate"', "").replace('"role": "visitor"', "")
    assert [e[:3] for e in events.seen] == [("join", "v1", "inmate:A1001"), ("watch", "v1", "staff:sam"),
                                            ("join", "v1", "visitor:7"), ("leave", "v1", "staff:sam")]
    await hub.close()


async def test_messages_reach_only_their_recipient_in_the_same_room() -> None:
    hub, _ = hub_at(T0 + MIN)
    inmate, inmate_page = await joined(hub, Role.INMATE)
    visitor, visitor_page = await joined(hub, Role.VISITOR)
    _, stranger_page = await joined(hub, Role.VISITOR, visit="v2", who="visitor:9")
    _, other_inmate_page = await joined(hub, Role.INMATE, visit="v2", who="inmate:B2002")
    sent = len(stranger_page.got), len(other_inmate_page.got)
    await visitor.receive({"type": "offer", "to": "inmate:A1001", "sdp": sdp("sendrecv", "sendrecv")})
    await inmate.receive({"type": "answer", "to": "visitor:7", "sdp": sdp("sendrecv", "sendrecv")})
    await inmate.receive({"type": "ice", "to": "visitor:9", "candidate": {"candidate": "x"}})  # another room's
    await inmate.receive({"type": "ice", "to": "inmate:B2002", "candidate": {"candidate": "x"}})
    await inmate.receive({"type": "ice", "to": "nobody", "candidate": None})
    assert [m["type"] for m in inmate_page.got] == ["welcome", "peer-joined", "offer"]
    assert [m["type"] for m in visitor_page.got] == ["welcome", "answer"]
    assert (len(stranger_page.got), len(other_inmate_page.got)) == sent
    await hub.close()


@pytest.mark.parametrize(("text", "found"), [
    (sdp("recvonly", "recvonly"), ["recvonly", "recvonly"]),
    (sdp("", ""), ["sendrecv", "sendrecv"]),  # no attribute means sendrecv (RFC 8866 6.7)
    (sdp("", "inactive", session="recvonly"), ["recvonly", "inactive"]),
    (sdp("sendonly") + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=recvonly\r\n",
     ["sendonly", "sendrecv"]),  # a data channel carries anything both ways
    ("v=0\r\n", []),
])
def test_the_direction_of_each_media_section(text: str, found: list[str]) -> None:
    assert directions(text) == found


@pytest.mark.parametrize(("offer", "relayed"), [
    (sdp("recvonly", "recvonly"), True),
    (sdp("inactive", "recvonly"), True),
    (sdp("recvonly", "sendrecv"), False),
    (sdp("recvonly", ""), False),
    (sdp("sendonly", "sendonly"), False),
])
async def test_a_supervisor_offer_that_would_send_is_refused(offer: str, relayed: bool) -> None:
    events = Events()
    hub, _ = hub_at(T0 + MIN, events)
    _, inmate_page = await joined(hub, Role.INMATE)
    supervisor, _ = await joined(hub, Role.SUPERVISOR)
    await supervisor.receive({"type": "offer", "to": "inmate:A1001", "sdp": offer})
    assert len(inmate_page.of("offer")) == (1 if relayed else 0)
    refused = events.named("refused")
    assert refused == ([] if relayed else [("refused", "v1", "staff:sam",
                                            {"code": "supervisor-would-send", "to": "inmate:A1001"})])
    await hub.close()


@pytest.mark.parametrize(("answer", "relayed"), [
    (sdp("sendonly", "sendonly"), True),
    (sdp("sendonly", "inactive"), True),
    (sdp("sendrecv", "sendonly"), False),
    (sdp("recvonly", "recvonly"), False),
])
async def test_an_answer_to_a_supervisor_that_would_receive_is_refused(answer: str, relayed: bool) -> None:
    events = Events()
    hub, _ = hub_at(T0 + MIN, events)
    inmate, _ = await joined(hub, Role.INMATE)
    supervisor, supervisor_page = await joined(hub, Role.SUPERVISOR)
    await supervisor.receive({"type": "offer", "to": "inmate:A1001", "sdp": OFFER_RECVONLY})
    await inmate.receive({"type": "answer", "to": supervisor.token, "sdp": answer})
    # An inmate may not offer to the supervisor at all (it would ask the supervisor's page to answer).
    await inmate.receive({"type": "offer", "to": supervisor.token, "sdp": sdp("sendonly")})
    assert len(supervisor_page.of("answer")) == (1 if relayed else 0)
    assert supervisor_page.of("offer") == []
    codes = [e[3]["code"] for e in events.named("refused")]
    assert codes == ([] if relayed else ["answer-would-receive"]) + ["offer-to-silent"]
    await hub.close()


async def test_warnings_at_five_and_one_minutes_then_the_end_by_the_injected_clock() -> None:
    events = Events()
    hub, clock = hub_at(T0 + MIN, events)
    _, inmate_page = await joined(hub, Role.INMATE)
    _, visitor_page = await joined(hub, Role.VISITOR)
    end = T0 + 30 * MIN
    clock.now = end - 5 * MIN - timedelta(seconds=1)
    await asyncio.sleep(0.1)
    assert inmate_page.of("warning") == []
    clock.now = end - 5 * MIN
    await until(lambda: inmate_page.of("warning") and visitor_page.of("warning"))
    assert inmate_page.of("warning") == [{"type": "warning", "minutes_left": 5, "left_s": 300.0}]
    clock.now = end - MIN + timedelta(seconds=20)
    await until(lambda: len(visitor_page.of("warning")) == 2)
    assert visitor_page.of("warning")[1] == {"type": "warning", "minutes_left": 1, "left_s": 40.0}
    await asyncio.sleep(0.1)
    assert len(inmate_page.of("warning")) == 2  # each once
    # A late join after the warnings is told where the call stands, and nothing extends it.
    _, late_page = await joined(hub, Role.VISITOR, who="visitor:8")
    welcome = late_page.of("welcome")[0]
    assert (welcome["late"], welcome["warning"], welcome["left_s"]) == (True, 1, 40.0)
    clock.now = end
    await until(lambda: inmate_page.closed and visitor_page.closed and late_page.closed)
    for page in (inmate_page, visitor_page, late_page):
        assert page.got[-1] == {"type": "ended", "reason": "time", "by": "time"}
    assert events.named("end") == [("end", "v1", "", {"reason": "time", "by": "time"})]
    assert hub.running() == ()
    with pytest.raises(JoinRefused, match="ended"):
        await joined(hub, Role.INMATE)
    await hub.close()


async def test_a_clock_that_jumps_past_both_warnings_gives_only_the_last() -> None:
    hub, clock = hub_at(T0 + MIN)
    _, page = await joined(hub, Role.INMATE)
    clock.now = T0 + 29 * MIN + timedelta(seconds=30)
    await until(lambda: page.of("warning"))
    await asyncio.sleep(0.1)
    assert [m["minutes_left"] for m in page.of("warning")] == [1]
    await hub.close()


async def test_a_short_visit_ends_on_real_time() -> None:
    """Three seconds to go: the hub's own task ends it, sleeping on the event loop (the real clock)."""
    events = Events()
    hub = Hub(on_event=events)
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    start = end - MIN
    inmate_page, visitor_page = FakePage(), FakePage()
    await hub.join(ticket(Role.INMATE, start=start, minutes=1), inmate_page.send, close=inmate_page.close)
    await hub.join(ticket(Role.VISITOR, start=start, minutes=1), visitor_page.send, close=visitor_page.close)
    welcome = visitor_page.of("welcome")[0]
    assert welcome["late"] is True and welcome["warning"] == 1 and 1 < welcome["left_s"] <= 3
    await until(lambda: inmate_page.closed and visitor_page.closed, timeout=5)
    assert datetime.now(UTC) >= end
    assert visitor_page.got[-1] == {"type": "ended", "reason": "time", "by": "time"}
    assert visitor_page.of("warning") == []  # both were due before the room opened: the welcome said it
    await hub.close()


async def test_staff_end_a_running_call_with_a_reason_and_it_stays_ended() -> None:
    events = Events()
    hub, _ = hub_at(T0 + MIN, events)
    _, inmate_page = await joined(hub, Role.INMATE)
    _, visitor_page = await joined(hub, Role.VISITOR)
    assert await hub.end("v1", "lockdown", by="security:lockdown") == 2
    for page in (inmate_page, visitor_page):
        assert page.got[-1] == {"type": "ended", "reason": "lockdown", "by": "staff"} and page.closed
    assert events.named("end") == [("end", "v1", "security:lockdown", {"reason": "lockdown", "by": "staff"})]
    with pytest.raises(JoinRefused) as refused:
        await joined(hub, Role.VISITOR)
    assert refused.value.code == "ended-by-staff"
    # A visit nobody had joined yet is ended too.
    assert await hub.end("v9", "lockdown", by="security:lockdown") == 0
    with pytest.raises(JoinRefused, match="ended-by-staff"):
        await joined(hub, Role.INMATE, visit="v9")
    await hub.close()


async def test_the_supervisor_mutes_a_side_and_ends_the_visit_from_the_call() -> None:
    events = Events()
    hub, _ = hub_at(T0 + MIN, events)
    _, inmate_page = await joined(hub, Role.INMATE)
    visitor, visitor_page = await joined(hub, Role.VISITOR)
    supervisor, supervisor_page = await joined(hub, Role.SUPERVISOR)
    await supervisor.receive({"type": "mute", "side": "inmate", "muted": True})
    assert inmate_page.got[-1] == {"type": "muted", "muted": True}
    assert visitor_page.got[-1] == supervisor_page.got[-1] == {"type": "side-muted", "side": "inmate", "muted": True}
    # A page that reconnects stays muted.
    _, again = await joined(hub, Role.INMATE)
    assert again.of("welcome")[0]["muted"] is True and inmate_page.of("replaced") and inmate_page.closed
    assert visitor_page.of("peer-left") == [{"type": "peer-left", "id": "inmate:A1001"}]
    # A visitor's page cannot mute or end.
    await visitor.receive({"type": "mute", "side": "visitors", "muted": False})
    await visitor.receive({"type": "end", "reason": "bye"})
    assert [e[3]["code"] for e in events.named("refused")] == ["mute-not-staff", "end-not-staff"]
    await supervisor.receive({"type": "mute", "side": "inmate", "muted": False})
    assert again.got[-1] == {"type": "muted", "muted": False}
    await supervisor.receive({"type": "end", "reason": "  Showed a weapon  "})
    assert visitor_page.got[-1] == {"type": "ended", "reason": "Showed a weapon", "by": "staff"}
    assert [e[:3] for e in events.seen if e[0] in ("mute", "unmute", "end")] == [
        ("mute", "v1", "staff:sam"), ("unmute", "v1", "staff:sam"), ("end", "v1", "staff:sam")]
    await hub.close()


@pytest.mark.parametrize("message", [
    {"type": "hello"}, {"type": "offer", "to": "visitor:7"}, {"type": "ice", "to": 7, "candidate": None},
    {"type": "ice", "to": "visitor:7", "candidate": "a string"}, {"type": "end", "reason": ""},
    {"type": "end", "reason": "x" * 501},
])
async def test_a_message_no_page_sends_is_bad(message: dict[str, Any]) -> None:
    hub, _ = hub_at(T0 + MIN)
    _, _ = await joined(hub, Role.VISITOR)
    supervisor, _ = await joined(hub, Role.SUPERVISOR)
    with pytest.raises(ValueError):
        await supervisor.receive(message)
    await hub.close()


async def test_an_audit_log_that_fails_refuses_the_join() -> None:
    async def failing(event: CallEvent, visit_id: str, participant: str, details: Mapping[str, str]) -> None:
        raise OSError("disk full")

    hub = Hub(clock=Clock(T0 + MIN), on_event=failing)
    with pytest.raises(OSError):
        await hub.join(ticket(Role.SUPERVISOR), FakePage().send)
    assert hub.present("v1") == ()
    await hub.close()


def test_a_ticket_is_for_whole_minutes_between_aware_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        Ticket("v1", "inmate:A1", Role.INMATE, "A", datetime(2026, 5, 4, 14), datetime(2026, 5, 4, 15))
    with pytest.raises(ValueError, match="whole number"):
        Ticket("v1", "inmate:A1", Role.INMATE, "A", T0, T0 + timedelta(seconds=90))


# -- the socket and the pages ---------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Visit</title>
<link rel="stylesheet" href="/static/portal.css"></head>
<body><main id="main">{% include "visits/_call.html" %}</main></body></html>"""
TICKETS: dict[str, Ticket] = {}
CALL_HEADERS = {**SECURITY_HEADERS, "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()"}
"""The portal's strict headers (no inline script or style), with camera and microphone allowed on this page."""


async def call_page(request: web.Request) -> web.Response:
    found = TICKETS.get(request.query.get("token", ""))
    if found is None:
        raise web.HTTPForbidden()
    response = aiohttp_jinja2.render_template("page.html", request, {"call": {
        "ws": f"/ws?token={request.query['token']}", "role": found.role.value,
        "ice_servers": list(found.ice_servers), "relay_only": found.relay_only, "starts": found.start.isoformat(),
        "ends": found.end.isoformat(), "zone": "Europe/Brussels", "legal": found.legal}})
    response.headers.update(CALL_HEADERS)
    return response


async def no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def resolve(request: web.Request) -> Ticket | None:
    return TICKETS.get(request.query.get("token", ""))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[tuple[str, Hub]]:
    app = web.Application()
    env = aiohttp_jinja2.setup(app, autoescape=True, undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.i18n"],
                               loader=jinja2.ChoiceLoader([jinja2.DictLoader({"page.html": PAGE}),
                                                           jinja2.FileSystemLoader(PORTAL / "visits" / "templates")]))
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    hub = app[HUB] = Hub()
    app.router.add_get("/call", call_page)
    app.router.add_get("/ws", websocket_handler(hub, resolve))
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_static("/static/", PORTAL / "static")
    app.cleanup_ctx.append(closing_hub)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", hub
    finally:
        await runner.cleanup()


def issue(token: str, role: Role, visit: str, start: datetime, minutes: int, **kw: Any) -> str:
    TICKETS[token] = ticket(role, visit=visit, start=start, minutes=minutes, **kw)
    return token


@SHARED_LOOP
async def test_the_socket_refuses_strangers_closed_rooms_and_bad_messages(server: tuple[str, Hub]) -> None:
    url, hub = server
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    issue("ws-inmate", Role.INMATE, "ws1", now - MIN, 30)
    issue("ws-early", Role.INMATE, "ws2", now + 60 * MIN, 30)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{url}/ws?token=nobody") as response:
            assert response.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
            await client.ws_connect(f"{url}/ws?token=ws-inmate", headers={"Origin": "http://evil.test"})
        assert handshake.value.status == 403
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"{url}/ws?token=ws-early") as ws:
            assert await ws.receive_json() == {"type": "refused", "code": "not-open"}
            await ws.receive()
            assert ws.close_code == REFUSED_CLOSE
        for frame, code in [("not json", 1003), ("[1, 2]", 1003), ('{"type": "hello"}', 1003),
                            ("x" * (64 * 1024 + 1), 1009)]:
            async with client.ws_connect(f"{url}/ws?token=ws-inmate") as ws:
                assert (await ws.receive_json())["type"] == "welcome"
                await ws.send_str(frame)
                await ws.receive()
                assert ws.close_code == code, frame
    await until(lambda: hub.present("ws1") == ())


# -- three browsers in a call ---------------------------------------------------------------------------------

MEDIA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection")
"""Chromium's own test camera (a moving pattern) and microphone (a beep), allowed without asking; and loopback
addresses as ICE candidates, which Chromium leaves out by default: on a machine with only `lo` (a network
namespace, some CI runners) no candidate pair would connect without it. With another interface up, Chromium
pairs that interface's addresses instead; either way no STUN or TURN server is involved."""
JOIN = {Role.INMATE: "Join the visit", Role.VISITOR: "Join the visit", Role.SUPERVISOR: "Start watching"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium(*MEDIA) as chromium:
        yield chromium


class Call:
    """One page per participant, each in its own browser profile, joined."""

    def __init__(self, pages: dict[Role, Page]) -> None:
        self.pages = pages

    async def state(self, role: Role) -> str:
        return str(await self.pages[role].evaluate("window.gatehouseCall.state"))

    async def stats(self, role: Role) -> dict[str, int]:
        return dict(await self.pages[role].evaluate("window.gatehouseCall.stats()"))

    async def peers(self, role: Role) -> list[str]:
        return sorted(await self.pages[role].evaluate("window.gatehouseCall.peers()"))

    async def flowing(self, role: Role, senders: int, timeout: float = 15.0) -> dict[str, int]:
        """Stats once audio and video come in from `senders` connections."""
        for _ in range(int(timeout / 0.25)):
            seen = await self.stats(role)
            if seen["inboundAudioBytes"] and seen["inboundVideoBytes"] and seen["receivingFrom"] == senders:
                return seen
            await asyncio.sleep(0.25)
        raise AssertionError(f"{role} receives nothing from {senders} peers: {seen}")

    async def grows(self, role: Role, senders: int) -> None:
        before = await self.flowing(role, senders)
        await asyncio.sleep(1.0)
        after = await self.stats(role)
        assert after["inboundAudioBytes"] > before["inboundAudioBytes"], (role, before, after)
        assert after["inboundVideoBytes"] > before["inboundVideoBytes"], (role, before, after)
        assert after["receivingFrom"] == senders


async def in_state(page: Page, state: str, timeout: float = 10_000) -> None:
    await expect(page.locator("[data-gatehouse-call]")).to_have_attribute("data-state", state, timeout=timeout)


async def waiting_room_works(page: Page) -> None:
    """Before joining: the camera shows in the preview and the meter moves with the microphone's sound (after
    a touch on the page, as a person would: a browser may hold an AudioContext back until then)."""
    preview = page.locator("[data-call-preview]")
    await expect(preview).to_have_js_property("readyState", 4)
    assert await preview.evaluate("v => v.videoWidth") > 0
    await page.get_by_text("Your microphone level").click()
    for _ in range(40):
        if await page.locator("[data-call-meter]").evaluate("m => m.value") > 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the microphone meter never moved")


def watch_errors(page: Page, role: Role, errors: list[str]) -> None:
    """A script error or a console error on any page fails the test (a 404, a CSP refusal, a failed step)."""
    def thrown(error: PlaywrightError) -> None:
        errors.append(f"{role}: {error}")

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{role}: {message.text}")

    page.on("pageerror", thrown)
    page.on("console", logged)


@contextlib.asynccontextmanager
async def call(browser: Browser, url: str, tokens: dict[Role, str], *, axe: bool = False) -> AsyncIterator[Call]:
    contexts = [await browser.new_context(locale="en-GB") for _ in tokens]
    errors: list[str] = []
    try:
        pages: dict[Role, Page] = {}
        for context, (role, token) in zip(contexts, tokens.items(), strict=True):
            context.set_default_timeout(10_000)
            if axe:
                await context.add_init_script(script=AXE_SOURCE)
            page = pages[role] = await context.new_page()
            watch_errors(page, role, errors)
            await page.goto(f"{url}/call?token={token}")
        for role, page in pages.items():
            if role is not Role.SUPERVISOR:
                await waiting_room_works(page)
        for role, page in pages.items():  # in this order: the inmate is there first
            await page.get_by_role("button", name=JOIN[role]).click()
            await in_state(page, "in-call")
        yield Call(pages)
    finally:
        for context in contexts:
            await context.close()
    assert errors == []


@NEEDS_CHROMIUM
@SHARED_LOOP
async def test_inmate_and_visitor_see_and_hear_each_other_unaware_of_the_watching_supervisor_until_time_is_up(
        server: tuple[str, Hub], browser: Browser) -> None:
    url, hub = server
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=25)
    start, visit = end - MIN, "short"
    tokens = {role: issue(f"short-{role}", role, visit, start, 1) for role in Role}
    async with call(browser, url, tokens) as c:
        inmate, visitor = c.pages[Role.INMATE], c.pages[Role.VISITOR]
        await c.grows(Role.INMATE, 1)
        await c.grows(Role.VISITOR, 1)
        await c.grows(Role.SUPERVISOR, 2)
        # Each sends to the other and to the supervisor, who sends nothing.
        assert (await c.stats(Role.INMATE))["connections"] == 2
        assert (await c.stats(Role.SUPERVISOR))["outboundBytes"] == 0
        assert await c.peers(Role.INMATE) == ["Els Peeters"]
        assert await c.peers(Role.VISITOR) == ["Jan Peeters"]
        assert await c.peers(Role.SUPERVISOR) == ["Els Peeters", "Jan Peeters"]
        for page in (inmate, visitor):
            captions = await page.locator("figure.call-remote figcaption").all_inner_texts()
            assert len(captions) == 1 and "Sam" not in await page.locator("main").inner_text()
        # Late, and told so; the last minute is under way.
        await expect(visitor.locator("[data-call-notice]")).to_contain_text("You joined late")
        await expect(visitor.locator("[data-call-warning]")).to_contain_text("1 minute left")
        await expect(inmate.locator("[data-call-clock]")).to_contain_text("Time left: 0:")

        for page in c.pages.values():
            await in_state(page, "ended", timeout=30_000)
        assert datetime.now(UTC) >= end
        for page in (inmate, visitor):
            await expect(page.locator("[data-call-status]")).to_have_text("The visit has ended: its time is over.")
            await expect(page.locator("figure.call-remote")).to_have_count(0)
        for role in Role:
            assert (await c.stats(role))["connections"] == 0
        assert hub.present(visit) == () and visit not in hub.running()


@NEEDS_CHROMIUM
@SHARED_LOOP
async def test_the_supervisor_mutes_the_inmate_and_a_lockdown_ends_the_call_with_its_reason(
        server: tuple[str, Hub], browser: Browser) -> None:
    url, hub = server
    start, visit = datetime.now(UTC).replace(second=0, microsecond=0) - MIN, "lock"
    tokens = {role: issue(f"lock-{role}", role, visit, start, 30) for role in Role}
    async with call(browser, url, tokens, axe=True) as c:
        inmate, visitor, supervisor = c.pages[Role.INMATE], c.pages[Role.VISITOR], c.pages[Role.SUPERVISOR]
        await c.flowing(Role.VISITOR, 1)
        await c.flowing(Role.SUPERVISOR, 2)
        for page in c.pages.values():
            assert await axe(page) == []

        await supervisor.get_by_role("button", name="Mute the inmate").click()
        await expect(supervisor.get_by_role("button", name="Mute the inmate")).to_have_attribute("aria-pressed", "true")
        await expect(inmate.locator("[data-call-status]")).to_have_text(
            "Staff turned off your microphone. The others cannot hear you.")
        await expect(visitor.locator("[data-call-status]")).to_have_text("Staff turned off the inmate's microphone.")
        await asyncio.sleep(1.0)  # packets already on their way
        before = await c.stats(Role.VISITOR)
        await asyncio.sleep(1.5)
        after = await c.stats(Role.VISITOR)
        assert after["inboundAudioBytes"] == before["inboundAudioBytes"], "the muted inmate is still heard"
        assert after["inboundVideoBytes"] > before["inboundVideoBytes"], "muting the sound stopped the picture"

        assert await hub.end(visit, "lockdown", by="security:lockdown") == 3
        for page in c.pages.values():
            await in_state(page, "ended")
        for page in (inmate, visitor):
            await expect(page.locator("[data-call-status]")).to_have_text(
                "Staff ended the visit. Reason: the facility is in lockdown")
        assert hub.present(visit) == ()
