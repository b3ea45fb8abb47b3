"""Helpers for tests: log in from a terminal address, fetch through the proxy with curl or aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import pyotp
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from gatehouse.audit.shipper import Shipper
from gatehouse.ca import ca_cert_file
from gatehouse.db.engine import utcnow
from gatehouse.db.models import AuditRecord
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.kernel import Kernel
from gatehouse.settings import Settings
from gatehouse.staff import add_staff
from gatehouse.terminals import add_terminal

if TYPE_CHECKING:
    from gatehouse.cli.serve import Running
    from tests.conftest import Origin

CELL, CLASSROOM, STRANGER = "127.0.0.1", "127.0.0.2", "127.0.0.9"
INMATE, PIN = "A100", "2468"
OTHER_INMATE, OTHER_PIN = "B200", "1357"


def populate(settings: Settings) -> None:
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            facility = ensure_facility(session, settings)
            add_terminal(session, facility, name="cell-1", address=CELL, kind="cell", unit="A")
            add_terminal(session, facility, name="class-1", address=CLASSROOM, kind="classroom", unit="school")
            add_inmate(session, facility, number=INMATE, name="Jan Peeters", language="en", pin=PIN)
            add_inmate(session, facility, number=OTHER_INMATE, name="Marie Dubois", language="fr", pin=OTHER_PIN)
    finally:
        kernel.engine.dispose()


@dataclass
class Platform:
    up: Running
    origin: Origin
    settings: Settings

    @property
    def portal(self) -> str:
        return f"http://{self.up.portal[0]}:{self.up.portal[1]}"

    @property
    def proxy(self) -> str:
        return f"{self.up.proxy[0]}:{self.up.proxy[1]}"

    @property
    def ca_file(self) -> str:
        return str(ca_cert_file(self.settings.ca_dir))

    def client(self, address: str) -> aiohttp.ClientSession:
        """A browser-like client whose traffic comes from `address` (a terminal, or a stranger)."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=False),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True))

    def trusting(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    async def login(self, session: aiohttp.ClientSession, number: str = INMATE,
                    pin: str = PIN) -> aiohttp.ClientResponse:
        async with session.get(f"{self.portal}/login") as page:
            token = csrf_from(await page.text())
        async with session.post(f"{self.portal}/login", data={
                "inmate_number": number, "pin": pin, "csrf_token": token}) as resp:
            await resp.read()
            return resp

    async def logout(self, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{self.portal}/home") as page:
            token = csrf_from(await page.text())
        async with session.post(f"{self.portal}/logout", data={"csrf_token": token}) as resp:
            assert resp.status == 200, await resp.text()

    def records(self, **where: Any) -> list[AuditRecord]:
        """Audit records in the database, after shipping every durable record there (as the shipper will)."""
        Shipper(self.up.kernel.factory, self.settings.audit_dir).ship_all()
        with self.up.kernel.factory() as db:
            query = select(AuditRecord).order_by(AuditRecord.id)
            for key, value in where.items():
                query = query.where(getattr(AuditRecord, key) == value)
            return list(db.scalars(query))


async def eventually_records(platform: Platform, minimum: int = 1, **where: Any) -> list[AuditRecord]:
    """Closing records are written when both sides of a tunnel have ended: give them a moment."""
    for _ in range(50):
        rows = platform.records(**where)
        if len(rows) >= minimum:
            return rows
        await asyncio.sleep(0.05)
    return platform.records(**where)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no csrf_token field in the page: {html[:300]}"
    return match.group(1)


@dataclass(frozen=True)
class CurlResult:
    status: int
    body: str
    exit_code: int


async def curl(platform: Platform, url: str, *, interface: str = CELL, method: str = "GET",
               data: str | None = None, cacert: str | None = None) -> CurlResult:
    args = ["curl", "-s", "-S", "--path-as-is", "--max-time", "15", "--proxy", f"http://{platform.proxy}",
            "--interface", interface, "-o", "-", "-w", "\n%{http_code}", "-X", method,
            "--cacert", cacert or platform.ca_file]
    if data is not None:
        args += ["--data", data]
    proc = await asyncio.create_subprocess_exec(*args, url, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    text = out.decode("utf-8", "replace")
    body, _, code = text.rpartition("\n")
    return CurlResult(int(code or 0), body, proc.returncode or 0)


async def connect_tunnel(via: Any, host: str = "passthrough.test", address: str = CELL
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A CONNECT tunnel to `host`:443 through the gateway `via` (anything with a `proxy` HOST:PORT), answered 200,
    from terminal `address`; nothing sent inside it yet."""
    proxy_host, port = via.proxy.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(proxy_host, int(port), local_addr=(address, 0))
    writer.write(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b" 200 " in head.split(b"\r\n", 1)[0], head
    return reader, writer


async def tls_tunnel(via: Any, host: str, address: str = CELL) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A CONNECT tunnel through the gateway `via` (its `proxy`; `origin.ca_file` is trusted) with TLS to `host`
    inside it, as a browser holds one open."""
    reader, writer = await connect_tunnel(via, host, address)
    await writer.start_tls(ssl.create_default_context(cafile=str(via.origin.ca_file)), server_hostname=host)
    return reader, writer


async def get_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str) -> bytes:
    """One keep-alive request over an open tunnel: the body, or b"" when the tunnel was closed."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    try:
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        return b""
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return await reader.readexactly(length)


STAFF_PASSWORD = "correct horse battery staple"


@contextlib.asynccontextmanager
async def staff_client(platform: Platform, address: str, username: str,
                       roles: list[str]) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser of a new staff account that has logged in through the pages: password, then app enrolment."""
    with platform.up.kernel.factory.begin() as db:
        secret = add_staff(db, username=username, roles=roles, password=STAFF_PASSWORD, now=utcnow()).totp_secret
    async with platform.client(address) as client:
        async with client.get(f"{platform.portal}/staff/login") as page:
            token = csrf_from(await page.text())
        async with client.post(f"{platform.portal}/staff/login", data={
                "username": username, "password": STAFF_PASSWORD, "csrf_token": token}) as resp:
            assert resp.url.path == "/staff/enrol", await resp.text()
            token = csrf_from(await resp.text())
        async with client.post(f"{platform.portal}/staff/enrol", data={
                "code": pyotp.TOTP(secret).now(), "csrf_token": token}) as resp:
            assert resp.status == 200 and "recovery-codes" in await resp.text()
        yield client


def free_port() -> int:
    """A loopback port nobody listens on now (for a private server a test starts and stops)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_redis(port: int) -> asyncio.subprocess.Process:
    """A private redis-server on `port`, to kill and restart in outage tests (the shared one stays up)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    proc = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    probe = Redis(port=port)
    try:
        for _ in range(100):
            try:
                await probe.ping()
                return proc
            except RedisError:
                await asyncio.sleep(0.05)
    finally:
        await probe.aclose()
    proc.kill()
    raise AssertionError("redis-server did not start")


CHROMIUM = os.environ.get("GATEHOUSE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_CHROMIUM = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("GATEHOUSE_TEST_REQUIRE_SERVICES"),
                                    reason="Chromium is not installed")
"""Browser tests are skipped where Chromium is missing, except where the services are required (CI)."""
QUIET_CHROMIUM = ("--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


@contextlib.asynccontextmanager
async def launched_chromium(*args: str) -> AsyncIterator[Any]:
    """Debian's Chromium, headless, without its own background services, with `args` added."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*QUIET_CHROMIUM, *args])
        try:
            yield browser
        finally:
            await browser.close()
