"""Inspected tunnels and plain HTTP on both engines that can carry them: the front's own and mitmproxy.

Each test runs on both, so the two give the same answers and the same records, over HTTP/1.1 and HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gatehouse.audit.records import Tag
from tests.conftest import Origin, platform_settings
from tests.helpers import CELL, INMATE, Platform, connect_tunnel, curl, eventually_records, free_port

pytestmark = pytest.mark.usefixtures("curl_bin")

SOCKETS = """\
rules:
  - id: chat
    allow: [cdn.allowed.test]
    paths: [/ws]
    websocket: true
  - id: failing
    allow: [dead.test, forged.test]
"""


@pytest.fixture(params=["front", "mitmproxy"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path, origin: Origin) -> AsyncIterator[Platform]:
    """A running platform whose inspected HTTP/1.1 goes through the engine named by the parameter, with an
    inmate logged in at the cell terminal."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin)
    failing = [f"dead.test:443=127.0.0.1:{free_port()}", f"forged.test:443=127.0.0.1:{origin.https_port}"]
    settings = settings.replace(proxy__engine=request.param,
                                proxy__resolve=[*(str(r) for r in settings["proxy.resolve"]), *failing])
    (settings.policy_dir / "sockets.yaml").write_text(SOCKETS, encoding="utf-8")
    async with running(settings) as up:
        platform = Platform(up, origin, settings)
        async with platform.client(CELL) as browser:
            assert (await platform.login(browser)).url.path == "/home"
        yield platform


async def inspected(platform: Platform, host: str, *, alpn: list[str] | None = None
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A CONNECT tunnel with TLS inside it, trusting the facility CA (the gateway's certificate)."""
    reader, writer = await connect_tunnel(platform, host)
    context = ssl.create_default_context(cafile=platform.ca_file)
    context.set_alpn_protocols(alpn or ["http/1.1"])
    await writer.start_tls(context, server_hostname=host)
    return reader, writer


async def answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response with a Content-Length: head and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return head, await reader.readexactly(length)


async def test_keep_alive_requests_are_each_decided_and_recorded(engine: Platform, origin: Origin) -> None:
    reader, writer = await inspected(engine, "allowed.test")
    for path in ("/one", "/two", "/form"):
        method = "POST" if path == "/form" else "GET"
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0\r\n\r\n".encode())
        head, body = await answer(reader)
        assert head.startswith(b"HTTP/1.1 403" if method == "POST" else b"HTTP/1.1 200"), head
    writer.close()
    assert [p for _, _, p in origin.seen] == ["/one", "/two"]
    done = await eventually_records(engine, 2, tag=Tag.GATEWAY_RESPONSE_DONE.value, host="allowed.test")
    assert sorted(r.path for r in done) == ["/one", "/two"]
    assert all(r.status == 200 and r.bytes_down == len(f"origin allowed.test GET {r.path} 0") for r in done)
    denied = engine.records(tag=Tag.GATEWAY_REQUEST_DENIED.value, actor=INMATE)
    assert [(r.method, r.path) for r in denied] == [("POST", "/form")]


async def test_bodies_are_carried_and_counted_both_ways(engine: Platform, origin: Origin) -> None:
    async def pieces() -> AsyncIterator[bytes]:  # sent chunked: no Content-Length
        for _ in range(10):
            yield b"b" * 10_000

    connector = aiohttp.TCPConnector(local_addr=(CELL, 0), ssl=ssl.create_default_context(cafile=engine.ca_file))
    async with aiohttp.ClientSession(connector=connector) as client:
        for path, data in (("/courses/essay", b"a" * 300_000), ("/courses/chunked", pieces())):
            async with client.post(f"https://lms.test{path}", data=data, proxy=f"http://{engine.proxy}") as got:
                size = 300_000 if path == "/courses/essay" else 100_000
                assert got.status == 200 and await got.text() == f"origin lms.test POST {path} {size}"
    download = await curl(engine, "https://allowed.test/big?n=3000000")
    assert download.status == 200 and len(download.body) == 3_000_000
    plain = await curl(engine, "http://allowed.test/big?n=200000")
    assert plain.status == 200 and len(plain.body) == 200_000
    done = {r.path: r for r in await eventually_records(engine, 4, tag=Tag.GATEWAY_RESPONSE_DONE.value)}
    assert done["/courses/essay"].bytes_up == 300_000 and done["/courses/chunked"].bytes_up == 100_000
    assert done["/big?n=3000000"].bytes_down == 3_000_000
    assert done["/big?n=200000"].bytes_down == 200_000


async def test_a_plain_request_goes_where_its_url_says_and_host_must_agree(engine: Platform,
                                                                           origin: Origin) -> None:
    host, port = engine.up.proxy
    reader, writer = await asyncio.open_connection(host, port, local_addr=(CELL, 0))
    # An origin serving several names on one address would answer for mail.test, which a rule denies.
    writer.write(b"GET http://allowed.test/x HTTP/1.1\r\nHost: mail.test\r\n\r\n")
    head, body = await answer(reader)
    assert head.startswith(b"HTTP/1.1 403") and b"code: bad-host" in body
    writer.write(b"GET http://allowed.test/y HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
    head, body = await answer(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and body == b"origin allowed.test GET /y 0"
    assert origin.seen == [("GET", "allowed.test", "/y")]
    assert any("Host mail.test does not match" in r.reason for r in engine.records(decision="deny", actor=INMATE))


async def test_expect_continue_gets_its_answer_after_the_decision(engine: Platform, origin: Origin) -> None:
    reader, writer = await inspected(engine, "lms.test")
    writer.write(b"POST /courses/upload HTTP/1.1\r\nHost: lms.test\r\nContent-Length: 5\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim.startswith(b"HTTP/1.1 100"), interim
    writer.write(b"hello")
    head, body = await answer(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and body == b"origin lms.test POST /courses/upload 5"


async def test_an_allowed_websocket_carries_messages(engine: Platform, origin: Origin) -> None:
    context = ssl.create_default_context(cafile=engine.ca_file)
    connector = aiohttp.TCPConnector(local_addr=(CELL, 0), ssl=context)
    async with aiohttp.ClientSession(connector=connector) as client:
        async with client.ws_connect("wss://cdn.allowed.test/ws", proxy=f"http://{engine.proxy}") as socket:
            await socket.send_str("hello")
            assert (await asyncio.wait_for(socket.receive(), 10)).data == "echo hello"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("wss://allowed.test/ws", proxy=f"http://{engine.proxy}")
        assert refused.value.status == 403
    assert origin.seen == [("GET", "cdn.allowed.test", "/ws")]
    assert any("websocket-not-allowed" in r.reason for r in engine.records(decision="deny", actor=INMATE))


@pytest.mark.parametrize("host", ["dead.test", "forged.test"])
async def test_an_origin_that_fails_is_a_recorded_502(engine: Platform, origin: Origin, host: str) -> None:
    """dead.test: nothing listens where it points; forged.test: the origin's certificate does not name it."""
    reader, writer = await inspected(engine, host)
    writer.write(f"GET /page HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    writer.close()
    assert head.startswith(b"HTTP/1.1 502"), head
    assert origin.seen == []
    errors = await eventually_records(engine, tag=Tag.GATEWAY_ERROR.value, host=host)
    assert errors[0].status == 502 and errors[0].path == "/page" and errors[0].actor == INMATE


@pytest.mark.parametrize(("offered", "chosen"), [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")])
async def test_the_protocol_the_client_offers_is_spoken(engine: Platform, origin: Origin, offered: list[str],
                                             chosen: str) -> None:
    reader, writer = await inspected(engine, "allowed.test", alpn=offered)
    ssl_object = writer.get_extra_info("ssl_object")
    assert ssl_object.selected_alpn_protocol() == chosen
    writer.close()


async def test_http2_streams_in_parallel_are_each_decided(engine: Platform, origin: Origin, tmp_path: Path) -> None:
    essay = tmp_path / "essay.txt"
    essay.write_bytes(b"e" * 250_000)
    base = ["curl", "-s", "--http2", "--proxy", f"http://{engine.proxy}", "--interface", CELL,
            "--cacert", engine.ca_file, "-w", "%{http_version} %{http_code} %{url}\n"]
    urls = [f"https://allowed.test/p{i}" for i in range(8)] + ["https://lms.test/courses/forum/new"]
    proc = await asyncio.create_subprocess_exec(
        *base, "--parallel", "--parallel-max", "10", *(a for u in urls for a in ("-o", "/dev/null", u)),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    lines = [line.split(" ", 2) for line in out.decode().splitlines()]
    assert [line[0] for line in lines] == ["2"] * 9, out
    got = sorted([code, url] for _, code, url in lines)
    assert got == sorted([["200", u] for u in urls[:8]] + [["403", urls[8]]]), got
    upload = await asyncio.create_subprocess_exec(
        *base[:-2], "-w", "%{http_version} %{http_code}", "--data-binary", f"@{essay}",
        "https://lms.test/courses/essay", stdout=asyncio.subprocess.PIPE)
    body, _ = await upload.communicate()
    assert body.decode().endswith("origin lms.test POST /courses/essay 250000" + "2 200"), body[-80:]
    assert sorted(p for _, h, p in origin.seen if h == "allowed.test") == sorted(f"/p{i}" for i in range(8))
    assert not any(p.startswith("/courses/forum") for _, _, p in origin.seen)
    done = await eventually_records(engine, 9, tag=Tag.GATEWAY_RESPONSE_DONE.value)
    assert next(r for r in done if r.path == "/courses/essay").bytes_up == 250_000
