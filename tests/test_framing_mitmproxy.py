"""Strict framing through the mitmproxy engine, on plain HTTP and inside inspected tunnels, with raw sockets: what
the attack corpora send (lengths past 2^63, control characters, bare LF, lower-case methods, `_` in header names,
method overrides, a Host naming another port) is refused or stripped, and every refusal is in the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from gatehouse.audit.records import Tag
from gatehouse.db.models import AuditRecord
from tests.conftest import Origin, platform_settings, serve_origin
from tests.helpers import CELL, INMATE, Platform, connect_tunnel, eventually_records

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.filterwarnings("ignore::ResourceWarning")]


@dataclass
class Seeing(Origin):
    """The shared origin, also keeping the headers of each request (to see what was stripped on the way)."""

    heads: list[dict[str, str]] = field(default_factory=list)

    def clear(self) -> None:
        self.seen.clear()
        self.heads.clear()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeing(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seeing]:
    result = Seeing()
    ca = trustme.CA()

    async def handler(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        result.seen.append((request.method, host, request.path_qs))
        result.heads.append({k.lower(): v for k, v in request.headers.items()})
        body = await request.read()
        return web.Response(text=f"origin {host} {request.method} {request.path_qs} {len(body)}")

    async with serve_origin(result, handler, ca, tmp_path_factory.mktemp("origin")):
        yield result


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, seeing: Seeing) -> AsyncIterator[Platform]:
    """One platform for the module, its inspected traffic carried by mitmproxy, an inmate logged in at the cell."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path_factory.mktemp("framing") / "data", seeing).replace(proxy__engine="mitmproxy")
    async with running(settings) as up:
        platform = Platform(up, seeing, settings)
        async with platform.client(CELL) as browser:
            assert (await platform.login(browser)).url.path == "/home"
        yield platform


@pytest.fixture
def origin(gateway: Platform, seeing: Seeing) -> Seeing:
    """The origin, with what it saw in earlier tests forgotten."""
    seeing.clear()
    return seeing


async def inspected(platform: Platform, host: str, alpn: str = "http/1.1"
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect_tunnel(platform, host)
    context = ssl.create_default_context(cafile=platform.ca_file)
    context.set_alpn_protocols([alpn])
    await writer.start_tls(context, server_hostname=host)
    return reader, writer


async def plain(platform: Platform) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = platform.up.proxy
    return await asyncio.open_connection(host, port, local_addr=(CELL, 0))


async def response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response: its head and its body (by Content-Length, or to the end when the gateway closes)."""
    async with asyncio.timeout(10):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial, b""
        lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
        if lengths:
            return head, await reader.readexactly(int(lengths[0]))
        return head, await reader.read()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[bytes, bytes]:
    writer.write(raw)
    await writer.drain()
    return await response(reader)


def refused(platform: Platform, since: int) -> list[AuditRecord]:
    return [r for r in platform.records(decision="deny", client_addr=CELL) if r.id > since]


def last_id(platform: Platform) -> int:
    rows = platform.records()
    return rows[-1].id if rows else 0


WHERE = ["tunnel", "plain"]


async def warmed(platform: Platform, where: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A connection that has carried one clean request (so the next head is parsed by mitmproxy, not the front),
    and the request target to use on it for lms.test paths."""
    if where == "tunnel":
        reader, writer = await inspected(platform, "lms.test")
        head, _ = await exchange(reader, writer, b"GET /courses/warm HTTP/1.1\r\nHost: lms.test\r\n\r\n")
        prefix = ""
    else:
        reader, writer = await plain(platform)
        head, _ = await exchange(reader, writer, b"GET http://lms.test/courses/warm HTTP/1.1\r\nHost: lms.test\r\n\r\n")
        prefix = "http://lms.test"
    assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer, prefix


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("length", [b"18446744073709551616", b"4294967367", b"1" + b"0" * 30, b"+5", b"007", b"-1",
                                    b"5 5", b"0x5"])
async def test_a_content_length_past_the_bound_or_malformed_is_refused(gateway: Platform, origin: Seeing, where: str,
                                                                       length: bytes) -> None:
    reader, writer, prefix = await warmed(gateway, where)
    since = last_id(gateway)
    head, body = await exchange(reader, writer, f"POST {prefix}/courses/up HTTP/1.1\r\nHost: lms.test\r\n".encode()
                                + b"Content-Length: " + length + b"\r\n\r\nhello")
    writer.close()
    assert head.startswith(b"HTTP/1.1 400"), head
    assert [p for _, _, p in origin.seen] == ["/courses/warm"]
    rows = refused(gateway, since)
    assert [(r.reason.split(":")[0], r.status, r.actor, r.terminal) for r in rows] == [
        ("bad-request", 400, INMATE, "cell-1")], [r.reason for r in rows]



def denials(platform: Platform, since: int) -> list[tuple[str, int | None, str, str]]:
    """The refusals recorded since record `since`: (reason code, status, inmate, terminal)."""
    return [(r.reason.split(":")[0].split("[")[0], r.status, r.actor, r.terminal) for r in refused(platform, since)]


MALFORMED = ("bad-request", 400, INMATE, "cell-1")


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("raw", "status"), [
    (b"GET {p}/courses/a HTTP/1.1\nHost: lms.test\n\n", 400),                        # bare LF line ends
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\nX-A: b\r\n\r\n", 400),          # one bare LF
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nX-A: b\rX-B: c\r\n\r\n", 400),  # bare CR
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nX-A: a\x01b\r\n\r\n", 400),
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nX-A: a\x7fb\r\n\r\n", 400),
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nX-A: a\x1b[2Jb\r\n\r\n", 400),
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nX-A: a\r\n b\r\n\r\n", 400),  # obs-fold
    (b"get {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n", 400),
    (b"Get {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n", 400),
    # what mitmproxy refused by itself, answering 400 with nothing recorded
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nNo colon here\r\n\r\n", 400),
    (b"GET {p}/courses/a HTTP/9.x\r\nHost: lms.test\r\n\r\n", 400),
    (b"GET {p}/courses/a HTTP/1.1\r\nHost : lms.test\r\n\r\n", 400),
    (b"POST {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"POST {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
    (b"POST {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    (b"GET {p}/courses/a HTTP/1.1\r\nHost: lms.test\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120))
     + b"\r\n", 431),
])
async def test_a_broken_head_is_refused_and_recorded(gateway: Platform, origin: Seeing, where: str, raw: bytes,
                                                     status: int) -> None:
    reader, writer, prefix = await warmed(gateway, where)
    since = last_id(gateway)
    head, _ = await exchange(reader, writer, raw.replace(b"{p}", prefix.encode()))
    writer.close()
    assert head.startswith(b"HTTP/1.1 %d" % status), head
    assert [p for _, _, p in origin.seen] == ["/courses/warm"]
    assert denials(gateway, since) == [("bad-request", status, INMATE, "cell-1")], refused(gateway, since)


@pytest.mark.parametrize(("where", "raw"), [
    ("plain", b"GET /courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n"),      # mitmproxy took the Host as the target
    ("plain", b"GET /courses/a HTTP/1.1\r\n\r\n"),                         # mitmproxy's 400, without a hook
    ("plain", b"GET ftp://lms.test/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n"),
    ("plain", b"OPTIONS * HTTP/1.1\r\nHost: lms.test\r\n\r\n"),
    ("tunnel", b"GET http://other.test/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n"),  # forwarded absolute-form
    ("tunnel", b"OPTIONS * HTTP/1.1\r\nHost: lms.test\r\n\r\n"),
    ("tunnel", b"CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n"),
])
async def test_a_target_in_the_wrong_form_is_refused_and_recorded(gateway: Platform, origin: Seeing, where: str,
                                                                  raw: bytes) -> None:
    reader, writer, _ = await warmed(gateway, where)
    since = last_id(gateway)
    head, _ = await exchange(reader, writer, raw)
    writer.close()
    assert head.startswith(b"HTTP/1.1 400"), head
    assert [p for _, _, p in origin.seen] == ["/courses/warm"]
    assert denials(gateway, since) == [MALFORMED], refused(gateway, since)


@pytest.mark.parametrize("where", WHERE)
async def test_underscored_header_names_do_not_reach_the_origin(gateway: Platform, origin: Seeing,
                                                                where: str) -> None:
    reader, writer, prefix = await warmed(gateway, where)
    head, body = await exchange(reader, writer, f"POST {prefix}/courses/up HTTP/1.1\r\nHost: lms.test\r\n".encode()
                                + b"Content-Length: 5\r\nContent_Length: 0\r\nTransfer_Encoding: chunked\r\n"
                                  b"X_Forwarded_For: 10.0.0.1\r\nX-Kept: yes\r\n\r\nhello")
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and body == b"origin lms.test POST /courses/up 5", (head, body)
    sent = origin.heads[-1]
    assert sent["x-kept"] == "yes" and not [name for name in sent if "_" in name], sent


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("host", "path", "header", "value", "kept"), [
    ("allowed.test", "/x", "X-HTTP-Method-Override", "DELETE", False),    # allowed.test takes GET and HEAD only
    ("allowed.test", "/x", "X-HTTP-Method", "PUT", False),
    ("allowed.test", "/x", "X-Method-Override", "delete", False),
    ("allowed.test", "/x", "x-http-method-override", "POST", False),
    ("allowed.test", "/x", "X-HTTP-Method-Override", "GET", True),         # the method the request has
    ("allowed.test", "/x", "X-HTTP-Method-Override", "HEAD", True),
    ("lms.test", "/courses/a", "X-HTTP-Method-Override", "POST", True),   # the lms rule allows POST
    ("lms.test", "/courses/a", "X-HTTP-Method-Override", "DELETE", False),
    ("lms.test", "/courses/a", "X-HTTP-Method-Override", "POST, DELETE", False),
])
async def test_method_overrides_are_stripped_unless_the_rule_allows_the_method(
        gateway: Platform, origin: Seeing, where: str, host: str, path: str, header: str, value: str,
        kept: bool) -> None:
    reader, writer = await (inspected(gateway, host) if where == "tunnel" else plain(gateway))
    target = path if where == "tunnel" else f"http://{host}{path}"
    since = last_id(gateway)
    head, _ = await exchange(reader, writer, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{header}: {value}\r\n"
                                             f"X-Kept: yes\r\n\r\n".encode())
    writer.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    sent = origin.heads[-1]
    assert sent["x-kept"] == "yes"
    assert (sent.get(header.lower()) == value) is kept, sent
    allowed = [r for r in gateway.records(tag=Tag.GATEWAY_REQUEST_ALLOWED.value, actor=INMATE) if r.id > since]
    assert len(allowed) == 1
    assert (f"{header.lower()} stripped" in allowed[0].reason) is not kept, allowed[0].reason


@pytest.mark.parametrize(("where", "host_header", "allowed"), [
    ("tunnel", "allowed.test:8443", False),
    ("tunnel", "allowed.test:80", False),
    ("tunnel", "allowed.test:443", True),
    ("tunnel", "allowed.test", True),
    ("tunnel", "ALLOWED.test.:443", True),
    ("plain", "allowed.test:8080", False),
    ("plain", "allowed.test:443", False),
    ("plain", "allowed.test:80", True),
    ("plain", "allowed.test", True),
])
async def test_the_host_header_must_name_the_port_too(gateway: Platform, origin: Seeing, where: str,
                                                      host_header: str, allowed: bool) -> None:
    reader, writer = await (inspected(gateway, "allowed.test") if where == "tunnel" else plain(gateway))
    target = "/p" if where == "tunnel" else "http://allowed.test/p"
    since = last_id(gateway)
    head, body = await exchange(reader, writer, f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode())
    writer.close()
    assert head.startswith(b"HTTP/1.1 200" if allowed else b"HTTP/1.1 403"), head
    assert [p for _, _, p in origin.seen] == (["/p"] if allowed else [])
    if not allowed:
        assert any("does not match" in r.reason and r.reason.startswith("bad-host")
                   for r in refused(gateway, since)), refused(gateway, since)


@pytest.mark.parametrize(("where", "raw"), [
    ("plain", b"GET http://allowed.test/old HTTP/1.0\r\n\r\n"),
    ("plain", b"GET http://allowed.test/old HTTP/1.0\r\nHost: allowed.test\r\n\r\n"),
    ("plain", b"GET http://allowed.test/old HTTP/1.0\r\nHost: allowed.test\r\nConnection: keep-alive\r\n\r\n"),
    ("tunnel", b"GET /old HTTP/1.0\r\n\r\n"),
    ("tunnel", b"GET /old HTTP/1.0\r\nHost: allowed.test\r\n\r\n"),
])
async def test_http10_requests_are_answered_and_recorded(gateway: Platform, origin: Seeing, where: str,
                                                        raw: bytes) -> None:
    reader, writer = await (inspected(gateway, "allowed.test") if where == "tunnel" else plain(gateway))
    since = last_id(gateway)
    head, body = await exchange(reader, writer, raw)
    writer.close()
    assert head.startswith(b"HTTP/1.0 200"), head
    assert body == b"origin allowed.test GET /old 0"    # the origin was told the host that was decided
    done = await eventually_records(gateway, tag=Tag.GATEWAY_RESPONSE_DONE.value, path="/old")
    assert [r.id > since for r in done][-1]
    assert [r.path for r in gateway.records(tag=Tag.GATEWAY_REQUEST_ALLOWED.value, actor=INMATE)
            if r.id > since] == ["/old"]


async def h2_exchange(platform: Platform, host: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
                      ) -> tuple[int, bytes]:
    """One HTTP/2 stream in an inspected tunnel, its headers sent as given (no checks on this side): the status
    (0 when the stream or connection was reset) and the body."""
    reader, writer = await inspected(platform, host, alpn="h2")
    config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                       normalize_outbound_headers=False, validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    conn.send_headers(1, headers, end_stream=not body)
    if body:
        conn.send_data(1, body, end_stream=True)
    writer.write(conn.data_to_send())
    status, data, done = 0, b"", False
    try:
        async with asyncio.timeout(10):
            while not done:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        data += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset
                                    | h2.events.ConnectionTerminated):
                        done = True
                writer.write(conn.data_to_send())
    finally:
        writer.close()
    return status, data


def h2_head(method: bytes, authority: bytes, path: bytes, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"https"), (b":authority", authority), (b":path", path), *extra]


@pytest.mark.parametrize(("headers", "body"), [
    (h2_head(b"POST", b"lms.test", b"/courses/up", (b"content-length", b"18446744073709551616")), b"hello"),
    (h2_head(b"POST", b"lms.test", b"/courses/up", (b"content-length", b"4294967367")), b"hello"),
    (h2_head(b"POST", b"lms.test", b"/courses/up", (b"content-length", b"+5")), b"hello"),
    (h2_head(b"GET", b"lms.test", b"/courses/a", (b"x-a", b"a\x01b")), b""),
    (h2_head(b"GET", b"lms.test", b"/courses/a", (b"x-a", b"a\r\nx-b: c")), b""),
    (h2_head(b"get", b"lms.test", b"/courses/a"), b""),
    (h2_head(b"GET", b"lms.test", b"/courses/a", (b"transfer-encoding", b"chunked")), b""),
    ([(b":method", b"GET"), (b":scheme", b"ftp"), (b":authority", b"lms.test"), (b":path", b"/courses/a")], b""),
    (h2_head(b"GET", b"lms.test", b"/courses/a", (b"host", b"mail.test")), b""),  # the origin would read Host
])
async def test_http2_heads_the_rules_refuse_are_refused_and_recorded(
        gateway: Platform, origin: Seeing, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    since = last_id(gateway)
    status, _ = await h2_exchange(gateway, "lms.test", headers, body)
    assert status in (0, 400)
    assert origin.seen == []
    assert denials(gateway, since) == [MALFORMED], refused(gateway, since)


@pytest.mark.parametrize(("headers", "status", "stripped"), [
    (h2_head(b"GET", b"allowed.test:8443", b"/h2"), 403, None),
    (h2_head(b"GET", b"allowed.test:443", b"/h2"), 200, None),
    (h2_head(b"GET", b"allowed.test", b"/h2", (b"x-http-method-override", b"DELETE")), 200,
     "x-http-method-override"),
    (h2_head(b"GET", b"allowed.test", b"/h2", (b"x_forwarded_for", b"10.0.0.1")), 200, "x_forwarded_for"),
])
async def test_http2_requests_have_the_same_checks(gateway: Platform, origin: Seeing,
                                                   headers: list[tuple[bytes, bytes]], status: int,
                                                   stripped: str | None) -> None:
    got, _ = await h2_exchange(gateway, "allowed.test", headers)
    assert got == status
    assert [p for _, _, p in origin.seen] == (["/h2"] if status == 200 else [])
    if stripped:
        assert stripped not in origin.heads[-1], origin.heads[-1]



@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("body", [
    b"zz\r\nhello\r\n0\r\n\r\n",                 # not a chunk size
    b"5\r\nhelloXX0\r\n\r\n",                     # h11 0.14 drops any two bytes after a chunk (CVE-2025-43859)
    b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",   # trailers: mitmproxy raised and left the connection hanging
    b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",  # mitmproxy waited for the 2^72 bytes
    b"5;a=\x01\r\nhello\r\n0\r\n\r\n",             # h11 takes any bytes as a chunk extension
])
async def test_a_chunked_body_that_breaks_its_framing_is_answered_and_recorded(gateway: Platform, origin: Seeing,
                                                                               where: str, body: bytes) -> None:
    reader, writer, prefix = await warmed(gateway, where)
    since = last_id(gateway)
    head, _ = await exchange(reader, writer, f"POST {prefix}/courses/a HTTP/1.1\r\nHost: lms.test\r\n".encode()
                             + b"Transfer-Encoding: chunked\r\n\r\n" + body)
    writer.close()
    assert head.startswith(b"HTTP/1.1 400"), head
    assert [p for _, _, p in origin.seen] == ["/courses/warm"]
    assert denials(gateway, since) == [MALFORMED], refused(gateway, since)


@pytest.mark.parametrize("alpn", [None, "http/1.1"])
async def test_a_tunnel_without_alpn_has_the_strict_framing_too(gateway: Platform, origin: Seeing,
                                                                alpn: str | None) -> None:
    """mitmproxy gives a TLS connection that agreed no protocol the ALPN b"", which had the plain HTTP/1 server."""
    reader, writer = await connect_tunnel(gateway, "lms.test")
    context = ssl.create_default_context(cafile=gateway.ca_file)
    if alpn:
        context.set_alpn_protocols([alpn])
    await writer.start_tls(context, server_hostname="lms.test")
    since = last_id(gateway)
    head, _ = await exchange(reader, writer, b"POST /courses/a HTTP/1.1\r\nHost: lms.test\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")  # CVE-2025-43859
    writer.close()
    assert head.startswith(b"HTTP/1.1 400"), head
    assert origin.seen == []
    assert denials(gateway, since) == [MALFORMED], refused(gateway, since)


@pytest.mark.parametrize("where", WHERE)
async def test_a_chunked_body_split_anywhere_is_carried(gateway: Platform, origin: Seeing, where: str) -> None:
    reader, writer, prefix = await warmed(gateway, where)
    writer.write(f"POST {prefix}/courses/a HTTP/1.1\r\nHost: lms.test\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    for piece in (b"5\r\nhel", b"lo\r", b"\n3\r\nabc", b"\r", b"\n0\r\n", b"\r\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    head, body = await response(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and body == b"origin lms.test POST /courses/a 8", (head, body)


@pytest.mark.parametrize("where", WHERE)
async def test_a_refused_request_with_a_large_body_is_recorded_and_cut(gateway: Platform, origin: Seeing,
                                                                       where: str) -> None:
    """A body over stream_large_bodies cannot wait behind an answer in mitmproxy (it raised, and the connection
    hung): the refusal is recorded and the connection cut."""
    reader, writer, prefix = await warmed(gateway, where)
    since = last_id(gateway)
    writer.write(f"POST {prefix}/courses/forum/a HTTP/1.1\r\nHost: lms.test\r\nContent-Length: 3000000\r\n\r\n"
                 .encode())
    with contextlib.suppress(ConnectionError):
        writer.write(b"x" * 3_000_000)
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    writer.close()
    assert [p for _, _, p in origin.seen] == ["/courses/warm"]
    assert [r.reason.split("[")[0] for r in refused(gateway, since)] == ["rule-deny"]
