"""The foundation scenario through real sockets: terminals, login, allowlist over HTTP and HTTPS, logout."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sqlalchemy import select

from gatehouse.bus import SessionEnded
from gatehouse.db.models import InmateSession
from gatehouse.sessions import EndReason
from tests.conftest import Origin
from tests.helpers import CELL, CLASSROOM, INMATE, OTHER_INMATE, OTHER_PIN, STRANGER, Platform, curl, eventually_records

pytestmark = pytest.mark.usefixtures("curl_bin")


async def test_unknown_terminal_is_refused_and_recorded(platform: Platform, origin: Origin) -> None:
    plain = await curl(platform, "http://allowed.test/", interface=STRANGER)
    assert plain.status == 403
    assert "This computer is not registered as a terminal." in plain.body
    tls = await curl(platform, "https://allowed.test/", interface=STRANGER)
    assert tls.status == 0 and tls.exit_code != 0  # the CONNECT itself is refused with 403
    assert origin.seen == []
    denied = platform.records(client_addr=STRANGER, decision="deny")
    assert {r.tag for r in denied} == {"gateway:request:denied", "gateway:connect:denied"}
    assert all("unknown-terminal" in r.reason for r in denied)


async def test_terminal_without_session_gets_login_page(platform: Platform, origin: Origin) -> None:
    for url in ("http://allowed.test/a", "https://allowed.test/b"):
        result = await curl(platform, url, interface=CELL)
        assert result.status == 403
        assert "Please log in first" in result.body
        assert platform.portal in result.body
    assert origin.seen == []
    assert [r.reason for r in platform.records(tag="gateway:request:denied")] == [
        "no-session: nobody is logged in at this terminal"] * 2


async def test_allowlist_after_login_over_http_and_https(platform: Platform, origin: Origin) -> None:
    async with platform.client(CELL) as browser:
        login = await platform.login(browser)
        assert login.status == 200 and login.url.path == "/home"
        for url in ("http://allowed.test/page?q=1", "https://allowed.test/secure", "https://cdn.allowed.test/x.js"):
            result = await curl(platform, url)
            assert result.status == 200, result
            assert result.body.startswith("origin ")
        assert origin.saw("GET", "allowed.test", "/page?q=1")
        assert origin.saw("GET", "allowed.test", "/secure")
        assert origin.saw("GET", "cdn.allowed.test", "/x.js")

        other = await curl(platform, "https://other.test/")
        assert other.status == 403 and "This page is blocked" in other.body
        assert "This site is not on the list of allowed sites." in other.body
        mail = await curl(platform, "http://mail.test/inbox")
        assert mail.status == 403 and "rule no-mail" in mail.body
        post = await curl(platform, "https://allowed.test/upload", method="POST", data="secret=1")
        assert post.status == 403 and "code: method-not-allowed" in post.body
        assert not any(host in ("other.test", "mail.test") for _, host, _ in origin.seen)
        assert not origin.saw("POST", "allowed.test", "/upload")

    allowed = platform.records(tag="gateway:request:allowed", actor=INMATE)
    assert {(r.host, r.path) for r in allowed} == {
        ("allowed.test", "/page?q=1"), ("allowed.test", "/secure"), ("cdn.allowed.test", "/x.js")}
    done = platform.records(tag="gateway:response:done", actor=INMATE)
    assert {r.status for r in done} == {200} and all(r.bytes_down for r in done)
    closed = await eventually_records(platform, 3, tag="gateway:tunnel:closed", actor=INMATE)
    assert closed and all(r.bytes_up and r.bytes_down and r.duration_ms is not None for r in closed)
    denied = {(r.host, r.method) for r in platform.records(tag="gateway:request:denied", actor=INMATE)}
    assert {("other.test", "GET"), ("mail.test", "GET"), ("allowed.test", "POST")} <= denied


async def test_aiohttp_client_through_the_proxy(platform: Platform, origin: Origin) -> None:
    async with platform.client(CELL) as browser:
        await platform.login(browser)
        proxy = f"http://{platform.proxy}"
        async with browser.get("https://www.allowed.test/via-aiohttp", proxy=proxy, ssl=platform.trusting()) as resp:
            assert resp.status == 200
            assert await resp.text() == "origin www.allowed.test GET /via-aiohttp 0"
        async with browser.get("http://other.test/", proxy=proxy) as resp:
            assert resp.status == 403
            assert resp.headers["X-Gatehouse-Blocked"] == "1"


async def test_second_terminal_and_one_session_per_inmate(platform: Platform, origin: Origin) -> None:
    async with platform.client(CELL) as cell, platform.client(CLASSROOM) as classroom:
        await platform.login(cell)
        assert (await curl(platform, "http://allowed.test/cell", interface=CELL)).status == 200
        assert (await curl(platform, "http://allowed.test/class", interface=CLASSROOM)).status == 403
        # The same inmate logs in at the classroom: the cell session ends at once.
        await platform.login(classroom)
        assert (await curl(platform, "http://allowed.test/class", interface=CLASSROOM)).status == 200
        assert (await curl(platform, "http://allowed.test/cell2", interface=CELL)).status == 403
        # Another inmate at the cell terminal.
        await platform.login(cell, OTHER_INMATE, OTHER_PIN)
        result = await curl(platform, "http://allowed.test/cell3", interface=CELL)
        assert result.status == 200
    assert platform.records(tag="gateway:request:allowed", path="/cell3")[0].actor == OTHER_INMATE


async def test_logout_cuts_open_connections_at_once(platform: Platform, origin: Origin) -> None:
    async with platform.client(CELL) as browser:
        await platform.login(browser)
        proxy_host, proxy_port = platform.up.proxy
        # An open tunnel, kept alive: one request passes through it.
        reader, writer = await asyncio.open_connection(proxy_host, proxy_port, local_addr=(CELL, 0))
        writer.write(b"GET http://allowed.test/keep HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        await platform.logout(browser)
        # The gateway closed the connection: reading ends (after any rest of the first response).
        async with asyncio.timeout(2):
            while await reader.read(65536):
                pass
        writer.close()
        after = await curl(platform, "http://allowed.test/after")
        assert after.status == 403 and "Please log in first" in after.body
    assert not origin.saw("GET", "allowed.test", "/after")
    assert platform.records(tag="portal:logout:done", actor=INMATE)


async def test_an_end_heard_twice_leaves_the_connections_opened_after_it(platform: Platform, origin: Origin) -> None:
    """A control event reaches a node twice (the bus, then the poll of the database): hearing a logout again must
    not cut a connection that was not yet decided when it came, or its inmate gets an empty reply for a refusal."""
    async with platform.client(CELL) as browser:
        await platform.login(browser)
        with platform.up.kernel.factory() as db:
            token = db.scalars(select(InmateSession.token).order_by(InmateSession.id.desc())).first()
        await platform.logout(browser)
    proxy_host, proxy_port = platform.up.proxy
    reader, writer = await asyncio.open_connection(proxy_host, proxy_port, local_addr=(CELL, 0))
    try:
        writer.write(b"GET http://allowed.test/late HTTP/1.1\r\n")  # its head is still arriving
        await writer.drain()
        await asyncio.sleep(0.1)
        await platform.up.kernel.bus.publish(SessionEnded(CELL, str(token), EndReason.LOGOUT))
        writer.write(b"Host: allowed.test\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            response = await reader.read(-1)
    finally:
        writer.close()
    assert response.startswith(b"HTTP/1.1 403") and b"Please log in first" in response, response[:200]
    assert not origin.saw("GET", "allowed.test", "/late")


async def test_passthrough_rule_splices_without_inspection(platform: Platform, origin: Origin) -> None:
    async with platform.client(CELL) as browser:
        await platform.login(browser)
        # Trusting only the origin's CA proves the certificate came from the origin, not the facility CA.
        result = await curl(platform, "https://passthrough.test/direct", cacert=str(origin.ca_file))
        assert result.status == 200 and result.body.startswith("origin passthrough.test")
        inspected = await curl(platform, "https://allowed.test/", cacert=str(origin.ca_file))
        assert inspected.exit_code != 0  # re-signed by the facility CA, which this client does not trust
    assert platform.records(tag="gateway:connect:allowed", host="passthrough.test")
    assert not platform.records(tag="gateway:request:allowed", host="passthrough.test")


async def test_proxy_rejects_malformed_requests(platform: Platform) -> None:
    host, port = platform.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    writer.write(b"GET http://allowed.test/ HTTP/1.1\r\nHost allowed.test\r\n\r\n")
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 400")


async def test_portal_serves_the_facility_ca(platform: Platform) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{platform.portal}/ca.pem") as resp:
        assert resp.status == 200
        body = await resp.text()
    assert body.startswith("-----BEGIN CERTIFICATE-----")
    with open(platform.ca_file) as f:
        assert f.read() == body


async def test_policy_file_changes_apply_while_running_and_broken_ones_do_not(platform: Platform,
                                                                             origin: Origin) -> None:
    async with platform.client(CELL) as browser:
        await platform.login(browser)
        assert (await curl(platform, "http://other.test/1")).status == 403
        extra = platform.settings.policy_dir / "extra.yaml"
        extra.write_text("rules:\n  - id: other\n    allow: [other.test]\n")
        for _ in range(60):
            if (await curl(platform, "http://other.test/2")).status == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the new rule did not apply within 6 s")
        extra.write_text("rules:\n  - id: other\n    allow: [other.test]\n    colour: red\n")
        await asyncio.sleep(3)  # more than one reload period
        assert platform.up.kernel.policies.errors
        assert (await curl(platform, "http://other.test/3")).status == 200  # the good snapshot stayed
        changed = platform.records(tag="policy:snapshot:changed")
        assert len(changed) == 1 and changed[0].reason.endswith("; added other")
        rejected = platform.records(tag="policy:snapshot:rejected")
        assert len(rejected) == 1 and "colour" in rejected[0].reason
        extra.write_text("rules:\n  - id: other\n    allow: [other.test]\n    methods: [GET]\n")
        for _ in range(60):
            if len(platform.records(tag="policy:snapshot:changed")) == 2:
                break
            await asyncio.sleep(0.1)
        assert platform.records(tag="policy:snapshot:changed")[1].reason.endswith(
            "; changed other (methods GET,HEAD -> GET)")
