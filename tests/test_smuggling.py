"""A corpus of request-smuggling and desync attacks, over raw sockets, through both engines (the front's own and
mitmproxy), on plain HTTP (as the first request of a connection and after a clean one) and inside an inspected TLS
tunnel. Each attack is followed on the same connection by a request for mail.test, which the policy denies.

Whatever each engine makes of an attack, the same holds: the origin never sees a request for mail.test, nor any
request the gateway did not record as allowed; every refusal the client is sent is in the audit log, and a
connection closed without an answer has its refusal on record. Where the outcome is fixed (refused, or carried as
the one request it is), the table says so.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from gatehouse.audit.records import Tag
from tests.conftest import Origin, platform_settings, serve_origin
from tests.helpers import CELL, Platform, connect_tunnel

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.filterwarnings("ignore::ResourceWarning")]
DENIED = "mail.test"


@dataclass
class Watching(Origin):
    """The origin, keeping (method, host, path) of each request it was sent, and the paths of those whose body
    it read to the end."""

    complete: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.seen.clear()
        self.complete.clear()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watching(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Watching]:
    result = Watching()
    ca = trustme.CA()

    async def handler(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        result.seen.append((request.method, host, request.path_qs))
        body = await request.read()
        result.complete.append(request.path_qs)
        return web.Response(text=f"origin {host} {request.method} {request.path_qs} {len(body)}")

    async with serve_origin(result, handler, ca, tmp_path_factory.mktemp("origin")):
        yield result


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["front", "mitmproxy"])
async def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  watching: Watching) -> AsyncIterator[Platform]:
    """One platform per engine for the module, with an inmate logged in at the cell terminal."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path_factory.mktemp("smuggling") / "data", watching)
    async with running(settings.replace(proxy__engine=request.param)) as up:
        platform = Platform(up, watching, settings)
        async with platform.client(CELL) as browser:
            assert (await platform.login(browser)).url.path == "/home"
        yield platform


# {t}: the target's start for lms.test (http://lms.test on plain HTTP, nothing in a tunnel); {d}: for mail.test.
POST = b"POST {t}/courses/a HTTP/1.1\r\nHost: lms.test\r\n"
GET = b"GET {t}/courses/a HTTP/1.1\r\nHost: lms.test\r\n"
SMUGGLED = b"GET {d}/smuggled HTTP/1.1\r\nHost: mail.test\r\n\r\n"
NEXT = b"GET {d}/next HTTP/1.1\r\nHost: mail.test\r\nConnection: close\r\n\r\n"
"""What follows every attack on its connection: a request for the denied host, after which the gateway closes."""
REFUSED, CARRIED, EITHER = "refused", "carried", "either"
CASES: list[tuple[str, bytes, str]] = [  # (id, the attack, what becomes of it)
    # Transfer-Encoding
    ("te-and-cl", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("cl-and-te", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-chunked-identity", POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-identity-chunked", POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-name-after-space", POST + b" Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-name-after-tab", POST + b"\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-space-before-colon", POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-value-after-tab", POST + b"Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", CARRIED),
    ("te-upper-case", POST + b"Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", EITHER),
    ("te-twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
     REFUSED),
    ("te-vertical-tab", POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-http10", POST.replace(b"1.1", b"1.0") + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, EITHER),
    ("te-gzip-chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("te-trailing-comma", POST + b"Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n" + SMUGGLED, EITHER),
    ("te-chunked-twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     + SMUGGLED, REFUSED),
    ("te-underscore-and-cl", POST + b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", CARRIED),
    # Content-Length
    ("cl-list-of-same", POST + b"Content-Length: 5, 5\r\n\r\nhello", EITHER),
    ("cl-twice-same", POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", EITHER),
    ("cl-twice-differing", POST + b"Content-Length: 5\r\nContent-Length: 61\r\n\r\nhello" + SMUGGLED, REFUSED),
    ("cl-list-differing", POST + b"Content-Length: 5, 61\r\n\r\nhello" + SMUGGLED, REFUSED),
    ("cl-space-before-colon", POST + b"Content-Length : 5\r\n\r\nhello" + SMUGGLED, REFUSED),
    ("cl-plus", POST + b"Content-Length: +5\r\n\r\nhello" + SMUGGLED, REFUSED),
    ("cl-leading-zeros", POST + b"Content-Length: 005\r\n\r\nhello" + SMUGGLED, REFUSED),
    ("cl-hex", POST + b"Content-Length: 0x5\r\n\r\nhello" + SMUGGLED, REFUSED),
    ("cl-negative", POST + b"Content-Length: -5\r\n\r\nhello" + SMUGGLED, REFUSED),
    ("cl-2^64", POST + b"Content-Length: 18446744073709551616\r\n\r\n" + SMUGGLED, REFUSED),
    ("cl-2^32+71", POST + b"Content-Length: 4294967367\r\n\r\n" + b"a" * 71 + SMUGGLED, REFUSED),
    ("cl-on-get-hides-a-request", GET + b"Content-Length: 50\r\n\r\n" + SMUGGLED.ljust(50, b"x"), EITHER),
    # chunks
    ("chunk-size-overflow", POST + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"
     + SMUGGLED, REFUSED),
    ("chunk-size-0x", POST + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("chunk-size-negative", POST + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("chunk-extension", POST + b"Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n", EITHER),
    ("chunk-extension-bare-lf", POST + b"Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
     REFUSED),
    ("chunk-extension-control", POST + b"Transfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n0\r\n\r\n"
     + SMUGGLED, REFUSED),
    ("chunk-without-crlf", POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + SMUGGLED, REFUSED),
    ("chunk-crlf-hides-a-request", POST + b"Transfer-Encoding: chunked\r\n\r\n1\r\naGET {d}/smuggled HTTP/1.1\r\n"
     b"Host: mail.test\r\n\r\n0\r\n\r\n", REFUSED),
    ("chunk-size-then-space", POST + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n" + SMUGGLED,
     EITHER),
    ("chunk-size-bare-lf", POST + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" + SMUGGLED, REFUSED),
    ("last-chunk-without-crlf", POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n" + SMUGGLED, REFUSED),
    ("trailer-content-length", POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 61\r\n\r\n"
     + SMUGGLED, REFUSED),
    # line ends and characters
    ("obs-fold", GET + b"X-A: a\r\n b\r\n\r\n", REFUSED),
    ("bare-cr", GET + b"X-A: a\rGET {d}/smuggled HTTP/1.1\r\n\r\n", REFUSED),
    ("bare-lf-in-request-line", b"GET {t}/courses/a HTTP/1.1\nHost: lms.test\r\n\r\n", REFUSED),
    ("bare-lf-in-header", GET + b"X-A: a\nHost: mail.test\r\n\r\n", REFUSED),
    ("nul-in-header", GET + b"X-A: a\x00b\r\n\r\n", REFUSED),
    ("nul-in-name", GET + b"X-\x00A: b\r\n\r\n", REFUSED),
    ("name-not-a-token", GET + b"X A: b\r\n\r\n", REFUSED),
    ("name-with-delete", GET + b"X-A\x7f: b\r\n\r\n", REFUSED),
    # targets and Host
    ("absolute-form-upper-case-scheme", b"GET HTTP://mail.test/courses/a HTTP/1.1\r\nHost: mail.test\r\n\r\n",
     REFUSED),
    ("https-absolute-form", b"GET https://lms.test/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n", REFUSED),
    ("no-host", b"GET {t}/courses/a HTTP/1.1\r\n\r\n", EITHER),
    ("two-hosts-same", GET + b"Host: lms.test\r\n\r\n", EITHER),
    ("absolute-form-for-another-host", b"GET http://mail.test/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n", REFUSED),
    ("host-with-userinfo", b"GET {t}/courses/a HTTP/1.1\r\nHost: lms.test@mail.test\r\n\r\n", REFUSED),
    ("url-with-userinfo", b"GET http://lms.test@mail.test/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n", REFUSED),
    ("two-hosts", GET + b"Host: mail.test\r\n\r\n", REFUSED),
    ("host-other-port", b"GET {t}/courses/a HTTP/1.1\r\nHost: lms.test:8443\r\n\r\n", REFUSED),
    ("host-empty", b"GET {t}/courses/a HTTP/1.1\r\nHost:\r\n\r\n", REFUSED),
    ("host-differs-from-url", b"GET {t}/courses/a HTTP/1.1\r\nHost: mail.test\r\n\r\n", REFUSED),
    ("connect-inside", b"CONNECT mail.test:443 HTTP/1.1\r\nHost: mail.test:443\r\n\r\n", REFUSED),
    ("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: lms.test\r\n\r\n", REFUSED),
    # request lines and versions
    ("expect-continue-then-denied", POST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", CARRIED),
    ("http09", b"GET {t}/courses/a\r\n\r\n", REFUSED),
    ("http10-keep-alive", b"GET {t}/courses/a HTTP/1.0\r\nHost: lms.test\r\nConnection: keep-alive\r\n\r\n", CARRIED),
    ("http10-closes", b"GET {t}/courses/a HTTP/1.0\r\nHost: lms.test\r\n\r\n", CARRIED),
    ("version-2", b"GET {t}/courses/a HTTP/2.0\r\nHost: lms.test\r\n\r\n", REFUSED),
    ("upgrade-h2c", GET + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
     b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", CARRIED),
    ("upgrade-websocket-not-allowed", GET + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", REFUSED),
    ("lower-case-method", b"get {t}/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n", REFUSED),
    ("two-spaces", b"GET  {t}/courses/a HTTP/1.1\r\nHost: lms.test\r\n\r\n", REFUSED),
    ("pipelined", GET + b"\r\n" + SMUGGLED, CARRIED),
]
WHERE = ["plain-first", "plain-after", "tunnel"]


@dataclass
class Answer:
    status: int
    head: bytes


def answers(data: bytes) -> list[Answer]:
    """The responses in what the gateway sent, read by their Content-Length (every answer here has one)."""
    found = []
    while data.startswith(b"HTTP/"):
        head, sep, data = data.partition(b"\r\n\r\n")
        if not sep:
            break
        status = int(head.split(b" ", 2)[1])
        found.append(Answer(status, head))
        if status >= 200:
            length = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                      if line.lower().startswith(b"content-length:")]
            data = data[length[0]:] if length else b""
    return found


async def opened(platform: Platform, where: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if where == "tunnel":
        reader, writer = await connect_tunnel(platform, "lms.test")
        await writer.start_tls(ssl.create_default_context(cafile=platform.ca_file), server_hostname="lms.test")
        return reader, writer
    host, port = platform.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    if where == "plain-after":  # the attack comes on a connection already carrying: past the front's first read
        writer.write(b"GET http://lms.test/courses/warm HTTP/1.1\r\nHost: lms.test\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-l"))
        await reader.readexactly(length)
        assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer


async def received(reader: asyncio.StreamReader, within: float = 5) -> bytes:
    got = bytearray()
    try:
        async with asyncio.timeout(within):
            while data := await reader.read(65536):
                got += data
    except (ConnectionError, ssl.SSLError, TimeoutError):
        pass
    return bytes(got)


def last_id(platform: Platform) -> int:
    rows = platform.records()
    return rows[-1].id if rows else 0


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("attack", "outcome"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_an_attack_smuggles_nothing_past_the_decision(gateway: Platform, watching: Watching, where: str,
                                                            attack: bytes, outcome: str) -> None:
    reader, writer = await opened(gateway, where)
    watching.clear()
    since = last_id(gateway)
    tunnel = where == "tunnel"
    fill = {b"{t}": b"" if tunnel else b"http://lms.test", b"{d}": b"" if tunnel else b"http://mail.test"}
    sent = attack + NEXT
    for placeholder, value in fill.items():
        sent = sent.replace(placeholder, value)
    try:
        writer.write(sent)
        await writer.drain()
    except ConnectionError:
        pass
    got = answers(await received(reader))
    writer.close()
    records = [r for r in gateway.records(client_addr=CELL) if r.id > since]
    allowed = {(r.host, r.path) for r in records if r.tag == Tag.GATEWAY_REQUEST_ALLOWED.value}
    refusals = [r for r in records if r.decision in ("deny", "error")]
    finals = [a for a in got if a.status >= 200 and b"Connection established" not in a.head[:40]]
    shown = ([a.status for a in got], watching.seen, [(r.tag.split(":", 1)[1], r.host, r.path, r.status, r.reason[:70])
                                                      for r in records])

    assert not [s for s in watching.seen if s[1] == DENIED], shown
    assert all((host, path) in allowed for _, host, path in watching.seen), shown
    assert len(refusals) >= len([a for a in finals if a.status >= 400]), shown
    assert finals or refusals, shown  # a connection closed without a word has its refusal on record
    if outcome == REFUSED:  # answered with a refusal, or closed with it on record
        assert (finals[0].status >= 400 if finals else refusals) and not watching.complete, shown
    elif outcome == CARRIED:
        assert finals and finals[0].status == 200 and watching.complete == ["/courses/a"], shown
