"""Staff login over HTTP against the running portal: password, TOTP enrolment, replay, recovery codes, and the
ways a session ends."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest
import pytest_asyncio
from sqlalchemy import select

from gatehouse import staff as accounts
from gatehouse.db.engine import make_engine, session_factory, upgrade, utcnow
from gatehouse.db.models import RecoveryCode, StaffAccount, StaffNotice
from tests.conftest import Origin
from tests.helpers import CELL, CLASSROOM, Platform
from tests.staffing import (
    PASSWORD,
    RECOVERY,
    Staff,
    account_row,
    add_staff,
    csrf,
    enrol,
    fetch,
    log_in,
    password_step,
    serving,
    sessions_of,
    shared_portal,
    staff_settings,
    submit,
    token_of,
    with_token,
    wrong_code,
)
from tests.test_cli import gatehouse

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.filterwarnings("ignore::ResourceWarning")]
OTHER = "127.0.0.3"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with shared_portal(tmp_path_factory.mktemp("staff") / "data") as up:
        yield up


async def test_first_login_enrols_the_app_shows_codes_once_then_totp_logs_in(site: Platform) -> None:
    added = gatehouse(site.settings.data_dir, "staff", "add", "--username", "greet", "--role", "education",
                      "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    uri = re.search(r"otpauth://\S+", added.stdout)
    assert uri
    secret = pyotp.parse_uri(uri.group(0)).secret
    with site.up.kernel.factory() as db:
        account_id = db.scalars(select(StaffAccount.id).where(StaffAccount.username == "greet")).one()
    greet = Staff("greet", secret, account_id)

    async with site.client(CELL) as browser:
        first = await password_step(site, browser, greet)
        assert (first.status, first.location) == (303, "/staff/totp")
        pending = token_of(browser)
        assert (await fetch(site, browser, "/staff/totp")).location == "/staff/enrol"
        assert (await fetch(site, browser, "/staff")).location == "/staff/enrol", "no staff page before the code"
        page = await fetch(site, browser, "/staff/enrol")
        assert page.status == 200
        shown = re.search(r'data-testid="secret">([A-Z2-7 ]+)<', page.body)
        assert shown and shown.group(1).replace(" ", "") == secret
        assert 'src="data:image/svg+xml' in page.body

        wrong = await submit(site, browser, "/staff/enrol", code=wrong_code(greet))
        assert wrong.status == 403 and "That code is not right" in wrong.body
        assert account_row(site, greet).totp_enrolled_at is None

        done = await submit(site, browser, "/staff/enrol", code=greet.code())
        assert done.status == 200 and "Your authenticator app is set up." in done.body
        codes = RECOVERY.findall(done.body)
        assert len(codes) == 10 and len(set(codes)) == 10
        full = token_of(browser)
        assert full != pending, "the session gets a new token at the second factor (no fixation)"
        overview = await fetch(site, browser, "/staff")
        assert overview.status == 200 and "Welcome, greet" in overview.body
        assert (await fetch(site, browser, "/staff/enrol")).location == "/staff"
        account_page = await fetch(site, browser, "/staff/account")
        assert account_page.status == 200 and not any(code in account_page.body for code in codes)
        assert (await submit(site, browser, "/staff/logout")).location == "/staff/login"

    async with with_token(site, CELL, pending) as old:
        assert (await fetch(site, old, "/staff/totp")).location == "/staff/login", "the pending token ended"
    with site.up.kernel.factory() as db:
        stored = set(db.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.account_id == account_id)))
    assert len(stored) == 10 and not stored & set(codes)
    assert stored == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}

    async with site.client(CLASSROOM) as browser:
        assert (await password_step(site, browser, greet)).location == "/staff/totp"
        page = await fetch(site, browser, "/staff/totp")
        assert page.status == 200 and "Enter your code" in page.body
        assert (await fetch(site, browser, "/staff/enrol")).location == "/staff/totp"
        done = await submit(site, browser, "/staff/totp", code=greet.code(1))
        assert (done.status, done.location) == (303, "/staff")
        assert (await fetch(site, browser, "/staff")).status == 200
    tags = [r.tag for r in site.records(actor="greet")]
    assert tags.count("staff:login:password-ok") == 2 and tags.count("staff:login:success") == 2
    assert tags.count("staff:totp:enrolled") == 1 and tags.count("staff:totp:failure") == 1


async def test_wrong_password_and_unknown_or_disabled_accounts_read_the_same(site: Platform) -> None:
    hana = add_staff(site, "hana")
    gone = add_staff(site, "gone")
    with site.up.kernel.factory.begin() as db:
        account = db.get(StaffAccount, gone.account_id)
        assert account is not None
        account.disabled = True
    async with site.client(CELL) as browser:
        replies = [await password_step(site, browser, hana, "not the passphrase"),
                   await password_step(site, browser, Staff("nobody", hana.secret, 0)),
                   await password_step(site, browser, gone)]
        for reply in replies:
            assert reply.status == 403 and "Wrong username or password." in reply.body
            assert 'value="' in reply.body and PASSWORD not in reply.body
        assert not any(c.key == "gh_staff" for c in browser.cookie_jar)
        empty = await submit(site, browser, "/staff/login", username="", password="")
        assert empty.status == 400 and "Enter your username." in empty.body and "Enter your password." in empty.body
    failures = [r for r in site.records(tag="staff:login:failure") if r.actor in ("hana", "nobody", "gone")]
    assert [r.reason for r in failures] == ["password"] * 3


async def test_a_replayed_code_is_refused_noticed_at_next_login_and_audited(site: Platform) -> None:
    ines = add_staff(site, "ines")
    code = ines.code()
    async with site.client(CELL) as owner:
        assert (await log_in(site, owner, ines, code)).location == "/staff"
    async with site.client(CLASSROOM) as thief:
        again = await log_in(site, thief, ines, code)
        assert again.status == 403 and "That code was used already." in again.body
        assert (await fetch(site, thief, "/staff")).location == "/staff/totp", "still at the second step"
    replayed = site.records(tag="staff:totp:replayed", actor="ines")
    assert [(r.actor, r.client_addr) for r in replayed] == [("ines", CLASSROOM)]

    async with site.client(CELL) as owner:
        assert (await log_in(site, owner, ines, ines.code(1))).location == "/staff"
        first = await fetch(site, owner, "/staff")
        assert "had been used already (from 127.0.0.2)" in first.body
        assert "If that was not you, tell an administrator now." in first.body
        assert "had been used already" not in (await fetch(site, owner, "/staff")).body, "shown once"


async def test_of_concurrent_submissions_of_one_fresh_code_exactly_one_wins(
        tmp_path: Path, origin: Origin, database_url: str) -> None:
    """Each account's two pending sessions submit the same code at once; several accounts race together."""
    async with serving(staff_settings(tmp_path, origin, database_url), origin) as site:
        people = [add_staff(site, f"racer{n}") for n in range(4)]
        browsers = [site.client(address) for _ in people for address in (CELL, CLASSROOM)]
        try:
            for n, staff in enumerate(people):
                for browser in browsers[2 * n:2 * n + 2]:
                    assert (await password_step(site, browser, staff)).location == "/staff/totp"
            codes = [staff.code() for staff in people]
            replies = await asyncio.gather(*(submit(site, browser, "/staff/totp", code=codes[n // 2])
                                             for n, browser in enumerate(browsers)))
            for n, staff in enumerate(people):
                pair = replies[2 * n:2 * n + 2]
                assert sorted(r.status for r in pair) == [303, 403], (staff.username, pair)
                loser = next(r for r in pair if r.status == 403)
                assert "That code was used already." in loser.body
                stages = sorted(s.stage for s in sessions_of(site, staff) if s.ended_at is None)
                assert stages == ["full", "password"]
        finally:
            for browser in browsers:
                await browser.close()
        assert len(site.records(tag="staff:login:success")) == 4
        assert len(site.records(tag="staff:totp:replayed")) == 4


async def test_accepting_a_step_is_one_atomic_update(database_url: str) -> None:
    """Threads that pass the pure check together still cannot both record the step: one UPDATE decides."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        factory = session_factory(engine)
        with factory.begin() as db:
            account_id = accounts.add_staff(db, username="race", roles=["security"], password=PASSWORD,
                                            now=utcnow()).id

        def submit_step(step: int, barrier: threading.Barrier) -> bool:
            barrier.wait()
            return accounts.accept_step(factory, account_id, step, utcnow())

        for step in range(100, 110):
            barrier = threading.Barrier(4)
            wins = await asyncio.gather(*(asyncio.to_thread(submit_step, step, barrier) for _ in range(4)))
            assert sorted(wins) == [False, False, False, True], step
        assert not accounts.accept_step(factory, account_id, 105, utcnow()), "an earlier step never passes"
        with factory() as db:
            account = db.get(StaffAccount, account_id)
            assert account is not None and account.totp_last_step == 109 and account.totp_enrolled_at is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize("steps", [3, -4, 9, -9])
async def test_a_code_from_a_clock_that_is_off_says_to_check_the_clock(site: Platform, steps: int) -> None:
    jo = add_staff(site, f"jo{steps + 10}")
    async with site.client(CELL) as browser:
        off = await log_in(site, browser, jo, jo.code(steps))
        assert off.status == 403 and "Check your device's clock" in off.body
        far = await submit(site, browser, "/staff/totp", code=jo.code(12 if steps > 0 else -12))
        assert far.status == 403 and "That code is not right." in far.body and "clock" not in far.body
        near = await submit(site, browser, "/staff/totp", code=jo.code(1))
        assert (near.status, near.location) == (303, "/staff"), "the next step is accepted too"
    failures = site.records(tag="staff:totp:failure", actor=jo.username)
    assert re.fullmatch(r"clock [+-]\d+ steps", failures[0].reason)
    assert 3 <= abs(int(failures[0].reason.split()[1])) <= 10 and failures[1].reason == "invalid"


async def test_a_recovery_code_works_once_and_the_count_goes_down(site: Platform) -> None:
    kim = add_staff(site, "kim", enrolled=False)
    async with site.client(CELL) as browser:
        codes = await enrol(site, browser, kim)
    assert len(codes) == 10

    async with site.client(CLASSROOM) as browser:
        used = await log_in(site, browser, kim, codes[0])
        assert (used.status, used.location) == (303, "/staff")
        overview = (await fetch(site, browser, "/staff")).body
        assert "a recovery code was used to log in to your account (from 127.0.0.2)" in overview
        assert "recovery codes left" not in overview, "no warning while there are enough"
    async with site.client(CLASSROOM) as browser:
        again = await log_in(site, browser, kim, codes[0])
        assert again.status == 403 and "That recovery code is not valid or was used already." in again.body
        typed = await submit(site, browser, "/staff/totp", code=" ".join(codes[1].upper().split("-")))
        assert typed.location == "/staff", "case, dashes and spaces do not matter"
    assert accounts.recovery_codes_left(site.up.kernel.factory, kim.account_id) == 8

    for code in codes[2:8]:
        async with site.client(CELL) as browser:
            assert (await log_in(site, browser, kim, code)).location == "/staff"
    async with site.client(CELL) as browser:
        assert (await log_in(site, browser, kim, codes[8])).location == "/staff"
        assert "You have 1 recovery code left." in (await fetch(site, browser, "/staff")).body
        wrong = await submit(site, browser, "/staff/account/recovery-codes", password="not my passphrase")
        assert wrong.status == 403 and "That is not your password." in wrong.body
        fresh = await submit(site, browser, "/staff/account/recovery-codes", password=PASSWORD)
        assert fresh.status == 200
        new = RECOVERY.findall(fresh.body)
    assert len(new) == 10 and not set(new) & set(codes)
    async with site.client(CELL) as browser:
        old = await log_in(site, browser, kim, codes[9])
        assert old.status == 403, "new codes replace every earlier one"
        assert (await submit(site, browser, "/staff/totp", code=new[0])).location == "/staff"
    tags = [r.tag for r in site.records(actor="kim")]
    assert tags.count("staff:recovery-code:used") == 10 and tags.count("staff:recovery-code:regenerated") == 1


async def test_staff_cookie_and_pages_are_not_kept_where_others_could_use_them(site: Platform) -> None:
    lotte = add_staff(site, "lotte")
    async with site.client(CELL) as browser:
        first = await password_step(site, browser, lotte)
        assert first.status == 303
        async with browser.post(site.portal + "/staff/totp", allow_redirects=False,
                                data={"csrf_token": await csrf(site, browser), "code": lotte.code()}) as resp:
            cookie = resp.cookies["gh_staff"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
            assert not cookie["max-age"] and not cookie["expires"], "gone when the browser closes"
        async with browser.get(site.portal + "/staff/account") as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_a_double_click_on_the_code_is_not_a_replay(tmp_path: Path, origin: Origin, database_url: str) -> None:
    """One login sends its code twice at once: it logs in, and no replay is recorded or shown."""
    async with serving(staff_settings(tmp_path, origin, database_url), origin) as site:
        staff = add_staff(site, "clicker")
        async with site.client(CELL) as browser:
            assert (await password_step(site, browser, staff)).location == "/staff/totp"
            code = staff.code()
            replies = await asyncio.gather(*(submit(site, browser, "/staff/totp", code=code) for _ in range(2)))
            # Whichever comes second is sent on (to /staff, or to the login page if the first had already
            # ended this pending login); neither is told its code was used already.
            assert (303, "/staff") in [(r.status, r.location) for r in replies], replies
            assert all(r.status in (302, 303) and "used already" not in r.body for r in replies), replies
        assert site.records(tag="staff:totp:replayed") == []
        assert len(site.records(tag="staff:login:success")) == 1
        with site.up.kernel.factory() as db:
            assert db.scalars(select(StaffNotice).where(StaffNotice.account_id == staff.account_id)).all() == []


async def test_nothing_of_the_account_shows_before_the_second_factor(site: Platform) -> None:
    """At the code step the person has only shown a password: the header names no one and offers no logout,
    at the code and at the enrolment step, until the second factor has passed."""
    zeb, yola = add_staff(site, "zebedee"), add_staff(site, "yolanda", enrolled=False)
    with site.up.kernel.factory.begin() as db:
        for staff, name in ((zeb, "Zebedee Quist"), (yola, "Yolanda Rivers")):
            account = db.get(StaffAccount, staff.account_id)
            assert account is not None
            account.display_name = name

    def shows_nothing(page: str, staff: Staff, name: str) -> None:
        for text in (name, staff.username, "/staff/logout", "Log out"):
            assert text not in page, f"{text!r} is on the page before the second factor"

    async with site.client(CELL) as browser:
        assert (await password_step(site, browser, zeb)).location == "/staff/totp"
        page = await fetch(site, browser, "/staff/totp")
        assert page.status == 200 and "Enter your code" in page.body
        shows_nothing(page.body, zeb, "Zebedee Quist")
        wrong = await submit(site, browser, "/staff/totp", code=wrong_code(zeb))
        assert wrong.status == 403
        shows_nothing(wrong.body, zeb, "Zebedee Quist")
        assert (await submit(site, browser, "/staff/totp", code=zeb.code())).location == "/staff"
        overview = await fetch(site, browser, "/staff")
        assert "Zebedee Quist" in overview.body and 'action="/staff/logout"' in overview.body
    async with site.client(CELL) as browser:
        assert (await password_step(site, browser, yola)).location == "/staff/totp"
        enrol_page = await fetch(site, browser, "/staff/enrol")
        assert enrol_page.status == 200 and 'data-testid="secret"' in enrol_page.body
        shows_nothing(enrol_page.body, yola, "Yolanda Rivers")
        enrolled = await submit(site, browser, "/staff/enrol", code=yola.code())
        assert enrolled.status == 200 and len(RECOVERY.findall(enrolled.body)) == 10
        assert "Yolanda Rivers" in enrolled.body and 'action="/staff/logout"' in enrolled.body, \
            "the page that shows the recovery codes comes after both factors: its frame is the full session's"
