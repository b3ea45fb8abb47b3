"""The portal over HTTP: login form errors keep input, CSRF is enforced, headers are strict, actions audited."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers import CELL, INMATE, PIN, STRANGER, Platform, csrf_from


async def post_login(platform: Platform, client: aiohttp.ClientSession, **fields: str) -> tuple[int, str]:
    async with client.get(f"{platform.portal}/login") as page:
        token = csrf_from(await page.text())
    async with client.post(f"{platform.portal}/login", data={"csrf_token": token, **fields},
                           allow_redirects=False) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize(("fields", "message"), [
    ({"inmate_number": "", "pin": "1234"}, "Enter your inmate number."),
    ({"inmate_number": INMATE, "pin": ""}, "Enter your PIN."),
    ({"inmate_number": INMATE, "pin": "12ab"}, "A PIN is 4 to 12 digits."),
])
async def test_form_errors_are_shown_by_the_field(platform: Platform, fields: dict[str, str], message: str) -> None:
    async with platform.client(CELL) as client:
        status, body = await post_login(platform, client, **fields)
    assert status == 400 and message in body
    assert 'aria-invalid="true"' in body
    if fields["inmate_number"]:
        assert f'value="{fields["inmate_number"]}"' in body


async def test_wrong_pins_count_down_then_lock(platform: Platform) -> None:
    async with platform.client(CELL) as client:
        for left in (4, 3, 2, 1):
            status, body = await post_login(platform, client, inmate_number=INMATE, pin="0000")
            assert status == 403 and (f"{left} attempts left" if left > 1 else "1 attempt left") in body
        status, body = await post_login(platform, client, inmate_number=INMATE, pin="0000")
        assert status == 403 and "locked until" in body
        status, body = await post_login(platform, client, inmate_number=INMATE, pin=PIN)
        assert status == 403 and "locked until" in body
    tags = [r.tag for r in platform.records(actor=INMATE, plane="portal")]
    assert tags.count("portal:login:failure") == 4 and tags.count("portal:login:locked") == 2


async def test_unregistered_computer_cannot_log_in(platform: Platform) -> None:
    async with platform.client(STRANGER) as client:
        status, body = await post_login(platform, client, inmate_number=INMATE, pin=PIN)
    assert status == 403 and "not registered as a terminal" in body


async def test_post_without_csrf_token_is_refused(platform: Platform) -> None:
    async with platform.client(CELL) as client:
        async with client.post(f"{platform.portal}/login", data={"inmate_number": INMATE, "pin": PIN}) as resp:
            assert resp.status == 403
            assert "reload the page" in await resp.text()
        async with client.get(f"{platform.portal}/login") as page:
            token = csrf_from(await page.text())
        async with client.post(f"{platform.portal}/login",
                               data={"inmate_number": INMATE, "pin": PIN, "csrf_token": token + "x"}) as resp:
            assert resp.status == 403
    assert platform.records(tag="portal:login:success") == []


async def test_a_nul_in_a_field_or_the_address_is_a_clear_400(platform: Platform) -> None:
    """No page takes a NUL, and PostgreSQL refuses one in text: refused before any handler, not a 500 after."""
    async with platform.client(CELL) as client:
        status, body = await post_login(platform, client, inmate_number="A1\x00", pin=PIN)
        assert status == 400 and "not text" in body
        async with client.get(f"{platform.portal}/login?next=%00") as resp:
            assert resp.status == 400 and "not text" in await resp.text()
        status, _ = await post_login(platform, client, inmate_number=INMATE, pin=PIN)
        assert status == 303, "the same form without it goes through"


async def test_security_headers_and_no_inline_script(platform: Platform) -> None:
    async with platform.client(CELL) as client, client.get(f"{platform.portal}/login") as resp:
        body = await resp.text()
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        cookie = resp.cookies["gh_csrf"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert "<script" not in body and "style=" not in body


async def test_home_needs_the_session_cookie_of_this_terminal(platform: Platform) -> None:
    async with platform.client(CELL) as inmate, platform.client(CELL) as other_browser:
        await platform.login(inmate)
        async with other_browser.get(f"{platform.portal}/home", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/login"
        async with inmate.get(f"{platform.portal}/home") as resp:
            assert "Welcome, Jan Peeters" in await resp.text()
    served = platform.records(tag="portal:request:served", path="/home")
    assert {r.status for r in served} == {200, 302}
    assert any(r.actor == INMATE for r in served)
    assert {(r.status, r.reason) for r in served} == {(200, "role=inmate route=/home"),
                                                      (302, "role=anonymous route=/home")}


async def test_the_form_token_changes_at_login_so_one_seen_before_is_worthless_after(platform: Platform) -> None:
    async with platform.client(CELL) as browser:
        async with browser.get(f"{platform.portal}/login") as page:
            before = csrf_from(await page.text())
        await platform.login(browser)
        async with browser.get(f"{platform.portal}/home") as page:
            after = csrf_from(await page.text())
        assert after != before
        async with browser.post(f"{platform.portal}/logout", data={"csrf_token": before},
                                allow_redirects=False) as resp:
            assert resp.status == 403
        async with browser.post(f"{platform.portal}/logout", data={"csrf_token": after},
                                allow_redirects=False) as resp:
            assert resp.status == 303


@pytest.mark.parametrize(("path", "method", "status", "title"), [
    ("/no/such/page", "GET", 404, "Deze pagina bestaat niet"),
    ("/login", "POST", 403, "U kunt deze pagina niet openen"),  # a form without its token
    ("/logout", "GET", 405, "Deze pagina kan niet zo gebruikt worden"),
])
async def test_errors_are_pages_in_the_readers_language(platform: Platform, path: str, method: str, status: int,
                                                        title: str) -> None:
    async with platform.client(STRANGER) as browser:
        async with browser.request(method, f"{platform.portal}{path}", headers={"Accept-Language": "nl-BE,nl;q=0.9"},
                                   allow_redirects=False) as resp:
            body = await resp.text()
            assert resp.status == status and resp.content_type == "text/html"
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert '<html lang="nl">' in body and f"<h1>{title}</h1>" in body
    assert 'href="/"' in body
