"""Login rate limits over HTTP: per account, per address, across the portal; checked before any hash; shared
through Redis by every node; refused when the counters cannot be read."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from redis.asyncio import Redis
from sqlalchemy import update

from gatehouse.db.models import StaffAccount
from tests.conftest import REDIS_ENV, Origin
from tests.helpers import CELL, CLASSROOM, INMATE, PIN, Platform
from tests.staffing import (
    PASSWORD,
    Staff,
    account_row,
    add_staff,
    log_in,
    password_step,
    serving,
    sessions_of,
    staff_settings,
    submit,
    wrong_code,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
WEAK = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""Parameters below the portal's own: a password checked with them is hashed again, which shows."""


def retry_minutes(body: str, zone: ZoneInfo) -> float:
    """Minutes from now to the "Try again at 15:45" the page names (the facility's zone, English as written in
    Belgium: a 24-hour clock)."""
    match = re.search(r"Try again at (\d{2}):(\d{2})\b", body)
    assert match, f"no time to try again in: {body[:2000]}"
    hour, minute = int(match.group(1)), int(match.group(2))
    now = datetime.now(UTC).astimezone(zone)
    return ((hour * 60 + minute) - (now.hour * 60 + now.minute + now.second / 60)) % (24 * 60)


async def test_failures_for_one_account_lock_it_at_that_computer_only(tmp_path: Path, origin: Origin) -> None:
    """The hard limit is per account and address: the computer that guessed waits for the window's end; the
    holder at another computer waits only the account's short pace, then logs in; the guesser stays locked."""
    settings = staff_settings(tmp_path, origin, login__staff_failures_per_account=3, login__window_minutes=20,
                              login__staff_wait_seconds=1)
    async with serving(settings, origin) as site:
        lena, other = add_staff(site, "lena"), add_staff(site, "other")
        zone = ZoneInfo(settings["facility.timezone"])
        async with site.client(CELL) as browser:
            for _ in range(3):
                assert (await password_step(site, browser, lena, "a wrong passphrase!")).status == 403
            locked = await password_step(site, browser, lena)
            assert locked.status == 429
            assert "Too many failed attempts for this account. Try again at" in locked.body
            assert 19 <= retry_minutes(locked.body, zone) <= 21
            assert not any(c.key == "gh_staff" for c in browser.cookie_jar)
            assert (await password_step(site, browser, other)).location == "/staff/totp", "others log in"
        await asyncio.sleep(1.1)
        async with site.client(CLASSROOM) as browser:
            assert (await log_in(site, browser, lena)).location == "/staff", "the holder, elsewhere, gets in"
        async with site.client(CELL) as browser:
            assert (await password_step(site, browser, lena)).status == 429, "the guessing computer stays locked"
        throttled = site.records(tag="staff:login:throttled")
        assert [(r.actor, r.reason, r.client_addr) for r in throttled] == [("lena", "account-address", CELL)] * 2
        assert len(site.records(tag="staff:login:failure", actor="lena")) == 3


async def test_wrong_codes_count_against_the_account_and_a_login_clears_them(tmp_path: Path,
                                                                           origin: Origin) -> None:
    settings = staff_settings(tmp_path, origin, login__staff_failures_per_account=3, login__staff_wait_seconds=60)
    async with serving(settings, origin) as site:
        mia = add_staff(site, "mia")
        async with site.client(CELL) as browser:
            assert (await password_step(site, browser, mia)).location == "/staff/totp"
            for _ in range(2):
                assert (await submit(site, browser, "/staff/totp", code=wrong_code(mia))).status == 403
            assert (await submit(site, browser, "/staff/totp", code=mia.code())).location == "/staff"
        async with site.client(CLASSROOM) as browser:
            assert (await password_step(site, browser, mia)).location == "/staff/totp"
            for _ in range(3):
                assert (await submit(site, browser, "/staff/totp", code=wrong_code(mia))).status == 403, \
                    "the earlier failures were forgotten at the login"
            locked = await submit(site, browser, "/staff/totp", code=mia.code(1))
            assert locked.status == 429 and "Too many failed attempts for this account. Try again at" in locked.body
        async with site.client("127.0.0.5") as browser:
            waiting = await password_step(site, browser, mia)
            assert waiting.status == 429, "elsewhere the account waits: three failures from anywhere start its pace"
            assert re.search(r"Wait (59|60) seconds, then try again", waiting.body), waiting.body
        async with site.client(CELL) as browser:
            assert (await password_step(site, browser, mia)).location == "/staff/totp", \
                "where the holder logged in with both factors, the account's pace does not apply"
        assert account_row(site, mia).totp_last_step is not None
        assert len(site.records(tag="staff:login:success", actor="mia")) == 1


async def test_attempts_from_one_address_are_limited_whoever_they_are_for(tmp_path: Path, origin: Origin) -> None:
    async with serving(staff_settings(tmp_path, origin, login__attempts_per_address=4), origin) as site:
        nora = add_staff(site, "nora")
        async with site.client(CELL) as browser:
            for n in range(4):
                assert (await password_step(site, browser, Staff(f"guess{n}", "", 0))).status == 403
            refused = await password_step(site, browser, nora)
            assert refused.status == 429 and "Too many login attempts from this computer." in refused.body
            inmate = await submit(site, browser, "/login", inmate_number=INMATE, pin=PIN)
            assert inmate.status == 429 and "Too many login attempts from this computer." in inmate.body
        async with site.client(CLASSROOM) as browser:
            assert (await password_step(site, browser, nora)).location == "/staff/totp"
        assert {r.reason for r in site.records(tag="staff:login:throttled")} == {"address"}


async def test_attempts_across_the_portal_are_limited_per_minute(tmp_path: Path, origin: Origin) -> None:
    settings = staff_settings(tmp_path, origin, login__attempts_per_minute=5)
    async with serving(settings, origin) as site:
        olga = add_staff(site, "olga")
        for n in range(1, 6):
            async with site.client(f"127.0.0.{10 + n}") as browser:
                assert (await password_step(site, browser, olga, "a wrong passphrase!")).status == 403
        async with site.client("127.0.0.20") as browser:
            busy = await password_step(site, browser, add_staff(site, "pim"))
        assert busy.status == 429 and "The portal is receiving too many login attempts." in busy.body
        assert retry_minutes(busy.body, ZoneInfo(settings["facility.timezone"])) <= 2


def weaken(site: Platform, staff: Staff) -> str:
    hashed = WEAK.hash(staff.password)
    with site.up.kernel.factory.begin() as db:
        db.execute(update(StaffAccount).where(StaffAccount.id == staff.account_id).values(password_hash=hashed))
    return hashed


async def test_a_throttled_attempt_checks_no_password(tmp_path: Path, origin: Origin) -> None:
    """A right password hashed with old parameters is hashed again when checked: a throttled one is not."""
    settings = staff_settings(tmp_path, origin, login__staff_failures_per_account=2, login__staff_wait_seconds=60)
    async with serving(settings, origin) as site:
        quinn, rosa = add_staff(site, "quinn"), add_staff(site, "rosa")
        weak_quinn, weak_rosa = weaken(site, quinn), weaken(site, rosa)
        async with site.client(CELL) as browser:
            assert (await password_step(site, browser, rosa)).location == "/staff/totp"
            assert account_row(site, rosa).password_hash != weak_rosa, "a checked password shows"
            for _ in range(2):
                assert (await password_step(site, browser, quinn, "a wrong passphrase!")).status == 403
            refused = await password_step(site, browser, quinn)
            assert refused.status == 429
        async with site.client(CLASSROOM) as browser:
            waiting = await password_step(site, browser, quinn)
            assert waiting.status == 429 and "Wait" in waiting.body, "at the account's pace nothing is checked"
        assert account_row(site, quinn).password_hash == weak_quinn
        assert sessions_of(site, quinn) == []


async def test_wrong_current_passwords_on_the_account_page_are_limited_too(tmp_path: Path,
                                                                         origin: Origin) -> None:
    """A stolen session must not become a way to guess the password without limit."""
    async with serving(staff_settings(tmp_path, origin, login__staff_failures_per_account=3), origin) as site:
        sam = add_staff(site, "sam")
        async with site.client(CELL) as browser:
            assert (await password_step(site, browser, sam)).location == "/staff/totp"
            assert (await submit(site, browser, "/staff/totp", code=sam.code())).location == "/staff"
            weak = weaken(site, sam)
            for n in range(3):
                guess = f"guess number {n} here"
                wrong = await submit(site, browser, "/staff/account/password", current=guess,
                                     new="a new passphrase now", confirm="a new passphrase now")
                assert wrong.status == 403 and "That is not your current password." in wrong.body
            limited = await submit(site, browser, "/staff/account/password", current=PASSWORD,
                                   new="a new passphrase now", confirm="a new passphrase now")
            assert limited.status == 429 and "Too many failed attempts for this account." in limited.body
            codes = await submit(site, browser, "/staff/account/recovery-codes", password=PASSWORD)
            assert codes.status == 429 and "<code>" not in codes.body
        assert account_row(site, sam).password_hash == weak, "neither was checked"
        reasons = [r.reason for r in site.records(tag="staff:login:throttled", actor="sam")]
        assert reasons == ["account-address", "account-address"]


async def test_logins_are_refused_when_redis_does_not_answer(tmp_path: Path, origin: Origin) -> None:
    async with serving(staff_settings(tmp_path, origin, redis__url="redis://127.0.0.1:1/0"), origin) as site:
        tess = add_staff(site, "tess")
        async with site.client(CELL) as browser:
            staff = await password_step(site, browser, tess)
            assert staff.status == 503 and "Logging in is not possible right now." in staff.body
            inmate = await submit(site, browser, "/login", inmate_number=INMATE, pin=PIN)
            assert inmate.status == 503 and "Logging in is not possible right now." in inmate.body
        assert sessions_of(site, tess) == []
        assert site.records(tag="portal:login:success") == []


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set")
    return url


async def test_two_nodes_count_failures_together_in_redis(tmp_path: Path, origin: Origin, redis_url: str) -> None:
    """Failures at one node lock the account at the other: an attacker gains nothing by spreading attempts."""
    settings = staff_settings(tmp_path, origin, redis__url=redis_url, login__staff_failures_per_account=3)
    username, address = f"ulla{secrets.token_hex(4)}", f"127.0.0.{secrets.choice(range(100, 250))}"
    keys = [f"gh:rl:login-account-address:staff:{username}|{address}", f"gh:rl:login-account:staff:{username}",
            f"gh:rl:login-address:{address}"]
    redis = Redis.from_url(redis_url)
    await redis.delete(*keys)
    try:
        async with serving(settings, origin) as one, \
                serving(settings.replace(audit__node="node-b"), origin) as two:
            ulla = add_staff(one, username)
            async with one.client(address) as browser:
                for _ in range(2):
                    assert (await password_step(one, browser, ulla, "a wrong passphrase!")).status == 403
            async with two.client(address) as browser:
                assert (await password_step(two, browser, ulla, "a wrong passphrase!")).status == 403
                assert (await password_step(two, browser, ulla)).status == 429
            async with one.client(address) as browser:
                assert (await password_step(one, browser, ulla)).status == 429
            assert int(await redis.hget(keys[1], "n") or 0) == 3, "three failures for the account, from both nodes"
            assert 0 < await redis.pttl(keys[0]) <= timedelta(minutes=15).total_seconds() * 1000
    finally:
        await redis.delete(*keys)
        await redis.aclose()
