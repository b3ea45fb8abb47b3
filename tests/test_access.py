"""Who reaches which page: every route in the portal's table, requested as every kind of person, against a table
written here (not derived from portal.access), and a CSRF check that no POST handler runs without its token.

A probe inside every middleware records which requests reached a handler, so a refusal is told apart from a
handler that itself redirects. Routes added later are walked too; one missing from the table fails the test.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gatehouse import staff as accounts
from gatehouse.cli.ops import initialise
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.sessions import login, resolve
from portal.app import create_app
from portal.keys import STAFF_POLICY
from tests.helpers import CELL, INMATE, PIN, populate

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.filterwarnings("ignore::ResourceWarning")]
PROBE = "X-Test-Probe"
PASSWORD = "a long and private passphrase"


@dataclass(frozen=True)
class Viewer:
    name: str
    kind: str
    """anonymous, inmate, pending (password given, code not yet) or staff."""
    roles: frozenset[str] = frozenset()


VIEWERS = (
    Viewer("anonymous", "anonymous"),
    Viewer("inmate", "inmate"),
    Viewer("pending", "pending", frozenset({"admin", "security"})),
    Viewer("education", "staff", frozenset({"education"})),
    Viewer("security", "staff", frozenset({"security"})),
    Viewer("supervisor", "staff", frozenset({"supervisor"})),
    Viewer("admin", "staff", frozenset({"admin"})),
    Viewer("education+security", "staff", frozenset({"education", "security"})),
)
Audience = Callable[[Viewer], bool]


def anyone(viewer: Viewer) -> bool:
    return True


def inmates(viewer: Viewer) -> bool:
    return viewer.kind == "inmate"


def inmates_and_staff(viewer: Viewer) -> bool:
    return viewer.kind in ("inmate", "staff")


def between_steps(viewer: Viewer) -> bool:
    return viewer.kind == "pending"


def staff_with(*roles: str) -> Audience:
    """Full staff sessions only; with roles named, staff holding at least one of them."""
    def audience(viewer: Viewer) -> bool:
        return viewer.kind == "staff" and (not roles or bool(viewer.roles & set(roles)))
    return audience


# Who may use a path: the first entry the path equals or lies under decides ("/" only itself).
EXPECTED: tuple[tuple[str, Audience], ...] = (
    ("/admin", staff_with("admin")),
    ("/audit", staff_with("security")),
    ("/control", staff_with("security")),
    ("/staff/login", anyone),
    ("/staff/logout", anyone),
    ("/staff/totp", between_steps),
    ("/staff/enrol", between_steps),
    ("/staff/visitors", staff_with("security")),
    ("/staff/visits/watch", staff_with("supervisor")),
    ("/staff/visits/1", staff_with("supervisor")),
    ("/staff", staff_with()),
    ("/home", inmates),
    ("/visits/1/call", inmates),
    ("/courses", inmates),
    ("/learning", inmates),
    ("/teach", staff_with("education")),
    ("/ask", inmates),
    ("/requests", inmates),
    ("/curation", staff_with("education", "security")),
    ("/library-admin", staff_with("education")),
    ("/library", inmates_and_staff),
    ("/resources-admin", staff_with("education")),
    ("/resources", inmates_and_staff),
    ("/jobs", inmates),
    ("/plan", inmates),
    ("/plan.pdf", inmates),
    ("/verify", anyone),
    ("/login", anyone),
    ("/logout", anyone),
    ("/language", anyone),
    ("/ca.pem", anyone),
    ("/healthz", anyone),
    ("/", anyone),
)
STAFF_AREAS = ("/admin", "/audit", "/control", "/staff", "/teach", "/curation", "/library-admin", "/resources-admin")
PUBLIC_STAFF_PAGES = ("/staff/login", "/staff/logout")


def audience_of(path: str) -> Audience | None:
    for prefix, audience in EXPECTED:
        if path == prefix or (prefix != "/" and path.startswith(prefix + "/")):
            return audience
    return None


def under(path: str, *prefixes: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    """A concrete path that the route's pattern matches."""
    route: str


FILLERS = ("1", "A100", "x", "abc-1")


def targets(app: web.Application) -> list[Target]:
    """Every method and path of the route table but static files, placeholders filled to match."""
    found: list[Target] = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        info = resource.get_info()
        path = info.get("path")
        if path is None:
            formatter, pattern = info["formatter"], info["pattern"]
            candidates = (re.sub(r"\{[^}]+\}", filler, formatter) for filler in FILLERS)
            path = next((c for c in candidates if pattern.fullmatch(c)), None)
            assert path is not None, f"no test value fits {formatter}; add one to FILLERS"
        for method in (("GET", "POST") if route.method == "*" else (route.method,)):
            found.append(Target(method, path, f"{route.method} {resource.canonical}"))
    return found


@dataclass
class Portal:
    app: web.Application
    kernel: Kernel
    base: str
    reached: set[str] = field(default_factory=set)
    accounts: dict[str, int] = field(default_factory=dict)

    async def cookies_for(self, viewer: Viewer) -> dict[str, str]:
        """A staff session of its own for each request, made as the login steps make it; the inmate's session at
        the terminal until a request ends it."""
        if viewer.kind == "anonymous":
            return {}
        if viewer.kind == "inmate":  # one login (a slow PIN hash) for as long as no request ended it
            _, active = resolve(self.kernel.factory, self.kernel.session_policy, CELL, utcnow())
            if active is None:
                active, _ = login(self.kernel.factory, self.kernel.session_policy, address=CELL, number=INMATE,
                                  pin=PIN, now=utcnow())
            return {"gh_session": active.token}
        policy = self.app[STAFF_POLICY]
        token = accounts.start_session(self.kernel.factory, policy, self.accounts[viewer.name], CELL, utcnow())
        if viewer.kind == "staff":
            token = accounts.promote(self.kernel.factory, policy, token, utcnow())
        return {"gh_staff": token}

    async def request(self, viewer: Viewer, target: Target, *, csrf: str | None = "valid",
                      ) -> tuple[bool, int, str, str]:
        """(reached the handler, status, Location, body) for one request of `viewer`."""
        probe = secrets.token_hex(8)
        cookies = await self.cookies_for(viewer)
        data: dict[str, str] = {}
        if target.method not in ("GET", "HEAD"):
            token = secrets.token_urlsafe(24)
            if csrf in ("valid", "no-cookie"):
                data["csrf_token"] = token
            elif csrf == "wrong":
                data["csrf_token"] = secrets.token_urlsafe(24)
            if csrf != "no-cookie":
                cookies["gh_csrf"] = token
        headers = {PROBE: probe, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        connector = aiohttp.TCPConnector(local_addr=(CELL, 0))
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as client, \
                client.request(target.method, self.base + target.path, headers=headers, data=data or None,
                               allow_redirects=False) as resp:
            body = await resp.text(errors="replace")  # a PDF or an image is not text
            return probe in self.reached, resp.status, resp.headers.get("Location", ""), body


def probing(portal: Portal) -> Middleware:
    @web.middleware
    async def probe(request: web.Request, handler: Handler) -> web.StreamResponse:
        portal.reached.add(request.headers.get(PROBE, ""))
        return await handler(request)
    return probe


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def portal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Portal]:
    """The portal as `gatehouse run` builds it, served on loopback, with a probe as its innermost middleware."""
    data_dir: Path = tmp_path_factory.mktemp("access") / "data"
    settings = initialise(data_dir, {"portal.port": 0, "proxy.port": 0,
                                     "login.attempts_per_address": 100000, "login.attempts_per_minute": 100000},
                          quiet=True)
    populate(settings)
    kernel = Kernel.open(settings)
    await kernel.start()
    app = create_app(kernel)
    result = Portal(app, kernel, "")
    app.middlewares.append(probing(result))
    with kernel.factory.begin() as db:
        for viewer in VIEWERS:
            if viewer.kind in ("pending", "staff"):
                account = accounts.add_staff(db, username=re.sub(r"[^a-z]", "-", viewer.name),
                                             roles=sorted(viewer.roles), password=PASSWORD, now=utcnow())
                account.totp_enrolled_at = utcnow()
                db.flush()
                result.accounts[viewer.name] = account.id
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    result.base = f"http://127.0.0.1:{port}"
    yield result
    await runner.cleanup()
    await kernel.close()


async def test_every_route_is_in_the_expectation_table(portal: Portal) -> None:
    missing = sorted({t.route for t in targets(portal.app) if audience_of(t.path) is None})
    assert not missing, f"routes nobody said who may use; add them to EXPECTED: {missing}"
    paths = {t.path for t in targets(portal.app)}
    assert {"/staff", "/staff/login", "/staff/totp", "/home", "/login"} <= paths, "the walk sees the table"


@pytest.mark.parametrize("viewer", VIEWERS, ids=[v.name for v in VIEWERS])
async def test_each_route_is_reached_exactly_by_whom_it_is_for(portal: Portal, viewer: Viewer) -> None:
    wrong: list[str] = []
    for target in targets(portal.app):
        audience = audience_of(target.path)
        if audience is None:
            continue  # reported by the test above
        reached, status, location, _ = await portal.request(viewer, target)
        expected = audience(viewer)
        if reached != expected:
            wrong.append(f"{target.method} {target.path}: {'reached' if reached else 'refused'} ({status} "
                         f"{location}), expected {'reached' if expected else 'refused'}")
        elif not expected and not (status == 403 or (status in (302, 303) and location.startswith("/"))):
            wrong.append(f"{target.method} {target.path}: refused with {status}, not 403 or a redirect")
        elif not expected and viewer.kind == "anonymous" and status != 403 and \
                location not in ("/login", "/staff/login"):
            wrong.append(f"{target.method} {target.path}: anonymous sent to {location}, not to a login page")
    assert not wrong, f"{viewer.name}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("viewer", [v for v in VIEWERS if v.name in ("inmate", "education", "anonymous")],
                         ids=lambda v: v.name)
async def test_inmates_and_education_never_see_staff_areas_beyond_their_own(portal: Portal, viewer: Viewer) -> None:
    """Hard rules that hold whatever the table says: checked on the status, not only the probe."""
    closed = {"inmate": STAFF_AREAS, "anonymous": STAFF_AREAS,
              "education": ("/admin", "/audit", "/control")}[viewer.name]
    checked = 0
    for target in targets(portal.app):
        if not under(target.path, *closed) or under(target.path, *PUBLIC_STAFF_PAGES):
            continue
        reached, status, _, body = await portal.request(viewer, target)
        assert not reached and not 200 <= status < 300, (target, status)
        assert "Welcome" not in body
        checked += 1
    assert checked >= 3


def poster(viewer_for: Callable[[str], Viewer | None], portal: Portal) -> list[tuple[Target, Viewer]]:
    pairs = []
    for target in targets(portal.app):
        if target.method in ("GET", "HEAD", "OPTIONS"):
            continue
        viewer = viewer_for(target.path)
        assert viewer is not None, f"nobody may use {target.route}"
        pairs.append((target, viewer))
    return pairs


def first_allowed(path: str) -> Viewer | None:
    audience = audience_of(path)
    return next((v for v in VIEWERS if audience is not None and audience(v)), None)


@pytest.mark.parametrize("csrf", ["missing", "wrong", "no-cookie"])
async def test_no_post_handler_runs_without_the_form_token(portal: Portal, csrf: str) -> None:
    """Each POST route, as someone it is for: without the token (or its cookie), 403 and the handler never runs;
    with it, the handler runs (so the refusal is the token's doing)."""
    pairs = poster(first_allowed, portal)
    assert len(pairs) >= 5
    for target, viewer in pairs:
        reached, status, _, body = await portal.request(viewer, target, csrf=csrf)
        assert (reached, status) == (False, 403), (target, viewer.name, status)
        assert "reload the page" in body
        assert (await portal.request(viewer, target))[0], (target, viewer.name)


async def test_a_route_without_a_rule_stops_start_up_and_is_refused(portal: Portal) -> None:
    async def undeclared(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    app = create_app(portal.kernel)
    app.router.add_get("/forgotten", undeclared)
    with pytest.raises(RuntimeError, match=r"/forgotten does not declare who may use it"):
        from portal.access import check_routes

        check_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as client:
            cookies = await portal.cookies_for(next(v for v in VIEWERS if v.name == "admin"))
            async with client.get(f"http://127.0.0.1:{port}/forgotten",
                                  headers={"Cookie": f"gh_staff={cookies['gh_staff']}"}) as resp:
                assert resp.status == 403 and "secret" not in await resp.text()
    finally:
        await runner.cleanup()
