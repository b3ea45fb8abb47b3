"""Strict framing through the front's own engine: plain HTTP, HTTP/1.1 inside an inspected tunnel, and HTTP/2.

Each head an origin behind the gateway could read another way (request smuggling) is refused before a byte of
it goes upstream, and recorded; the rules themselves are tested without sockets at the end of the module.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
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
from gateway.framing import (
    MAX_BODY,
    MAX_HEAD,
    forwardable,
    head_problem,
    pending_head_problem,
    raw_head_problem,
    request_line_problem,
)
from gateway.llhttp import SecondOpinion
from tests.conftest import Origin, platform_settings, serve_origin
from tests.helpers import CELL, Platform, connect_tunnel

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
LOOP = pytest.mark.asyncio(loop_scope="module")
"""The loop of the module's platform, for every test that talks to it."""


@dataclass
class Recording(Origin):
    """The loopback origin, also keeping the header names of every request it received."""

    names: list[list[str]] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)
    """The paths of the requests whose body it read to the end."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def origin_m(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Recording]:
    result = Recording()

    async def handler(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        result.seen.append((request.method, host, request.path_qs))
        result.names.append([k.decode("latin-1").lower() for k, _ in request.raw_headers])
        body = await request.read()
        result.complete.append(request.path_qs)
        return web.Response(text=f"origin {host} {request.method} {request.path_qs} {len(body)}")

    async with serve_origin(result, handler, test_ca, tmp_path_factory.mktemp("origin")):
        yield result


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gate_m(origin_m: Recording, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """One platform for the module, on the front's own engine, with an inmate logged in at the cell terminal."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path_factory.mktemp("framing") / "data", origin_m)
    async with running(settings.replace(proxy__engine="front")) as up:
        platform = Platform(up, origin_m, settings)
        async with platform.client(CELL) as browser:
            assert (await platform.login(browser)).url.path == "/home"
        yield platform


@pytest.fixture
def gate(gate_m: Platform) -> Iterator[Platform]:
    assert gate_m.up.gateway is not None and gate_m.up.gateway.engine is not None
    gate_m.origin.seen.clear()
    origin = gate_m.origin
    assert isinstance(origin, Recording)
    origin.names.clear()
    origin.complete.clear()
    yield gate_m


def refusals(platform: Platform) -> list[AuditRecord]:
    return [r for r in platform.records(client_addr=CELL, decision="deny") if r.reason.startswith("bad-request")]


async def inspected(platform: Platform, host: str = "allowed.test", alpn: str = "http/1.1"
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect_tunnel(platform, host)
    context = ssl.create_default_context(cafile=platform.ca_file)
    context.set_alpn_protocols([alpn])
    await writer.start_tls(context, server_hostname=host)
    return reader, writer


async def opened(platform: Platform, transport: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A client connection through the gateway and how its request targets begin: absolute-form on a plain
    connection, origin-form inside an inspected tunnel to allowed.test."""
    if transport == "tunnel":
        reader, writer = await inspected(platform)
        return reader, writer, b""
    host, port = platform.up.proxy  # type: ignore[misc]
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    return reader, writer, b"http://allowed.test"


async def answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return head, await reader.readexactly(length)


async def until_closed(reader: asyncio.StreamReader, within: float = 10) -> bytes:
    """Everything the gateway sends until it closes the connection (a failure if it does not within `within`)."""
    got = bytearray()
    async with asyncio.timeout(within):
        try:
            while data := await reader.read(65536):
                got += data
        except (ConnectionError, ssl.SSLError):
            pass
    return bytes(got)


def many(count: int, size: int = 1) -> bytes:
    return b"".join(b"X-H%d: %s\r\n" % (i, b"v" * size) for i in range(count))


GET = b"GET {t}/x HTTP/1.1\r\nHost: allowed.test\r\n"
NEXT = b"GET {t}/y HTTP/1.1\r\nHost: blocked.test\r\n\r\n"
BIG = GET + many(5000) + b"\r\n"
ATTACKS = [  # (id, the writes that make up the attack, the status it gets)
    ("length-2^64", [GET + b"Content-Length: 18446744073709551616\r\n\r\n" + NEXT], 400),
    ("length-2^32+71", [GET + b"Content-Length: 4294967367\r\n\r\n" + b"a" * 71 + NEXT], 400),
    ("length-10^30", [GET + b"Content-Length: 1" + b"0" * 30 + b"\r\n\r\n" + NEXT], 400),
    ("length-20-digits-of-zero", [GET + b"Content-Length: " + b"0" * 20 + b"\r\n\r\n" + NEXT], 400),
    ("length-leading-zero", [GET + b"Content-Length: 05\r\n\r\nhello" + NEXT], 400),
    ("length-with-sign", [GET + b"Content-Length: +5\r\n\r\nhello" + NEXT], 400),
    ("length-above-bound", [GET + b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1) + NEXT], 400),
    ("lengths-differ", [GET + b"Content-Length: 0\r\nContent-Length: 44\r\n\r\n" + NEXT], 400),
    ("length-and-chunked", [GET + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + NEXT], 400),
    ("control-character", [GET + b"X-A: a\x01b\r\n\r\n"], 400),
    ("delete-character", [GET + b"X-A: a\x7fb\r\n\r\n"], 400),
    ("bare-lf-everywhere", [b"GET {t}/x HTTP/1.1\nHost: allowed.test\n\n"], 400),
    ("bare-lf-once", [GET + b"X-A: b\n\r\n" + NEXT], 400),
    ("bare-cr", [GET + b"X-A: b\rGET /y HTTP/1.1\r\n\r\n"], 400),
    ("folded-value", [GET + b"X-A: a\r\n b\r\n\r\n"], 400),
    ("lower-case-method", [b"get {t}/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n"], 400),
    ("5000-headers-one-write", [BIG], 431),
    ("5000-headers-two-writes", [BIG[:10_000], BIG[10_000:]], 431),
    ("150-short-headers", [GET + many(150) + b"\r\n"], 431),
    ("head-over-16k-in-three-fields", [GET + many(3, 6000) + b"\r\n"], 431),
    ("head-over-16k-in-two-writes", [GET + many(3, 6000)[:9000], many(3, 6000)[9000:] + b"\r\n"], 431),
]


@LOOP
@pytest.mark.parametrize("position", ["first", "after-a-clean-request"])
@pytest.mark.parametrize("transport", ["plain", "tunnel"])
@pytest.mark.parametrize(("writes", "status"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
async def test_a_head_an_origin_could_read_otherwise_is_refused_and_recorded(
        gate: Platform, transport: str, position: str, writes: list[bytes], status: int) -> None:
    before = len(refusals(gate))
    reader, writer, prefix = await opened(gate, transport)
    if position != "first":
        writer.write(b"GET %b/clean HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % prefix)
        head, _ = await answer(reader)
        assert head.startswith(b"HTTP/1.1 200"), head
    for data in writes:
        try:
            writer.write(data.replace(b"{t}", prefix))
            await writer.drain()
        except ConnectionError:  # answered already (asyncio's TLS closes both ways on the gateway's close_notify)
            break
        await asyncio.sleep(0.05)
    got = await until_closed(reader)
    writer.close()
    assert got.startswith(b"HTTP/1.1 %d" % status), got[:200]
    assert [p for _, _, p in gate.origin.seen] == ([] if position == "first" else ["/clean"])
    after = refusals(gate)
    assert len(after) == before + 1 and after[-1].status == status, [r.reason for r in after[before:]]


CHUNKED = b"POST {t}/courses/up HTTP/1.1\r\nHost: lms.test\r\nTransfer-Encoding: chunked\r\n\r\n"
BODIES = [  # (id, the chunked body, whether it comes after the head in a write of its own)
    ("chunk-not-followed-by-crlf", b"5\r\nhelloXX0\r\n\r\n", False),  # h11 0.14 drops the XX (CVE-2025-43859)
    ("chunk-not-followed-by-crlf-later", b"5\r\nhelloXX0\r\n\r\n", True),
    ("smuggled-request-in-the-two-bytes", b"1\r\naGE0\r\n\r\n", True),
    ("chunk-size-not-hex", b"zz\r\nhello\r\n0\r\n\r\n", True),
]


@LOOP
@pytest.mark.parametrize("transport", ["plain", "tunnel"])
@pytest.mark.parametrize(("body", "later"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES])
async def test_a_chunked_body_that_breaks_its_framing_is_refused_and_recorded(
        gate: Platform, transport: str, body: bytes, later: bool) -> None:
    """Answered 400 and recorded as malformed; the origin never gets a whole request (when the head went first,
    it gets the head and part of the body, then the connection is cut)."""
    before = len(refusals(gate))
    reader, writer, prefix = await lms(gate, transport)
    head = CHUNKED.replace(b"{t}", prefix)
    writer.write(head if later else head + body)
    if later:
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(body)
    got = await until_closed(reader)
    writer.close()
    assert got.startswith(b"HTTP/1.1 400"), got[:200]
    assert gate.origin.complete == [], gate.origin.seen  # type: ignore[attr-defined]
    after = refusals(gate)
    assert [r.status for r in after[before:]] == [400], [r.reason for r in after[before:]]


@LOOP
@pytest.mark.parametrize("transport", ["plain", "tunnel"])
async def test_a_chunked_body_split_anywhere_is_carried(gate: Platform, transport: str) -> None:
    reader, writer, prefix = await lms(gate, transport)
    writer.write(CHUNKED.replace(b"{t}", prefix))
    for piece in (b"5\r\nhel", b"lo\r", b"\n3\r\nabc", b"\r", b"\n0\r\n", b"\r\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.02)
    head, body = await answer(reader)
    writer.write(b"GET %b/courses/next HTTP/1.1\r\nHost: lms.test\r\n\r\n" % prefix)  # the connection goes on
    again, _ = await answer(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and body == b"origin lms.test POST /courses/up 8", (head, body)
    assert again.startswith(b"HTTP/1.1 200"), again


async def lms(platform: Platform, transport: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    if transport == "tunnel":
        reader, writer = await inspected(platform, "lms.test")
        return reader, writer, b""
    reader, writer, _ = await opened(platform, "plain")
    return reader, writer, b"http://lms.test"


@LOOP
@pytest.mark.parametrize("transport", ["plain", "tunnel"])
async def test_underscored_header_names_do_not_go_upstream(gate: Platform, transport: str) -> None:
    reader, writer, prefix = await opened(gate, transport)
    writer.write(b"GET %b/u HTTP/1.1\r\nHost: allowed.test\r\nTransfer_Encoding: chunked\r\nContent_Length: 5\r\n"
                 b"X_Forwarded_For: 10.0.0.1\r\nX-Kept: 1\r\n\r\n" % prefix)
    head, body = await answer(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and body == b"origin allowed.test GET /u 0"
    names = gate.origin.names[-1]  # type: ignore[attr-defined]
    assert "x-kept" in names and not any("_" in n for n in names), names


@LOOP
@pytest.mark.parametrize("transport", ["plain", "tunnel"])
async def test_a_method_override_the_rule_would_refuse_does_not_go_upstream(gate: Platform, transport: str) -> None:
    """allowed.test takes GET and HEAD only: an origin honouring X-HTTP-Method-Override would see a DELETE."""
    reader, writer, prefix = await opened(gate, transport)
    writer.write(b"GET %b/o HTTP/1.1\r\nHost: allowed.test\r\nX-HTTP-Method-Override: DELETE\r\n"
                 b"X-Method-Override: HEAD\r\n\r\n" % prefix)
    head, _ = await answer(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    names = gate.origin.names[-1]  # type: ignore[attr-defined]
    assert "x-http-method-override" not in names and "x-method-override" in names, names


async def curl_http10(platform: Platform, url: str, *extra: str) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-S", "-i", "--http1.0", "--max-time", "10", "--proxy", f"http://{platform.proxy}",
        "--interface", CELL, "--cacert", platform.ca_file, *extra, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return out.decode("latin-1"), err.decode("latin-1")


@LOOP
@pytest.mark.usefixtures("curl_bin")
@pytest.mark.parametrize(("url", "connect10"), [
    ("http://allowed.test/ten", False), ("https://allowed.test/ten", False), ("https://allowed.test/ten", True)])
async def test_an_http10_client_is_answered_in_a_way_it_reads(gate: Platform, url: str, connect10: bool) -> None:
    """curl --http1.0, and with --proxy1.0 its CONNECT in HTTP/1.0 too."""
    out, err = await curl_http10(gate, url, *(("--proxy1.0", gate.proxy) if connect10 else ()))
    heads, _, body = out.rpartition("\r\n\r\n")
    head = heads.split("\r\n\r\n")[-1]  # after the proxy's answer to the CONNECT
    assert head.startswith("HTTP/1.1 200") and "transfer-encoding" not in head.lower(), (out, err)
    assert body == "origin allowed.test GET /ten 0"
    assert gate.origin.seen == [("GET", "allowed.test", "/ten")]
    done = gate.records(tag=Tag.GATEWAY_RESPONSE_DONE.value, path="/ten")
    assert done and done[-1].status == 200


@LOOP
@pytest.mark.parametrize("transport", ["plain", "tunnel"])
@pytest.mark.parametrize(("request_bytes", "status", "seen"), [
    (b"GET {t}/old HTTP/1.0\r\n\r\n", 200, ["/old"]),
    (b"GET {t}/old HTTP/1.0\r\nHost: allowed.test\r\nConnection: keep-alive\r\n\r\n", 200, ["/old"]),
    (b"POST {t}/form HTTP/1.0\r\nHost: allowed.test\r\nContent-Length: 3\r\n\r\na=1", 403, []),
])
async def test_http10_requests_are_decided_answered_and_recorded(gate: Platform, transport: str,
                                                                 request_bytes: bytes, status: int,
                                                                 seen: list[str]) -> None:
    reader, writer, prefix = await opened(gate, transport)
    writer.write(request_bytes.replace(b"{t}", prefix))
    got = await until_closed(reader)
    writer.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status) and b"chunked" not in head.lower(), got[:300]
    assert [p for _, _, p in gate.origin.seen] == seen
    if status == 200:
        assert gate.records(tag=Tag.GATEWAY_RESPONSE_DONE.value, path="/old")[-1].status == 200
    else:
        assert gate.records(tag=Tag.GATEWAY_REQUEST_DENIED.value, path="/form")


@LOOP
@pytest.mark.parametrize(("host", "status"), [
    ("allowed.test:8443", 403), ("allowed.test:443", 200), ("allowed.test", 200)])
async def test_the_port_in_host_must_be_the_tunnels(gate: Platform, host: str, status: int) -> None:
    reader, writer = await inspected(gate)
    writer.write(f"GET /port HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head, _ = await answer(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 %d" % status), head
    assert len(gate.origin.seen) == (status == 200)
    if status == 403:
        assert any("does not match" in r.reason for r in gate.records(decision="deny", path="/port"))


# HTTP/2 ---------------------------------------------------------------------------------------------------------

@dataclass
class H2Answer:
    status: int = 0
    body: bytes = b""
    reset: bool = False
    goaway: bool = False


async def h2_exchange(platform: Platform, headers: list[tuple[bytes, bytes]], body: bytes | None = None,
                      end: bool = True) -> H2Answer:
    """One stream over a new HTTP/2 connection inside an inspected tunnel to allowed.test; the client does not
    check what it sends, so broken requests reach the gateway as they are."""
    reader, writer = await inspected(platform, alpn="h2")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
        validate_inbound_headers=False))
    conn.initiate_connection()
    conn.send_headers(1, headers, end_stream=body is None and end)
    if body is not None:
        conn.send_data(1, body, end_stream=end)
    writer.write(conn.data_to_send())
    got = H2Answer()
    try:
        async with asyncio.timeout(10):
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        got.status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        got.body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamReset):
                        got.reset = True
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        got.goaway = True
                    if isinstance(event, h2.events.StreamEnded | h2.events.StreamReset
                                  | h2.events.ConnectionTerminated):
                        return got
                writer.write(conn.data_to_send())
    finally:
        writer.close()
    return got


def h2_head(method: bytes = b"GET", authority: bytes = b"allowed.test", path: bytes = b"/h2",
            *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"https"), (b":authority", authority), (b":path", path), *extra]


def many_h2(count: int, size: int = 1) -> list[tuple[bytes, bytes]]:
    return [(b"x-h%d" % i, b"v" * size) for i in range(count)]


H2_ATTACKS = [
    ("length-2^64", h2_head(b"POST", b"allowed.test", b"/h2", (b"content-length", b"18446744073709551616")), 400),
    ("length-leading-zero", h2_head(b"POST", b"allowed.test", b"/h2", (b"content-length", b"05")), 400),
    ("control-character", h2_head(b"GET", b"allowed.test", b"/h2", (b"x-a", b"a\x01b")), 400),
    ("newline-in-value", h2_head(b"GET", b"allowed.test", b"/h2", (b"x-a", b"a\r\nx-b: c")), 400),
    ("lower-case-method", h2_head(b"get"), 400),
    ("control-character-in-path", h2_head(b"GET", b"allowed.test", b"/h2\x01x"), 400),
    ("150-headers", h2_head(b"GET", b"allowed.test", b"/h2", *many_h2(150)), 431),
    ("list-over-16k", h2_head(b"GET", b"allowed.test", b"/h2", *many_h2(3, 6000)), 431),
]


@LOOP
@pytest.mark.parametrize(("headers", "status"), [a[1:] for a in H2_ATTACKS], ids=[a[0] for a in H2_ATTACKS])
async def test_an_http2_request_an_origin_could_read_otherwise_is_refused_and_recorded(
        gate: Platform, headers: list[tuple[bytes, bytes]], status: int) -> None:
    before = len(refusals(gate))
    got = await h2_exchange(gate, headers, end=False)
    assert got.status == status, got
    assert gate.origin.seen == []
    after = refusals(gate)
    assert len(after) == before + 1 and after[-1].status == status, [r.reason for r in after[before:]]


@LOOP
async def test_cookie_crumbs_count_as_the_one_header_they_go_upstream_as(gate: Platform) -> None:
    """HTTP/2 clients may split Cookie into one field per cookie (RFC 9113 8.2.3): 90 fields and 20 crumbs pass."""
    crumbs = [(b"cookie", b"c%d=1" % i) for i in range(20)]
    got = await h2_exchange(gate, h2_head(b"GET", b"allowed.test", b"/crumbs", *many_h2(90), *crumbs))
    assert got.status == 200, got
    assert gate.origin.names[-1].count("cookie") == 1  # type: ignore[attr-defined]


@LOOP
async def test_underscored_names_do_not_go_upstream_over_http2(gate: Platform) -> None:
    got = await h2_exchange(gate, h2_head(b"GET", b"allowed.test", b"/u2", (b"transfer_encoding", b"chunked"),
                                          (b"content_length", b"5"), (b"x-kept", b"1")))
    assert got.status == 200 and got.body == b"origin allowed.test GET /u2 0", got
    names = gate.origin.names[-1]  # type: ignore[attr-defined]
    assert "x-kept" in names and not any("_" in n for n in names), names


@LOOP
async def test_a_method_override_the_rule_would_refuse_does_not_go_upstream_over_http2(gate: Platform) -> None:
    got = await h2_exchange(gate, h2_head(b"GET", b"allowed.test", b"/o2", (b"x-http-method-override", b"DELETE")))
    assert got.status == 200, got
    assert "x-http-method-override" not in gate.origin.names[-1]  # type: ignore[attr-defined]


@LOOP
@pytest.mark.parametrize(("authority", "status"), [
    (b"allowed.test:8443", 403), (b"allowed.test:443", 200), (b"allowed.test", 200)])
async def test_the_port_in_authority_must_be_the_tunnels(gate: Platform, authority: bytes, status: int) -> None:
    got = await h2_exchange(gate, h2_head(b"GET", authority, b"/port2"))
    assert got.status == status, got
    assert len(gate.origin.seen) == (status == 200)


# Timeouts -------------------------------------------------------------------------------------------------------

@pytest.fixture
def quick(gate: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """Half a second for a request head and for an idle connection, instead of 30 and 60."""
    assert gate.up.gateway is not None and gate.up.gateway.engine is not None
    monkeypatch.setattr(gate.up.gateway.engine, "head_timeout", 0.5)
    monkeypatch.setattr(gate.up.gateway.engine, "idle_timeout", 0.5)
    monkeypatch.setattr(gate.up.gateway.front, "head_timeout", 0.5)
    return gate


@LOOP
@pytest.mark.parametrize(("transport", "position"), [
    ("plain", "first"), ("plain", "after-a-clean-request"), ("tunnel", "first"), ("tunnel", "after-a-clean-request")])
@pytest.mark.parametrize("sent", [b"", b"GET {t}/slow HTTP/1.1\r\nHost: allo"], ids=["nothing", "part-of-a-head"])
async def test_a_head_that_does_not_come_is_not_waited_for(quick: Platform, transport: str, position: str,
                                                           sent: bytes) -> None:
    before = len(refusals(quick))
    reader, writer, prefix = await opened(quick, transport)
    if position != "first":
        writer.write(b"GET %b/clean HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % prefix)
        await answer(reader)
    writer.write(sent.replace(b"{t}", prefix))
    got = await until_closed(reader, within=5)
    writer.close()
    after = refusals(quick)
    if sent:
        assert got.startswith(b"HTTP/1.1 408"), got[:200]
        assert len(after) == before + 1 and after[-1].status == 408
    else:
        assert got == b"" and len(after) == before
    assert [p for _, _, p in quick.origin.seen] == ([] if position == "first" else ["/clean"])


@LOOP
@pytest.mark.parametrize("sent", [b"", b"\x00\x00\x40\x01"], ids=["nothing", "part-of-a-frame"])
async def test_an_idle_http2_connection_is_closed(quick: Platform, sent: bytes) -> None:
    """GOAWAY after the idle time; a frame left half-sent is a request head that did not come (408, recorded)."""
    before = len(refusals(quick))
    reader, writer = await inspected(quick, alpn="h2")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send() + sent)
    got = await until_closed(reader, within=5)
    writer.close()
    events = conn.receive_data(got)
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events), events
    assert [r.status for r in refusals(quick)[before:]] == ([408] if sent else [])


# The rules, without sockets ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "headers", "status"), [
    (b"GET", [(b"Content-Length", b"0")], None),
    (b"POST", [(b"Content-Length", b"%d" % MAX_BODY)], None),
    (b"POST", [(b"Content-Length", b"5"), (b"content-length", b"5")], None),
    (b"M-SEARCH", [], None),
    (b"GET", [(b"X-A", b"tab\tinside")], None),
    (b"GET", [(b"X-A", "caf\u00e9".encode("latin-1"))], None),
    (b"POST", [(b"Content-Length", b"%d" % (MAX_BODY + 1))], 400),
    (b"POST", [(b"Content-Length", b"1" * 20)], 400),
    (b"POST", [(b"Content-Length", b"1" * 5000)], 400),
    (b"POST", [(b"Content-Length", b"00")], 400),
    (b"POST", [(b"Content-Length", b"-1")], 400),
    (b"POST", [(b"Content-Length", b"")], 400),
    (b"POST", [(b"Content-Length", b"5, 6")], 400),
    (b"POST", [(b"Content-Length", b"5"), (b"Content-Length", b"6")], 400),
    (b"GET", [(b"X-A", b"a\x00")], 400),
    (b"GET", [(b"X-A", b"a\x1bb")], 400),
    (b"get", [], 400),
    (b"Get", [], 400),
    (b"", [], 400),
    (b"GET /", [], 400),
    (b"GET", [(b"X-H%d" % i, b"v") for i in range(101)], 431),
    (b"GET", [(b"X A", b"v")], 400),
    (b"POST", [(b"Transfer-Encoding", b"Chunked")], None),
    (b"POST", [(b"Transfer-Encoding", b"chunked,")], None),
    (b"POST", [(b"Transfer-Encoding", b"gzip, chunked")], 501),
    (b"POST", [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], 501),
    (b"POST", [(b"Transfer-Encoding", b"identity")], 501),
])
def test_head_problem(method: bytes, headers: list[tuple[bytes, bytes]], status: int | None) -> None:
    problem = head_problem(method, headers)
    assert (problem[0] if problem else None) == status, problem


@pytest.mark.parametrize(("data", "status"), [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", None),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: \t1\r\n\r\n", None),
    (b"GET / HTTP/1.1\r\nHost: a\r", None),  # not all here yet
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\x0cb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * 101 + b"\r\n", 431),
])
def test_raw_head_problem(data: bytes, status: int | None) -> None:
    problem = raw_head_problem(data)
    assert (problem[0] if problem else None) == status, problem


@pytest.mark.parametrize(("line", "status"), [
    (b"GET / HTTP/1.1", None),
    (b"GET http://a/ HTTP/1.0", None),
    (b"OPTIONS * HTTP/1.1", None),
    (b"GET  / HTTP/1.1", 400),
    (b"GET / HTTP/1.1 ", 400),
    (b"GET /", 400),  # HTTP/0.9
    (b"GET / HTTP/2.0", 505),
    (b"GET / HTTP/9.x", 400),
    (b"GET / http/1.1", 400),
])
def test_request_line_problem(line: bytes, status: int | None) -> None:
    problem = request_line_problem(line)
    assert (problem[0] if problem else None) == status, problem
    assert raw_head_problem(b"\r\n" + line + b"\r\nHost: a\r\n\r\n") == problem


@pytest.mark.parametrize(("buffered", "status"), [
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n\x00\n\x01" + b"b" * MAX_HEAD, None),  # a body
    (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD, 431),  # no end yet, and already too long
    (b"GET / HTTP/1.1\nX: a", 400),
])
def test_a_pending_head_is_judged_without_what_follows_it(buffered: bytes, status: int | None) -> None:
    problem = pending_head_problem(buffered)
    assert (problem[0] if problem else None) == status, problem


def test_forwardable_drops_underscored_names() -> None:
    headers = [(b"Host", b"a"), (b"Transfer_Encoding", b"chunked"), (b"x_y", b"1"), (b"X-Y", b"2")]
    assert forwardable(headers) == [(b"Host", b"a"), (b"X-Y", b"2")]


def test_the_body_bound_is_below_every_integer_an_origin_may_wrap() -> None:
    assert MAX_BODY < 2**31 and head_problem(b"POST", [(b"Content-Length", b"%d" % (2**32 + 71))]) is not None



# llhttp's second opinion, without sockets ----------------------------------------------------------------------

def _heads_of(data: bytes, pieces: int = 1) -> SecondOpinion:
    opinion = SecondOpinion()
    step = max(1, len(data) // pieces)
    for at in range(0, len(data), step):
        opinion.feed(data[at:at + step])
    return opinion


def test_pipelined_requests_split_anywhere_are_seen_alike() -> None:
    data = (b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n")
    for pieces in (1, 7, len(data)):
        opinion = _heads_of(data, pieces)
        assert opinion.request(b"GET", b"/a") is None and opinion.ended() is None
        assert opinion.request(b"POST", b"/b") is None and opinion.ended() is None


def test_a_chunk_not_followed_by_crlf_is_refused_when_its_request_is_read() -> None:
    opinion = _heads_of(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")
    assert opinion.problem(waiting=False) is None
    assert opinion.request(b"GET", b"/a") is None and opinion.ended() is None  # the first request is not at fault
    assert opinion.problem(waiting=True) is not None


def test_bytes_after_a_request_that_closes_the_connection_are_not_held_against_it() -> None:
    opinion = _heads_of(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert opinion.request(b"GET", b"/a") is None and opinion.ended() is None


def test_what_follows_an_upgrade_not_taken_is_read_again() -> None:
    opinion = _heads_of(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert opinion.request(b"GET", b"/ws") is None and opinion.ended() is None
    opinion.resume()
    assert opinion.request(b"GET", b"/next") is None and opinion.ended() is None


def test_two_parsers_reading_different_requests_is_a_refusal() -> None:
    opinion = _heads_of(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    assert opinion.request(b"GET", b"/b") is not None
    assert SecondOpinion().request(b"GET", b"/a") is not None  # h11 sees a request llhttp does not
    body = _heads_of(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel")
    assert body.request(b"POST", b"/a") is None and body.ended() is not None  # h11 ends the body early
