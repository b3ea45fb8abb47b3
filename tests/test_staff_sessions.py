"""How a staff session ends: logout, idle time, its longest life, a password change, a disabled account, a 2FA
reset; and that it outlives a restart of the portal, being kept in the database."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import update

from gatehouse.cli import main
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffAccount
from tests.conftest import Origin
from tests.helpers import CELL, CLASSROOM, Platform
from tests.staffing import (
    PASSWORD,
    RECOVERY,
    Staff,
    add_staff,
    enrol,
    fetch,
    log_in,
    password_step,
    serving,
    session_row,
    sessions_of,
    shared_portal,
    shift_session,
    staff_settings,
    submit,
    token_of,
    with_token,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.filterwarnings("ignore::ResourceWarning")]
NEW_PASSWORD = "another long passphrase"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with shared_portal(tmp_path_factory.mktemp("staff") / "data") as up:
        yield up


async def logged_in(site: Platform, staff: Staff, address: str = CELL, steps: int = 0) -> str:
    """The token of a full session, as the browser's cookie holds it."""
    async with site.client(address) as browser:
        assert (await log_in(site, browser, staff, staff.code(steps))).location == "/staff"
        return token_of(browser)


async def page_for(site: Platform, token: str, path: str = "/staff", address: str = CELL) -> tuple[int, str]:
    async with with_token(site, address, token) as browser:
        reply = await fetch(site, browser, path)
    return reply.status, reply.location


async def cli(site: Platform, *argv: str) -> int:
    """`gatehouse staff ...` on the running portal's data dir, as an administrator would run it beside it; the
    data dir's own settings only, whatever GATEHOUSE_* variables this shell has."""
    def run() -> int:
        saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("GATEHOUSE_")}
        try:
            return main([*argv, "--data-dir", str(site.settings.data_dir)])
        finally:
            os.environ.update(saved)
    return await asyncio.to_thread(run)


async def test_logout_ends_the_session_on_the_server(site: Platform) -> None:
    vera = add_staff(site, "vera")
    async with site.client(CELL) as browser:
        assert (await log_in(site, browser, vera)).location == "/staff"
        token = token_of(browser)
        out = await submit(site, browser, "/staff/logout")
        assert (out.status, out.location) == (303, "/staff/login")
        assert not any(c.key == "gh_staff" and c.value for c in browser.cookie_jar)
        assert (await fetch(site, browser, "/staff")).location == "/staff/login"
    assert await page_for(site, token) == (302, "/staff/login"), "a copy of the cookie is worth nothing now"
    assert session_row(site, token).end_reason == "logout"
    assert len(site.records(tag="staff:logout:done", actor="vera")) == 1


async def test_a_pending_login_can_be_abandoned_too(site: Platform) -> None:
    wim = add_staff(site, "wim")
    async with site.client(CELL) as browser:
        assert (await password_step(site, browser, wim)).location == "/staff/totp"
        token = token_of(browser)
        assert (await submit(site, browser, "/staff/logout")).location == "/staff/login"
    assert session_row(site, token).end_reason == "logout"
    assert await page_for(site, token, "/staff/totp") == (302, "/staff/login")


async def test_an_idle_session_ends_and_use_keeps_it_alive(site: Platform) -> None:
    xavi = add_staff(site, "xavi")
    idle = timedelta(minutes=site.settings["staff.idle_minutes"])
    token = await logged_in(site, xavi)
    for _ in range(3):  # three times almost the idle time: alive, because each visit counts as use
        shift_session(site, token, last_seen_at=utcnow() - idle + timedelta(minutes=1))
        assert await page_for(site, token) == (200, "")
        assert utcnow() - session_row(site, token).last_seen_at < timedelta(seconds=30)
    shift_session(site, token, last_seen_at=utcnow() - idle - timedelta(seconds=1))
    assert await page_for(site, token) == (302, "/staff/login")
    assert session_row(site, token).end_reason == "idle"
    shift_session(site, token, last_seen_at=utcnow())
    assert await page_for(site, token) == (302, "/staff/login"), "an ended session stays ended"


async def test_idle_minutes_come_from_the_settings(tmp_path: Path, origin: Origin) -> None:
    async with serving(staff_settings(tmp_path, origin, staff__idle_minutes=2), origin) as site:
        yara = add_staff(site, "yara")
        token = await logged_in(site, yara)
        shift_session(site, token, last_seen_at=utcnow() - timedelta(minutes=1, seconds=50))
        assert await page_for(site, token) == (200, "")
        shift_session(site, token, last_seen_at=utcnow() - timedelta(minutes=2, seconds=1))
        assert await page_for(site, token) == (302, "/staff/login")


async def test_a_session_in_use_ends_at_its_longest_life(tmp_path: Path, origin: Origin) -> None:
    async with serving(staff_settings(tmp_path, origin, staff__max_hours=2), origin) as site:
        zoe = add_staff(site, "zoe")
        token = await logged_in(site, zoe)
        row = session_row(site, token)
        assert row.expires_at - row.created_at == timedelta(hours=2)
        almost = timedelta(hours=2) - timedelta(minutes=1)
        with site.up.kernel.factory.begin() as db:  # the account is older than the sessions moved back
            db.execute(update(StaffAccount).where(StaffAccount.id == zoe.account_id)
                       .values(password_changed_at=row.created_at - timedelta(days=1)))
        shift_session(site, token, created_at=row.created_at - almost, expires_at=row.expires_at - almost)
        assert await page_for(site, token) == (200, "")
        shift_session(site, token, created_at=row.created_at - almost * 2, expires_at=row.expires_at - almost * 2,
                      last_seen_at=utcnow())
        assert await page_for(site, token) == (302, "/staff/login"), "in use all along, but logged in too long ago"
        assert session_row(site, token).end_reason == "expired"


async def test_the_second_step_must_come_within_minutes(site: Platform) -> None:
    adam = add_staff(site, "adam")
    async with site.client(CELL) as browser:
        assert (await password_step(site, browser, adam)).location == "/staff/totp"
        token = token_of(browser)
        row = session_row(site, token)
        assert timedelta(minutes=5) <= row.expires_at - row.created_at <= timedelta(minutes=15)
        shift_session(site, token, expires_at=utcnow() - timedelta(seconds=1))
        late = await submit(site, browser, "/staff/totp", code=adam.code())
        assert (late.status, late.location) == (302, "/staff/login")
    assert session_row(site, token).end_reason == "expired"


async def test_changing_the_password_ends_every_other_session(site: Platform) -> None:
    bea = add_staff(site, "bea")
    other = await logged_in(site, bea, CLASSROOM)
    async with site.client(CELL) as browser:
        assert (await log_in(site, browser, bea, bea.code(1))).location == "/staff"
        before = session_row(site, token_of(browser))

        async def change(current: str, new: str, confirm: str = "") -> tuple[int, str]:
            reply = await submit(site, browser, "/staff/account/password", current=current, new=new,
                                 confirm=confirm or new)
            return reply.status, reply.body

        status, body = await change(PASSWORD, "too short")
        assert status == 400 and "A password has at least 12 characters." in body
        status, body = await change(PASSWORD, "this has bea in it")
        assert status == 400 and "must not contain your username" in body
        status, body = await change(PASSWORD, "x" * 1025)
        assert status == 400 and "at most 1024 characters" in body
        status, body = await change(PASSWORD, NEW_PASSWORD, "a different passphrase")
        assert status == 400 and "The two new passwords are not the same." in body
        status, body = await change("not my passphrase", NEW_PASSWORD)
        assert status == 403 and "That is not your current password." in body
        assert await page_for(site, other, address=CLASSROOM) == (200, ""), "a refused change ends nothing"

        status, body = await change(PASSWORD, NEW_PASSWORD)
        assert status == 200 and "Your password was changed." in body
        mine = token_of(browser)
        assert mine != before.token_hash and (await fetch(site, browser, "/staff")).status == 200
        after = session_row(site, mine)
        assert after.expires_at == before.expires_at, "a change does not lengthen the session"
        assert session_row(site, other).end_reason == "password-changed", "ended at once, not when next used"
    assert await page_for(site, other, address=CLASSROOM) == (302, "/staff/login")
    assert session_row(site, other).end_reason == "password-changed"
    async with site.client(CELL) as browser:
        assert (await password_step(site, browser, bea)).status == 403
        assert (await password_step(site, browser, bea, NEW_PASSWORD)).location == "/staff/totp"
    assert len(site.records(tag="staff:password:changed", actor="bea")) == 1


async def test_disabling_an_account_ends_its_sessions_and_logins(site: Platform) -> None:
    cas = add_staff(site, "cas")
    token = await logged_in(site, cas)
    async with site.client(CLASSROOM) as browser:
        assert (await password_step(site, browser, cas)).location == "/staff/totp"
        pending = token_of(browser)
    assert await cli(site, "staff", "disable", "--username", "cas") == 0
    assert await page_for(site, token) == (302, "/staff/login")
    assert await page_for(site, pending, "/staff/totp", CLASSROOM) == (302, "/staff/login")
    assert {s.end_reason for s in sessions_of(site, cas)} == {"disabled", "promoted"}
    async with site.client(CELL) as browser:
        refused = await password_step(site, browser, cas)
        assert refused.status == 403 and "Wrong username or password." in refused.body
    assert await cli(site, "staff", "enable", "--username", "cas") == 0
    async with site.client(CELL) as browser:
        assert (await log_in(site, browser, cas, cas.code(1))).location == "/staff"


async def test_resetting_2fa_ends_sessions_and_asks_for_a_new_app(site: Platform) -> None:
    dirk = add_staff(site, "dirk", enrolled=False)
    async with site.client(CELL) as browser:
        old_codes = await enrol(site, browser, dirk)
        token = token_of(browser)
    assert len(old_codes) == 10
    assert await cli(site, "staff", "reset-2fa", "--username", "dirk") == 0
    assert await page_for(site, token) == (302, "/staff/login")
    assert session_row(site, token).end_reason == "totp-reset"

    async with site.client(CELL) as browser:
        assert (await password_step(site, browser, dirk)).location == "/staff/totp"
        assert (await fetch(site, browser, "/staff/totp")).location == "/staff/enrol"
        assert (await submit(site, browser, "/staff/totp", code=old_codes[1])).location == "/staff/enrol"
        old_app = await submit(site, browser, "/staff/enrol", code=dirk.code(1))
        assert old_app.status == 403 and "That code is not right." in old_app.body
        page = await fetch(site, browser, "/staff/enrol")
        with site.up.kernel.factory() as db:
            account = db.get(StaffAccount, dirk.account_id)
            assert account is not None
            new = Staff("dirk", account.totp_secret, dirk.account_id)
        assert new.secret != dirk.secret and " ".join(new.secret[i:i + 4] for i in range(0, 32, 4)) in page.body
        done = await submit(site, browser, "/staff/enrol", code=new.code())
        assert done.status == 200 and len(RECOVERY.findall(done.body)) == 10


async def test_a_session_outlives_a_restart_of_the_portal(tmp_path: Path, origin: Origin) -> None:
    settings = staff_settings(tmp_path, origin)
    async with serving(settings, origin) as site:
        emma = add_staff(site, "emma")
        token = await logged_in(site, emma)
        async with site.client(CLASSROOM) as browser:
            assert (await password_step(site, browser, emma)).location == "/staff/totp"
            pending = token_of(browser)
    async with serving(settings, origin) as again:
        assert await page_for(again, token) == (200, "")
        async with with_token(again, CLASSROOM, pending) as browser:
            done = await submit(again, browser, "/staff/totp", code=emma.code(1))
            assert (done.status, done.location) == (303, "/staff")


async def test_two_recovery_codes_at_once_on_one_pending_login_give_one_session(site: Platform) -> None:
    finn = add_staff(site, "finn", enrolled=False)
    async with site.client(CELL) as browser:
        codes = await enrol(site, browser, finn)
        assert (await submit(site, browser, "/staff/logout")).location == "/staff/login"
    async with site.client(CELL) as browser:
        assert (await password_step(site, browser, finn)).location == "/staff/totp"
        replies = await asyncio.gather(submit(site, browser, "/staff/totp", code=codes[0]),
                                       submit(site, browser, "/staff/totp", code=codes[1]))
    assert all(r.status in (302, 303) for r in replies), [(r.status, r.body[:300]) for r in replies]
    assert "/staff" in {r.location for r in replies}
    assert [s.stage for s in sessions_of(site, finn) if s.ended_at is None] == ["full"]
