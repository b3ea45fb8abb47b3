"""Fixtures that stand up real things on loopback: origins with TLS, PostgreSQL databases, the platform."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from sqlalchemy.engine import make_url

from gatehouse.cli.ops import initialise
from gatehouse.settings import Settings
from tests.helpers import Platform, populate

POSTGRES_ENV = "GATEHOUSE_TEST_POSTGRES_URL"
REDIS_ENV = "GATEHOUSE_TEST_REDIS_URL"


def missing_services(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """What a test would skip for locally: CI (GATEHOUSE_TEST_REQUIRE_SERVICES=1) refuses to start instead, so a
    run without Chromium, curl, Redis, PostgreSQL, pdftotext or espeak-ng cannot pass by skipping their tests."""
    missing = [f"{name} is not set" for name in (POSTGRES_ENV, REDIS_ENV) if not environ.get(name)]
    if not (environ.get("GATEHOUSE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")):
        missing.append("Chromium is not installed (or name it in GATEHOUSE_TEST_CHROMIUM)")
    missing += [f"{tool} is not installed" for tool in ("curl", "redis-server", "pdftotext", "espeak-ng", "turnserver")
                if shutil.which(tool) is None]
    return missing


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("GATEHOUSE_TEST_REQUIRE_SERVICES") and (missing := missing_services()):
        raise pytest.UsageError("GATEHOUSE_TEST_REQUIRE_SERVICES is set, so nothing may be skipped, but "
                                + "; ".join(missing))


@pytest.fixture(scope="session")
def postgres_server() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return url


@contextmanager
def new_postgres_database(server: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    import psycopg

    base = make_url(server)
    name = f"gatehouse_test_{secrets.token_hex(6)}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    with new_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'storage.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database of each kind for a whole module, for tests that only read what the module's fixture wrote."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'storage.db'}"
        return
    with new_postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@dataclass
class Origin:
    """A loopback web server on HTTP and HTTPS that records every request it receives."""

    http_port: int = 0
    https_port: int = 0
    ca_file: Path = Path()
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def saw(self, method: str, host: str, path: str) -> bool:
        return (method, host, path) in self.seen


@pytest.fixture
async def origin(test_ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Origin]:
    result = Origin()

    async def handler(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        result.seen.append((request.method, host, request.path_qs))
        if request.path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        if request.path == "/big":  # a download of n bytes
            return web.Response(body=b"x" * int(request.query["n"]))
        if request.path == "/ws" and request.headers.get("upgrade", "").lower() == "websocket":  # an echo
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            async for message in socket:
                await socket.send_str(f"echo {message.data}")
            return socket
        body = await request.read()
        return web.Response(text=f"origin {host} {request.method} {request.path_qs} {len(body)}")

    async with serve_origin(result, handler, test_ca, tmp_path):
        yield result


@contextlib.asynccontextmanager
async def serve_origin(result: Origin, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                       ca: trustme.CA, folder: Path) -> AsyncIterator[Origin]:
    """`handler` answering every path on loopback over HTTP and HTTPS (a certificate of `ca` for every test host);
    the ports and the CA file go into `result`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*HOSTS).configure_cert(context)
    plain, tls = web.TCPSite(runner, "127.0.0.1", 0), web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await plain.start()
    await tls.start()
    result.http_port = plain._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    result.https_port = tls._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    result.ca_file = folder / "origin-ca.pem"
    ca.cert_pem.write_to_path(str(result.ca_file))
    try:
        yield result
    finally:
        await runner.cleanup()


POLICY = """\
rules:
  - id: allowed
    allow: [allowed.test, "*.allowed.test", www.allowed.test, cdn.allowed.test]
  - id: no-mail
    deny: [mail.test]
  - id: direct
    mode: passthrough
    allow: [passthrough.test]
  - id: lms
    allow: [lms.test]
    paths: [/courses]
    methods: [GET, POST]
  - id: lms-no-forum
    deny: [lms.test]
    paths: [/courses/forum]
"""
HOSTS = ["allowed.test", "www.allowed.test", "cdn.allowed.test", "rebind.allowed.test", "other.test", "mail.test",
         "passthrough.test", "lms.test"]


def platform_settings(data_dir: Path, origin: Origin, database_url: str = "") -> Settings:
    overrides: dict[str, object] = {"portal.port": 0, "proxy.port": 0}
    if database_url:
        overrides["database.url"] = database_url
    settings = initialise(data_dir, overrides, quiet=True)
    resolve = [f"{h}:80=127.0.0.1:{origin.http_port}" for h in HOSTS]
    resolve += [f"{h}:443=127.0.0.1:{origin.https_port}" for h in HOSTS]
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    (settings.policy_dir / "test.yaml").write_text(POLICY, encoding="utf-8")
    populate(settings)
    return settings.replace(proxy__resolve=resolve, proxy__upstream_ca_file=str(origin.ca_file))


@pytest.fixture
async def platform(tmp_path: Path, origin: Origin) -> AsyncIterator[Platform]:
    """Portal and gateway in this test's event loop, on free loopback ports, with an SQLite data dir."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin)
    async with running(settings) as up:
        yield Platform(up, origin, settings)


@pytest.fixture(scope="session")
def curl_bin() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed")
    return path
