"""Block pages say the same thing in every language: each reason in a sentence of its own, naming the rule, in the
live session's language (or the browser's, then the facility's, with nobody logged in); and the way back to the
portal keeps the inmate logged in."""

from __future__ import annotations

import asyncio
import html
import re
import string
from collections.abc import AsyncIterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gatehouse.cli.serve import running
from gatehouse.settings import LANGUAGES
from gateway.blockpage import (
    ASKABLE,
    KINDS,
    REASONS,
    RULED,
    TEXT,
    BlockPage,
    language_for,
    negotiate,
    page_for,
    regional,
)
from policies.decision import Decision, Reason, ReasonCode, Verdict
from policies.rules import parse_policy
from policies.snapshot import Snapshot
from tests.conftest import Origin, platform_settings
from tests.helpers import (
    CELL,
    INMATE,
    NEEDS_CHROMIUM,
    OTHER_INMATE,
    OTHER_PIN,
    PIN,
    STRANGER,
    Platform,
    connect_tunnel,
    csrf_from,
    launched_chromium,
)

TRANSLATED = [language for language in LANGUAGES if language != "en"]
DESCRIBED = """\
rules:
  - id: no-games
    description: zzz beschrijving van de regel
    deny: [other.test]
"""


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _fragments(template: str) -> list[str]:
    """The literal text of a template between its placeholders, as it would show on a page."""
    parts = [literal.strip(" .,:;“”‘’«»„") for literal, _, _, _ in string.Formatter().parse(template)]
    return [part for part in parts if len(part) >= 4]


def _visible(page: str) -> str:
    """What a reader sees of a block page, without the small line for staff (codes and rule ids)."""
    page = re.sub(r'<p class="staff" data-code>.*?</p>', "", page, flags=re.S)
    body = page.split("<body>", 1)[1]
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_every_language_has_every_text_with_the_same_placeholders() -> None:
    for language in TRANSLATED:
        assert TEXT[language].keys() == TEXT["en"].keys(), language
        for key, english in TEXT["en"].items():
            assert _fields(TEXT[language][key]) == _fields(english), (language, key)


def test_every_reason_code_has_a_sentence_in_every_language() -> None:
    for language in LANGUAGES:
        assert set(REASONS[language]) == set(ReasonCode), language
        assert set(RULED[language]) == set(RULED["en"]), language
        assert all(_fields(sentence) == set() for sentence in REASONS[language].values()), language
        assert all(_fields(sentence) == {"rule"} for sentence in RULED[language].values()), language
    assert all(len({REASONS[language][code] for language in LANGUAGES}) == len(LANGUAGES) for code in ReasonCode)


def test_dutch_pages_address_the_reader_as_u_like_the_portal() -> None:
    dutch = [*TEXT["nl"].values(), *REASONS["nl"].values(), *RULED["nl"].values()]
    informal = [text for text in dutch if re.search(r"\b(je|jij|jou|jouw)\b", text, re.I)]
    assert not informal, informal
    assert not any("Vraag ze" in text for text in dutch), "a site is 'de site': not 'ze'"


def _decision(code: ReasonCode, rule: str, opens: datetime | None) -> Decision:
    return Decision(Verdict.DENY, (Reason(code, "no rule allows games.demo.test", rule),), opens_at=opens)


def _policy() -> Snapshot:
    result = parse_policy(DESCRIBED, "described.yaml")
    assert result.errors == []
    return Snapshot.build(result.rules)


@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("code", list(ReasonCode))
@pytest.mark.parametrize("rule", ["", "no-games"])
def test_no_english_reaches_a_translated_page(language: str, code: ReasonCode, rule: str) -> None:
    """Every page kind (blocked, login, closed, used up, paused) in every language for every reason, with and
    without a described rule, a time it lifts and a redirect: no English text of the pages, nor the decision's
    English detail, shows."""
    english = [(TEXT, key, text) for key, text in TEXT["en"].items()]
    english += [(REASONS, c, text) for c, text in REASONS["en"].items()]
    english += [(RULED, c, text) for c, text in RULED["en"].items()]
    for opens in (None, datetime(2026, 11, 30, 8, 30)):
        for via in ("", "allowed.test"):
            decision = _decision(code, rule, opens)
            page = page_for(decision, "https://games.demo.test/", "http://portal", language, _policy(), via=via)
            rendered = page.render().decode()
            shown = _visible(rendered)
            assert f'<html lang="{language}">' in rendered
            assert "no rule allows" not in rendered and "games.demo.test is" not in rendered
            for table, key, text in english:
                ours = table[language][key]  # type: ignore[index]
                for fragment in _fragments(text):
                    if fragment not in _fragments(ours):
                        assert fragment not in shown, (language, code, fragment, shown)
            staff = re.search(r'<p class="staff" data-code>(.*?)</p>', rendered)
            assert staff is not None and code.value in staff.group(1) and (rule in staff.group(1))


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_reason_names_the_rules_description_and_keeps_the_code_for_staff(language: str) -> None:
    page = page_for(_decision(ReasonCode.RULE_DENY, "no-games", None), "https://other.test/", "http://portal",
                    language, _policy()).render().decode()
    sentence = RULED[language][ReasonCode.RULE_DENY].format(rule="zzz beschrijving van de regel")
    assert html.escape(sentence, quote=False) in page
    staff = TEXT[language]["code"].format(code="rule-deny") + " · " + TEXT[language]["rule"].format(rule="no-games")
    assert f'<p class="staff" data-code>{staff}</p>' in page
    assert TEXT[language]["ask"].replace("'", "&#39;") in page
    plain = page_for(_decision(ReasonCode.RULE_DENY, "no-description", None), "https://other.test/",
                     "http://portal", language, _policy()).render().decode()
    assert html.escape(REASONS[language][ReasonCode.RULE_DENY], quote=False).replace("'", "&#39;") in plain


class _Links(HTMLParser):
    """The links of a page as a browser reads them: (attributes, text) of each <a>."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append((dict(attrs), ""))
            self._open = True

    def handle_endtag(self, tag: str) -> None:
        self._open = self._open and tag != "a"

    def handle_data(self, data: str) -> None:
        if self._open:
            attrs, text = self.links[-1]
            self.links[-1] = (attrs, text + data)


ODD_URL = 'https://jobs.example.test/search?q="><script>alert(1)</script>&where=Gent Zuid#top\'x'


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("portal", ["http://portal.test:8080", "http://portal.test:8080/"])
def test_an_askable_refusal_links_to_the_request_form_with_the_address_encoded(language: str, portal: str) -> None:
    for code in ASKABLE:
        rendered = BlockPage(ODD_URL, code, portal, language).render().decode()
        parser = _Links()
        parser.feed(rendered)
        asks = [(attrs, text) for attrs, text in parser.links if "data-ask" in attrs]
        assert len(asks) == 1, (code, rendered)
        attrs, text = asks[0]
        assert text == TEXT[language]["ask_link"]
        href = str(attrs["href"])
        assert href.startswith("http://portal.test:8080/ask?url=") and "<" not in href and '"' not in href
        query = parse_qs(urlsplit(href).query)
        assert query == {"url": [ODD_URL]}, query  # one parameter, the whole address, fragment and all
        assert "<script>" not in rendered and set(attrs) == {"class", "href", "data-ask"}
    for code in set(ReasonCode) - ASKABLE:
        assert "data-ask" not in BlockPage(ODD_URL, code, portal, language).render().decode(), code


def test_page_kinds_follow_the_reason() -> None:
    kinds = {code: BlockPage("u", code, "p").kind for code in ReasonCode}
    assert kinds[ReasonCode.NO_SESSION] == "login" and kinds[ReasonCode.TERMINAL_CLOSED] == "closed"
    assert kinds[ReasonCode.QUOTA_EXHAUSTED] == "used" and kinds[ReasonCode.LOCKDOWN] == "paused"
    assert kinds[ReasonCode.NO_MATCH] == "blocked"
    assert set(KINDS) & ASKABLE == set(), "a site request cannot lift a paused terminal"


@pytest.mark.parametrize(("language", "words"), [
    ("en", "This site can be used again from Monday, 30 November 2026, 08:30."),
    ("nl", "U kunt deze site weer gebruiken vanaf maandag 30 november 2026 om 08:30."),
    ("fr", "Ce site sera de nouveau accessible à partir du lundi 30 novembre 2026 à 08:30."),
    ("de", "Diese Seite kann ab Montag, 30. November 2026 um 08:30 wieder benutzt werden."),
])
def test_when_a_window_opens_reads_as_a_sentence(language: str, words: str) -> None:
    page = BlockPage("https://learn.example.org/", ReasonCode.OUTSIDE_WINDOW, "http://portal", language,
                     opens_at=datetime(2026, 11, 30, 8, 30), zone=ZoneInfo("Europe/Brussels")).render().decode()
    assert words in page, page


@pytest.mark.parametrize("zone", [None, "Europe/Brussels", "Europe/Amsterdam", "Europe/Berlin", "America/New_York",
                                  "Asia/Tokyo"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_times_are_written_as_the_portal_writes_them(language: str, zone: str | None) -> None:
    from portal import i18n

    where = ZoneInfo(zone) if zone else None
    assert regional(language, where) == i18n.regional(language, where)


@pytest.mark.parametrize(("live", "header", "handed", "expected"), [
    ("nl", "fr", "", "nl"),  # someone is logged in: their language, whatever the browser says
    ("", "fr-BE,fr;q=0.9", "nl", "fr"),  # nobody: the browser's
    ("", "es, it", "", "de"),  # nobody, and no language we have: the facility's
    (None, "fr", "nl", "nl"),  # the session could not be looked up: the one the connection was handed over with
    (None, "fr", "", "fr"),
    ("xx", "", "", "de"),
])
def test_the_pages_language(live: str | None, header: str, handed: str, expected: str) -> None:
    assert language_for(live, header, "de", handed) == expected


@pytest.mark.parametrize(("header", "expected"), [
    ("nl-BE,nl;q=0.9,fr;q=0.8,en;q=0.5", "nl"), ("en;q=0.4, fr;q=0.8, nl;q=0.6", "fr"), ("fr;q=0, nl;q=0.2", "nl"),
    ("fr;q=zero, de;q=0.3", "de"), ("es, it", "en"), ("", "en")])
def test_negotiate_as_the_portal_does(header: str, expected: str) -> None:
    from portal import i18n

    assert negotiate(header, "en") == expected == i18n.negotiate(header, "en")


# Through the running gateway.

@pytest.fixture(params=["front", "mitmproxy"])
async def facility(request: pytest.FixtureRequest, tmp_path: Path, origin: Origin) -> AsyncIterator[Platform]:
    """A platform whose facility speaks German, with a described rule that denies other.test."""
    settings = platform_settings(tmp_path / "data", origin)
    (settings.policy_dir / "described.yaml").write_text(DESCRIBED, encoding="utf-8")
    settings = settings.replace(facility__language="de", proxy__engine=request.param)
    async with running(settings) as up:
        yield Platform(up, origin, settings)


async def _plain(platform: Platform, url: str, address: str = CELL, language: str | None = None) -> tuple[int, str]:
    headers = {"Accept-Language": language} if language else {}
    async with platform.client(address) as client, client.get(url, proxy=f"http://{platform.proxy}",
                                                                headers=headers) as resp:
        return resp.status, await resp.text()


async def _curl(platform: Platform, url: str, *args: str) -> tuple[str, str]:
    """curl through the gateway from the cell terminal: the body and the HTTP version it spoke."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-S", "--max-time", "15", "--proxy", f"http://{platform.proxy}", "--interface", CELL,
        "--cacert", platform.ca_file, "-o", "-", "-w", "\n%{http_version}", *args, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    body, _, version = out.decode().rpartition("\n")
    assert proc.returncode == 0, err
    return body, version


async def test_with_nobody_logged_in_the_page_speaks_the_browsers_language_then_the_facilitys(
        facility: Platform, curl_bin: str) -> None:
    status, body = await _plain(facility, "http://allowed.test/", language="nl-BE,nl;q=0.9,en;q=0.5")
    assert status == 403 and "<h1>Meld u eerst aan</h1>" in body and '<html lang="nl">' in body
    status, body = await _plain(facility, "http://allowed.test/")
    assert status == 403 and "<h1>Bitte melden Sie sich zuerst an</h1>" in body
    body, version = await _curl(facility, "https://allowed.test/", "--http2", "-H", "Accept-Language: fr")
    assert "<h1>Veuillez d&#39;abord vous connecter</h1>" in body
    if facility.settings["proxy.engine"] == "front":
        assert version == "2"
    # The front's own refusal: an address that is no terminal.
    status, body = await _plain(facility, "http://allowed.test/", address=STRANGER, language="fr")
    assert status == 403 and "Cet ordinateur n&#39;est pas enregistré comme terminal" in body
    assert "is not a registered terminal" not in body


async def test_the_reason_names_the_rule_in_the_inmates_language_and_the_audit_keeps_the_detail(
        facility: Platform) -> None:
    async with facility.client(CELL) as browser:
        await facility.login(browser, OTHER_INMATE, OTHER_PIN)  # Marie Dubois reads French
        status, body = await _plain(facility, "http://other.test/page", language="en")
    assert status == 403 and "<h1>Cette page est bloquée</h1>" in body
    assert "Ce site, ou cette partie du site, est fermé par la règle « zzz beschrijving van de regel »." in body
    assert "code : rule-deny · règle no-games" in body
    assert '/ask?url=http%3A%2F%2Fother.test%2Fpage" data-ask>Demander ce site</a>' in body
    assert "is denied" not in body
    assert any(r.reason == "rule-deny[no-games]: GET other.test/page is denied"
               for r in facility.records(tag="gateway:request:denied"))


async def _tunnel(platform: Platform, host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect_tunnel(platform, host)
    await writer.start_tls(platform.trusting(), server_hostname=host)
    return reader, writer


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str) -> str:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return (await reader.readexactly(length)).decode()


async def _choose(platform: Platform, browser: aiohttp.ClientSession, language: str) -> None:
    async with browser.get(f"{platform.portal}/home") as page:
        token = csrf_from(await page.text())
    async with browser.post(f"{platform.portal}/language", allow_redirects=False,
                            data={"language": language, "next": "/home", "csrf_token": token}) as resp:
        assert resp.status == 303


async def test_a_language_chosen_in_the_portal_reaches_the_next_block_page_on_an_open_connection(
        facility: Platform) -> None:
    async with facility.client(CELL) as browser:
        await facility.login(browser, INMATE)
        await _choose(facility, browser, "nl")
        reader, writer = await _tunnel(facility, "mail.test")  # denied at CONNECT: each request gets the page
        try:
            page = await _get(reader, writer, "mail.test", "/one")
            assert "<h1>Deze pagina is geblokkeerd</h1>" in page
            assert '/ask?url=https%3A%2F%2Fmail.test%2Fone" data-ask>Vraag deze site aan</a>' in page
            await _choose(facility, browser, "fr")
            assert "<h1>Cette page est bloquée</h1>" in await _get(reader, writer, "mail.test", "/two")
        finally:
            writer.close()


# A real browser: "Open the portal" on a block page keeps the inmate logged in; a form from elsewhere does not pass.

@NEEDS_CHROMIUM
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_open_the_portal_from_a_block_page_lands_at_home_logged_in_and_a_cross_site_post_is_refused(
        platform: Platform) -> None:
    from tests.test_browser import kiosk_args

    async with launched_chromium(*kiosk_args(platform)) as browser:
        context = await browser.new_context(locale="en-GB")
        page = await context.new_page()
        try:
            await page.goto(f"{platform.portal}/login")
            await page.get_by_label("Inmate number").fill(INMATE)
            await page.get_by_label("PIN").fill(PIN)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url(f"{platform.portal}/home")

            response = await page.goto("https://other.test/somewhere")
            assert response is not None and response.status == 403
            assert await page.locator("h1").inner_text() == "This page is blocked"
            await page.get_by_role("link", name="Open the portal").click()
            await page.wait_for_url(f"{platform.portal}/home", timeout=10_000)
            assert await page.get_by_test_id("terminal").inner_text() == "cell-1 (cell)"

            # Another site's form posting to the portal: refused, and the session carries on.
            form = (f'<form method="post" action="{platform.portal}/logout"><input type="hidden" name="csrf_token" '
                    'value="guessed-guessed-guessed"><button>Win a prize</button></form>')
            await page.route("http://prizes.test/**", lambda route: route.fulfill(
                status=200, content_type="text/html", body=form))
            await page.goto("http://prizes.test/")
            async with page.expect_response(lambda r: r.url == f"{platform.portal}/logout") as answer:
                await page.get_by_role("button", name="Win a prize").click()
            assert (await answer.value).status == 403
            assert "did not come from this portal" in await page.locator("body").inner_text()
            await page.goto(f"{platform.portal}/home")
            assert page.url == f"{platform.portal}/home"
            assert platform.records(tag="portal:logout") == []
        finally:
            await context.close()


async def test_the_inmate_session_cookie_comes_along_on_navigation_and_the_csrf_cookie_stays_strict(
        platform: Platform) -> None:
    async with platform.client(CELL) as browser:
        async with browser.get(f"{platform.portal}/login") as page:
            token = csrf_from(await page.text())
        async with browser.post(f"{platform.portal}/login", allow_redirects=False,
                                data={"inmate_number": INMATE, "pin": PIN, "csrf_token": token}) as resp:
            assert resp.status == 303
            session, csrf = resp.cookies["gh_session"], resp.cookies["gh_csrf"]
    assert session["samesite"] == "Lax" and session["httponly"]
    assert csrf["samesite"] == "Strict" and csrf["httponly"]
