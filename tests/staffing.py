"""Helpers for staff tests: accounts in the database, the login steps over HTTP, codes from the account's secret."""

from __future__ import annotations

import contextlib
import html
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
from sqlalchemy import select, update
from yarl import URL

from gatehouse import staff as accounts
from gatehouse.cli.ops import initialise
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffAccount, StaffSession
from gatehouse.settings import Settings
from tests.conftest import Origin, platform_settings
from tests.helpers import Platform, csrf_from, populate

PASSWORD = "a long and private passphrase"
STAFF_COOKIE = "gh_staff"
RECOVERY = re.compile(r"<li><code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code></li>")
ROOMY = {"login__attempts_per_address": 1000, "login__attempts_per_minute": 1000,
         "login__staff_failures_per_account": 50}
"""Limits no test reaches unless it means to."""


def staff_settings(tmp_path: Path, origin: Origin, database_url: str = "", **overrides: Any) -> Settings:
    return platform_settings(tmp_path / "data", origin, database_url).replace(**{**ROOMY, **overrides})


@contextlib.asynccontextmanager
async def shared_portal(data_dir: Path) -> AsyncIterator[Platform]:
    """A portal for a module of tests that each use accounts of their own (no origin: they browse nothing)."""
    settings = initialise(data_dir, {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    async with serving(settings.replace(**ROOMY), Origin()) as site:
        yield site


@contextlib.asynccontextmanager
async def serving(settings: Settings, origin: Origin) -> AsyncIterator[Platform]:
    from gatehouse.cli.serve import running

    async with running(settings) as up:
        yield Platform(up, origin, settings)


@dataclass(frozen=True)
class Staff:
    username: str
    secret: str
    account_id: int
    password: str = PASSWORD

    def code(self, steps: int = 0) -> str:
        """The code the account's app shows `steps` time steps from now."""
        return str(pyotp.TOTP(self.secret).at(time.time() + 30 * steps))


def add_staff(platform: Platform, username: str, *roles: str, enrolled: bool = True,
              password: str = PASSWORD) -> Staff:
    """An account as `gatehouse staff add` makes it; `enrolled` as if its app had been set up at a first login."""
    with platform.up.kernel.factory.begin() as db:
        account = accounts.add_staff(db, username=username, roles=list(roles) or ["education"], password=password,
                                     now=utcnow())
        if enrolled:
            account.totp_enrolled_at = utcnow()
        return Staff(account.username, account.totp_secret, account.id, password)


def wrong_code(staff: Staff) -> str:
    """Six digits that match none of the account's codes near now, not even as a clock that is off."""
    near = {staff.code(steps) for steps in range(-12, 13)}
    return next(f"{n:06d}" for n in range(1000, 999999, 7919) if f"{n:06d}" not in near)


@dataclass(frozen=True)
class Reply:
    status: int
    location: str
    body: str
    """The page with HTML character references resolved, as a person reads it."""


async def fetch(platform: Platform, client: aiohttp.ClientSession, path: str) -> Reply:
    async with client.get(platform.portal + path, allow_redirects=False) as resp:
        return Reply(resp.status, resp.headers.get("Location", ""), html.unescape(await resp.text()))


async def csrf(platform: Platform, client: aiohttp.ClientSession) -> str:
    """The token a form of this browser carries (the portal puts the same value in a cookie)."""
    for cookie in client.cookie_jar:
        if cookie.key == "gh_csrf":
            return cookie.value
    return csrf_from((await fetch(platform, client, "/staff/login")).body)


async def submit(platform: Platform, client: aiohttp.ClientSession, path: str, **fields: str) -> Reply:
    token = await csrf(platform, client)
    async with client.post(platform.portal + path, data={"csrf_token": token, **fields},
                           allow_redirects=False) as resp:
        return Reply(resp.status, resp.headers.get("Location", ""), html.unescape(await resp.text()))


async def password_step(platform: Platform, client: aiohttp.ClientSession, staff: Staff,
                        password: str = "") -> Reply:
    return await submit(platform, client, "/staff/login", username=staff.username,
                        password=password or staff.password)


async def log_in(platform: Platform, client: aiohttp.ClientSession, staff: Staff, code: str = "") -> Reply:
    """Both steps; the reply to the second. Without `code`, the app's code of now."""
    first = await password_step(platform, client, staff)
    assert (first.status, first.location) == (303, "/staff/totp"), first
    return await submit(platform, client, "/staff/totp", code=code or staff.code())


async def enrol(platform: Platform, client: aiohttp.ClientSession, staff: Staff) -> list[str]:
    """A first login: password, then the app's first code; the recovery codes the page shows once."""
    first = await password_step(platform, client, staff)
    assert (first.status, first.location) == (303, "/staff/totp"), first
    done = await submit(platform, client, "/staff/enrol", code=staff.code())
    assert done.status == 200, done
    return RECOVERY.findall(done.body)


def token_of(client: aiohttp.ClientSession) -> str:
    return next(c.value for c in client.cookie_jar if c.key == STAFF_COOKIE)


def with_token(platform: Platform, address: str, token: str) -> aiohttp.ClientSession:
    """Another browser that presents a copied staff cookie."""
    client = platform.client(address)
    client.cookie_jar.update_cookies({STAFF_COOKIE: token}, response_url=URL(platform.portal))
    return client


def sessions_of(platform: Platform, staff: Staff) -> list[StaffSession]:
    with platform.up.kernel.factory() as db:
        return list(db.scalars(select(StaffSession).where(StaffSession.account_id == staff.account_id)
                               .order_by(StaffSession.id)))


def shift_session(platform: Platform, token: str, **columns: datetime) -> None:
    """Move a session's times, as if it had begun or last been used earlier."""
    with platform.up.kernel.factory.begin() as db:
        db.execute(update(StaffSession).where(StaffSession.token_hash == accounts.token_hash(token))
                   .values(**columns))


def session_row(platform: Platform, token: str) -> StaffSession:
    with platform.up.kernel.factory() as db:
        row = db.scalar(select(StaffSession).where(StaffSession.token_hash == accounts.token_hash(token)))
        assert row is not None
        return row


def account_row(platform: Platform, staff: Staff) -> StaffAccount:
    with platform.up.kernel.factory() as db:
        row = db.get(StaffAccount, staff.account_id)
        assert row is not None
        return row
