"""Bypass attempts against the running gateway with real clients: each must end denied and audited."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from tests.conftest import Origin
from tests.helpers import CELL, INMATE, Platform, curl, eventually_records

pytestmark = pytest.mark.usefixtures("curl_bin")


@pytest.fixture
async def logged_in(platform: Platform) -> Platform:
    async with platform.client(CELL) as browser:
        response = await platform.login(browser)
        assert response.url.path == "/home"
    return platform


def denied_records(platform: Platform) -> list[str]:
    return [f"{r.host} {r.reason}" for r in platform.records(decision="deny", actor=INMATE)]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/",
    "http://[::ffff:127.0.0.1]/", "https://127.0.0.1/", "https://[::1]/",
])
async def test_ip_literals_in_every_spelling(logged_in: Platform, origin: Origin, url: str) -> None:
    result = await curl(logged_in, url)
    assert result.status in (403, 0)
    assert origin.seen == []
    assert any("ip-literal" in r for r in denied_records(logged_in)), denied_records(logged_in)


@pytest.mark.parametrize(("url", "reason"), [
    ("http://mail.test./", "rule-deny"),
    ("http://MAIL.Test/", "rule-deny"),
    ("http://allowed.test@other.test/", "no-match"),
    ("http://xn--llowed-2nf.test/", "no-match"),            # Cyrillic "а" in punycode
    ("http://аllowed.test/", "no-match"),                     # the same homograph in Unicode
    ("https://allowed.test:8443/", "bad-port"),
    ("http://allowed.test:8080/", "bad-port"),
    ("http://lms.test/courses/%2e%2e/admin", "path-not-allowed"),
    ("http://lms.test/courses%2F..%2Fadmin", "path-not-allowed"),
    ("http://lms.test/courses//forum/new", "rule-deny"),
    ("http://lms.test/%63ourses/forum", "rule-deny"),
    ("http://lms.test/courses;x=1/forum", "rule-deny"),
])
async def test_spelling_tricks(logged_in: Platform, origin: Origin, url: str, reason: str) -> None:
    result = await curl(logged_in, url)
    assert result.status in (403, 0), result
    assert origin.seen == []
    assert any(reason in r for r in denied_records(logged_in)), denied_records(logged_in)


async def test_allowed_spellings_still_work(logged_in: Platform, origin: Origin) -> None:
    for url in ("http://ALLOWED.test./x", "http://lms.test/courses/./1", "http://lms.test/courses/math/../2"):
        assert (await curl(logged_in, url)).status == 200, url
    assert [p for _, _, p in origin.seen] == ["/x", "/courses/./1", "/courses/math/../2"]


async def test_post_to_a_read_only_host(logged_in: Platform, origin: Origin) -> None:
    result = await curl(logged_in, "https://allowed.test/form", method="POST", data="a=1")
    assert result.status == 403 and "code: method-not-allowed" in result.body
    assert origin.seen == []


async def tls_through_proxy(platform: Platform, connect_host: str, sni: str, request: bytes) -> bytes:
    host, port = platform.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    writer.write(f"CONNECT {connect_host}:443 HTTP/1.1\r\nHost: {connect_host}:443\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    context = ssl.create_default_context(cafile=platform.ca_file)
    context.check_hostname = False
    await writer.start_tls(context, server_hostname=sni)
    writer.write(request)
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_sni_must_name_the_connect_host(logged_in: Platform, origin: Origin) -> None:
    answer = await tls_through_proxy(logged_in, "allowed.test", "other.test",
                                     b"GET /fronted HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403") and b"code: bad-host" in answer
    assert origin.seen == []
    assert any("domain fronting" in r for r in denied_records(logged_in))


async def test_host_header_must_name_the_tunnel(logged_in: Platform, origin: Origin) -> None:
    answer = await tls_through_proxy(logged_in, "allowed.test", "allowed.test",
                                     b"GET /x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403") and b"code: bad-host" in answer
    assert origin.seen == []
    assert any("does not match the tunnel" in r for r in denied_records(logged_in))


async def test_passthrough_checks_sni_too(logged_in: Platform, origin: Origin) -> None:
    host, port = logged_in.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    writer.write(b"CONNECT passthrough.test:443 HTTP/1.1\r\nHost: passthrough.test:443\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    context = ssl.create_default_context(cafile=str(origin.ca_file))
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        await writer.start_tls(context, server_hostname="other.test")
        writer.write(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
        await reader.readexactly(1)
    writer.close()
    assert origin.seen == []
    rows = await eventually_records(logged_in, tag="gateway:request:denied", host="passthrough.test")
    assert rows and "domain fronting" in rows[0].reason


async def test_rebinding_to_loopback_is_refused(logged_in: Platform, origin: Origin) -> None:
    # rebind.allowed.test is allowed only through *.allowed.test and resolves to 127.0.0.1 (as a hostile
    # DNS answer would): the gateway refuses to connect.
    for url in ("http://rebind.allowed.test/", "https://rebind.allowed.test/"):
        result = await curl(logged_in, url)
        assert result.status != 200
    assert origin.seen == []
    errors = await eventually_records(logged_in, 2, tag="gateway:error:refused")
    assert all("internal address" in r.reason for r in errors)


async def test_websocket_needs_a_rule(logged_in: Platform, origin: Origin) -> None:
    host, port = logged_in.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    writer.write(b"GET http://allowed.test/ws HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 403")
    assert origin.seen == []
    assert any("websocket-not-allowed" in r for r in denied_records(logged_in))


@pytest.mark.parametrize("attack", [
    b"POST http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    b"GET http://allowed.test/smuggled HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    b"POST http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
    b"GET http://allowed.test/smuggled HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    b"POST http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: xchunked\r\n\r\n"
    b"GET http://allowed.test/smuggled HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    b"GET http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\nX: y\rGET /smuggled HTTP/1.1\r\n\r\n",
    b"GET http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n",
])
async def test_smuggling_never_reaches_the_origin(logged_in: Platform, origin: Origin, attack: bytes) -> None:
    host, port = logged_in.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    writer.write(attack)
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 403", b"HTTP/1.1 413", b"HTTP/1.1 431",
                              b"HTTP/1.1 501")), answer[:100]
    assert not any(path == "/smuggled" for _, _, path in origin.seen)
    refused = logged_in.records(client_addr=CELL, decision="deny")
    assert refused and any(r.reason.startswith(("bad-request", "method-not-allowed")) for r in refused)


async def test_smuggling_after_a_clean_request_on_the_same_connection(logged_in: Platform, origin: Origin) -> None:
    """The front parses only the first head; later ones are parsed by the inspector, which must refuse too."""
    host, port = logged_in.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    writer.write(b"GET http://allowed.test/first HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    # lms.test takes POST on /courses, so only the framing check stands between this and the origin.
    writer.write(b"POST http://lms.test/courses/a HTTP/1.1\r\nHost: lms.test\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://allowed.test/smuggled HTTP/1.1\r\n"
                 b"Host: allowed.test\r\n\r\n")
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert [p for _, _, p in origin.seen] == ["/first"]


async def test_http2_requests_are_decided_one_by_one(logged_in: Platform, origin: Origin) -> None:
    args = ["curl", "-s", "--http2", "--proxy", f"http://{logged_in.proxy}", "--interface", CELL,
            "--cacert", logged_in.ca_file, "-o", "/dev/null", "-w", "%{http_version} %{http_code}\n"]
    proc = await asyncio.create_subprocess_exec(
        *args, "https://allowed.test/h2-ok", "--next", *args[1:], "-X", "POST", "https://allowed.test/h2-post",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    lines = out.decode().split()
    assert lines == ["2", "200", "2", "403"], lines
    assert origin.saw("GET", "allowed.test", "/h2-ok") and not origin.saw("POST", "allowed.test", "/h2-post")


@pytest.mark.parametrize(("location", "blocked"), [
    ("https://other.test/landing", True),
    ("http://mail.test/inbox", True),
    ("/elsewhere-on-the-same-site", False),
    ("https://www.allowed.test/fine", False),
])
async def test_redirects_to_unreachable_hosts_get_the_block_page(logged_in: Platform, origin: Origin,
                                                                 location: str, blocked: bool) -> None:
    from urllib.parse import quote

    result = await curl(logged_in, f"https://allowed.test/redirect?to={quote(location, safe='')}")
    if blocked:
        assert result.status == 403 and "allowed.test sent you on to" in result.body
        assert any("sent you on to" in r for r in denied_records(logged_in))
    else:
        assert result.status == 302
    assert not any(host in ("other.test", "mail.test") for _, host, _ in origin.seen)
