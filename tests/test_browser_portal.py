"""The portal in a real browser: logins, roles, languages, and axe-core on every page each kind of viewer reaches.

One platform and one Chromium serve the whole module. Each test opens its own browser context (its own cookies)
and makes its own inmates; a test that changes a staff account makes its own, the others share one logged-in
account per role, made by whichever test needs it first. So the tests do not depend on their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import axe_playwright_python
import pyotp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.staff import add_staff
from portal import i18n
from portal.layout import STAFF_LINKS
from tests.conftest import Origin
from tests.helpers import INMATE, NEEDS_CHROMIUM, PIN, STRANGER, Platform, launched_chromium, populate

pytestmark = [
    NEEDS_CHROMIUM,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.asyncio(loop_scope="module"),
]

LANGUAGES = tuple(i18n.NAMES)
PASSWORD = "four words nobody guesses"
AXE_SOURCE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
               "resultTypes": ["violations"]}
ROLES = sorted(role.value for role in StaffRole)
TOUCH_PX = 44
"""The smallest target in CSS px (WCAG 2.5.5): inmates use touch screens."""
_serial = itertools.count(1)


def text(language: str, message: str) -> str:
    """What the portal shows for an English message in `language`, from its own catalogue."""
    return i18n.catalogue(language).gettext(message)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """Portal and gateway as `gatehouse run` starts them, for the whole module."""
    data_dir = tmp_path_factory.mktemp("portal") / "data"
    settings = initialise(data_dir, {"portal.port": 0, "proxy.port": 0}, quiet=True)
    # Budgets, so the inmate's home page carries its table of minutes for axe, the keyboard and zoom.
    (settings.policy_dir / "quotas.yaml").write_text(
        "quotas:\n  default: {general: 60, jobs: 120, learning: unlimited}\n", encoding="utf-8")
    populate(settings)
    # Many logins come from the one loopback address here; the limit itself is tested in test_portal.
    settings = settings.replace(login__attempts_per_address=1000)
    async with running(settings) as up:
        yield Platform(up, Origin(), settings)  # no origin: these tests stay in the portal


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as chromium:
        yield chromium


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def signed_in() -> dict[str, Any]:
    """The browser state (cookies) of a logged-in staff account per role."""
    return {}


@contextlib.asynccontextmanager
async def opened(browser: Browser, locale: str = "en-GB", *, axe: bool = False, **options: Any) -> AsyncIterator[Page]:
    """A fresh browser profile (no cookies unless given) with one page; with axe-core in every document if asked."""
    context: BrowserContext = await browser.new_context(locale=locale, **options)
    context.set_default_timeout(10_000)
    if axe:
        # Added through the DevTools protocol, so the portal's CSP (no inline scripts) does not apply to it.
        await context.add_init_script(script=AXE_SOURCE)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def new_inmate(site: Platform, language: str = "en") -> str:
    number = f"T{next(_serial):03d}"

    def add() -> None:
        with site.up.kernel.factory.begin() as session:
            facility = ensure_facility(session, site.settings)
            add_inmate(session, facility, number=number, name=f"Test Inmate {number}", language=language, pin=PIN)

    await asyncio.to_thread(add)
    return number


@dataclass
class StaffMember:
    """A staff account and the authenticator app its owner would have."""

    username: str
    secret: str = ""
    last_step: int = -1

    async def code(self) -> str:
        """A code not used yet: this time step or the next (the portal accepts one step ahead), else wait."""
        totp = pyotp.TOTP(self.secret)
        step = max(self.last_step + 1, int(time.time()) // totp.interval)
        while step > int(time.time()) // totp.interval + 1:
            await asyncio.sleep(0.5)
        self.last_step = step
        return str(totp.generate_otp(step))


async def new_staff(site: Platform, role: str) -> StaffMember:
    username = f"{role}{next(_serial)}"

    def add() -> None:
        with site.up.kernel.factory.begin() as session:
            add_staff(session, username=username, roles=[role], password=PASSWORD, now=utcnow())

    await asyncio.to_thread(add)
    return StaffMember(username)


async def inmate_login(page: Page, site: Platform, number: str) -> None:
    await page.goto(f"{site.portal}/login")
    await page.locator("#inmate_number").fill(number)
    await page.locator("#pin").fill(PIN)
    await page.locator('form[action="/login"] button[type=submit]').click()
    await page.wait_for_url(f"{site.portal}/home")


async def password_step(page: Page, site: Platform, member: StaffMember) -> None:
    await page.goto(f"{site.portal}/staff/login")
    await page.locator("#username").fill(member.username)
    await page.locator("#password").fill(PASSWORD)
    await page.locator('form[action="/staff/login"] button[type=submit]').click()
    await page.wait_for_url(f"{site.portal}/staff/{'totp' if member.secret else 'enrol'}")


async def enrol(page: Page, site: Platform, member: StaffMember) -> None:
    """Password, then the secret as the page shows it for typing into an app, then its first code."""
    await password_step(page, site, member)
    member.secret = "".join((await page.get_by_test_id("secret").inner_text()).split())
    await page.locator("#code").fill(await member.code())
    await page.locator('form[action="/staff/enrol"] button[type=submit]').click()
    await expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)


@contextlib.asynccontextmanager
async def as_staff(browser: Browser, site: Platform, signed_in: dict[str, Any], role: str,
                   axe: bool = False) -> AsyncIterator[Page]:
    """A page of the shared account of `role`, logged in (the first time through enrolment)."""
    if role not in signed_in:
        member = await new_staff(site, role)
        async with opened(browser) as page:
            await enrol(page, site, member)
            signed_in[role] = await page.context.storage_state()
    async with opened(browser, axe=axe, storage_state=signed_in[role]) as page:
        yield page


async def second_step(page: Page, code: str) -> None:
    await page.locator("#code").fill(code)
    await page.locator('form[action="/staff/totp"] button[type=submit]').click()


async def log_out(page: Page, site: Platform, to: str) -> None:
    await page.locator('header form[action$="/logout"] button[type=submit]').click()
    await page.wait_for_url(f"{site.portal}{to}")


async def choose_language(page: Page, language: str) -> None:
    await page.get_by_role("button", name=i18n.NAMES[language], exact=True).click()
    await expect(page.locator("html")).to_have_attribute("lang", language)


async def nav_links(page: Page) -> list[str]:
    hrefs: list[str] = await page.locator("nav.main-nav a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    return hrefs


@contextlib.asynccontextmanager
async def relay(target: tuple[str, int], source: str) -> AsyncIterator[str]:
    """A loopback TCP relay whose connections reach `target` from `source`: the browser on another computer."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target, local_addr=(source, 0))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


# Inmates at a terminal.

async def test_inmate_logs_in_and_out_at_a_terminal(site: Platform, browser: Browser) -> None:
    async with opened(browser) as page:
        await page.goto(f"{site.portal}/")
        await page.wait_for_url(f"{site.portal}/login")
        await page.get_by_label("Inmate number").fill(INMATE)
        await page.get_by_label("PIN").fill(PIN)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{site.portal}/home")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Jan Peeters")
        await expect(page.get_by_test_id("terminal")).to_have_text("cell-1 (cell)")
        assert await nav_links(page) == ["/home", "/learning", "/courses", "/library", "/resources", "/jobs", "/plan",
                                        "/requests"]
        minutes = page.get_by_test_id("minutes")
        await expect(minutes.get_by_role("row")).to_have_count(4)  # the head and three categories
        await expect(minutes.get_by_role("row", name="General")).to_contain_text("60 of 60 minutes")
        await expect(minutes.get_by_role("row", name="Learning")).to_contain_text("no limit")

        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(f"{site.portal}/login")
        await page.goto(f"{site.portal}/home")
        await page.wait_for_url(f"{site.portal}/login")
        assert await nav_links(page) == []


async def test_a_computer_that_is_not_a_terminal_cannot_log_in(site: Platform, browser: Browser) -> None:
    async with relay(site.up.portal, STRANGER) as portal, opened(browser) as page:
        await page.goto(f"{portal}/login")
        await page.get_by_label("Inmate number").fill(INMATE)
        await page.get_by_label("PIN").fill(PIN)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "This computer is not registered as a terminal; ask staff.")
        assert page.url == f"{portal}/login"
        await page.goto(f"{portal}/home")
        await page.wait_for_url(f"{portal}/login")


# Staff: two steps, enrolment, replay, recovery codes.

async def test_staff_enrol_log_in_again_replay_and_recovery_codes(site: Platform, browser: Browser) -> None:
    member = await new_staff(site, "education")
    async with opened(browser) as page:
        await page.goto(f"{site.portal}/staff/login")
        await page.get_by_label("Username").fill(member.username)
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Next").click()
        await page.wait_for_url(f"{site.portal}/staff/enrol")
        assert (await page.get_by_role("img").get_attribute("src") or "").startswith("data:image/svg+xml")
        member.secret = "".join((await page.get_by_test_id("secret").inner_text()).split())
        first = await member.code()
        await page.get_by_label("Code").fill(first)
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.get_by_role("status")).to_have_text("Your authenticator app is set up.")
        codes = await page.get_by_test_id("recovery-codes").locator("li").all_inner_texts()
        assert len(codes) == 10 and len(set(codes)) == 10
        await page.get_by_role("link", name="I have kept them: continue").click()
        await page.wait_for_url(f"{site.portal}/staff")
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {member.username}")
        await expect(page.get_by_role("alert")).to_have_count(0)

        # Logged out, the overview is out of reach; the next login needs a new code, and the old one is refused.
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(f"{site.portal}/staff/login")
        await page.goto(f"{site.portal}/staff")
        await page.wait_for_url(f"{site.portal}/staff/login")
        await password_step(page, site, member)
        await page.get_by_label("Code").fill(first)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#code-error")).to_be_visible()
        await expect(page.locator("#code-error")).to_have_text(
            "That code was used already. Wait for the next code in your app.")
        await expect(page.get_by_label("Code")).to_have_attribute("aria-invalid", "true")
        await second_step(page, await member.code())
        await page.wait_for_url(f"{site.portal}/staff")
        await expect(page.get_by_role("alert")).to_contain_text("that had been used already")
        await log_out(page, site, "/staff/login")

        # A recovery code logs in once; the second time it is refused.
        await password_step(page, site, member)
        await second_step(page, codes[0])
        await page.wait_for_url(f"{site.portal}/staff")
        await log_out(page, site, "/staff/login")
        await password_step(page, site, member)
        await second_step(page, codes[0])
        await expect(page.locator("#code-error")).to_have_text(
            "That recovery code is not valid or was used already.")
        await second_step(page, codes[1].upper())
        await page.wait_for_url(f"{site.portal}/staff")
        await expect(page.get_by_role("alert").first).to_contain_text(
            "a recovery code was used to log in to your account")

        # Each notice is shown once.
        await page.reload()
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {member.username}")
        await expect(page.get_by_role("alert")).to_have_count(0)


# Navigation by role.

@pytest.mark.parametrize("role", ROLES)
async def test_each_role_sees_its_own_links(site: Platform, browser: Browser, signed_in: dict[str, Any],
                                            role: str) -> None:
    async with as_staff(browser, site, signed_in, role) as page:
        await page.goto(f"{site.portal}/staff")
        links = await nav_links(page)
        assert links == [href for href, _label, roles in STAFF_LINKS if not roles or role in roles]
        assert links[0] == "/staff" and links[-1] == "/staff/account"
        assert any(href.startswith("/admin/") for href in links) == (role == "admin")
        assert any(href.startswith("/audit") for href in links) == (role == "security")
        tiles = await page.locator("ul.tiles a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert tiles == links[1:]
        assert await page.locator('nav.main-nav a[aria-current="page"]').get_attribute("href") == "/staff"
        await page.goto(f"{site.portal}/staff/account")
        assert await page.locator('nav.main-nav a[aria-current="page"]').get_attribute("href") == "/staff/account"


async def test_education_cannot_open_administration(site: Platform, browser: Browser,
                                                   signed_in: dict[str, Any]) -> None:
    async with as_staff(browser, site, signed_in, "education") as page:
        response = await page.goto(f"{site.portal}/admin/staff")
        assert response is not None and response.status == 403
        language = await page.locator("html").get_attribute("lang") or ""
        await expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "You cannot open this page"))
        assert "/admin/staff" not in await nav_links(page)


# Languages.

@pytest.mark.parametrize(("locale", "language"), [("en-GB", "en"), ("nl-BE", "nl"), ("fr-BE", "fr"), ("de-DE", "de")])
async def test_before_login_the_page_follows_the_browser_language(site: Platform, browser: Browser, locale: str,
                                                                  language: str) -> None:
    async with opened(browser, locale=locale) as page:
        await page.goto(f"{site.portal}/login")
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(page.get_by_role("heading", level=1)).to_have_text(text(language, "Log in"))
        pressed = page.locator('form.languages button[aria-pressed="true"]')
        await expect(pressed).to_have_text(i18n.NAMES[language])


async def test_the_language_buttons_switch_and_an_inmate_choice_is_remembered(site: Platform,
                                                                             browser: Browser) -> None:
    number = await new_inmate(site, "en")
    async with opened(browser) as page:
        await page.goto(f"{site.portal}/login")
        await choose_language(page, "de")
        await expect(page.get_by_role("heading", level=1)).to_have_text(text("de", "Log in"))
        await choose_language(page, "fr")
        await expect(page.get_by_role("heading", level=1)).to_have_text(text("fr", "Log in"))

        # The inmate's own language wins over the cookie once logged in; a choice made now is stored.
        await inmate_login(page, site, number)
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await choose_language(page, "nl")
        assert page.url == f"{site.portal}/home"
        await expect(page.locator("dt").first).to_have_text(text("nl", "Inmate number"))
        await log_out(page, site, "/login")
    async with opened(browser, locale="en-GB") as page:
        await page.goto(f"{site.portal}/login")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await inmate_login(page, site, number)
        await expect(page.locator("html")).to_have_attribute("lang", "nl")
        await expect(page.get_by_role("button", name=text("nl", "Log out"))).to_be_visible()


async def test_the_language_switch_on_the_answer_to_a_form_leads_back_to_its_page(
        site: Platform, browser: Browser, signed_in: dict[str, Any]) -> None:
    """The answer to a form sent to a POST-only address (`/staff/account/password`) has the language buttons too."""
    async with as_staff(browser, site, signed_in, "supervisor") as page:
        await page.goto(f"{site.portal}/staff/account")
        await choose_language(page, "en")
        await page.locator('form[action="/staff/account/password"] button[type=submit]').click()
        await expect(page.locator("#current-error")).to_be_visible()
        assert page.url == f"{site.portal}/staff/account/password"
        await choose_language(page, "fr")
        assert page.url == f"{site.portal}/staff/account"
        await expect(page.get_by_role("heading", level=1)).to_have_text(text("fr", "My account"))


# axe-core on every page each kind of viewer reaches, in every language.

@dataclass(frozen=True)
class Screen:
    """A page as a viewer meets it: a GET, and optionally a form on it sent (to see its answer, errors and all)."""

    path: str
    status: int = 200
    submit: str = ""
    """The action of the form to send, by its submit button."""
    fill: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.path + (f" -> POST {self.submit}" if self.submit else "")


async def show(page: Page, site: Platform, screen: Screen) -> str:
    """Open the screen; a problem with reaching it, or '' when it is there as expected."""
    response = await page.goto(f"{site.portal}{screen.path}")
    if screen.submit:
        form = page.locator(f'form[action="{screen.submit}"]')
        for selector, value in screen.fill:
            await form.locator(selector).fill(value)
        async with page.expect_navigation() as navigation:
            await form.locator("button[type=submit]").click()
        response = await navigation.value
    if response is None or response.status != screen.status:
        return f"answered {response.status if response else 'nothing'}, expected {screen.status}"
    if "text/html" not in (response.headers.get("content-type") or ""):
        return f"is not a page but {response.headers.get('content-type')}"
    return ""


async def local_links(page: Page, within: str) -> list[str]:
    """The portal's own links in `within`, without fragments; downloads are not pages."""
    hrefs = await page.locator(f"{within} a[href]:not([download])").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))")
    return [href.partition("#")[0] for href in hrefs if href.startswith("/") and not href.startswith("//")]


def kind_of(href: str, detail: bool = False) -> str:
    """Links to one path show one kind of page whatever their query (`/audit?after=X` is `/audit`); so do the
    detail pages a list links to (`/admin/staff/ana` is `/admin/staff/*`)."""
    path = urlsplit(href).path
    return path.rpartition("/")[0] + "/*" if detail else path


async def crawl(page: Page, site: Platform, start: str) -> tuple[list[Screen], list[str]]:
    """One page of each kind reachable through navigation links (any <nav>) from `start` and through the links
    of a page's content to pages below it; and the links that lead nowhere. Downloads are not pages."""
    found: list[str] = []
    kinds: set[str] = set()
    broken: list[str] = []
    queue = [(start, kind_of(start))]
    while queue:
        path, kind = queue.pop(0)
        if kind in kinds or kind_of(path) in kinds:
            continue
        kinds.update((kind, kind_of(path)))
        problem = await show(page, site, Screen(path))
        if problem:
            broken.append(f"{path} {problem}")
            continue
        found.append(path)
        below = path.partition("?")[0].rstrip("/") + "/"
        queue += [(href, kind_of(href)) for href in await local_links(page, "nav")]
        queue += [(href, kind_of(href, detail=True)) for href in await local_links(page, "main")
                  if href.startswith(below)]
    return [Screen(path) for path in found], broken


async def axe(page: Page) -> list[str]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now, one line each."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        raise AssertionError("axe-core is not in the page: open it with opened(..., axe=True)")
    result = await page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'])}"
            for v in result["violations"]]


# A checkbox or radio button inside its label is pressed anywhere on the label: the label is the target.
SMALL_TARGETS = """size => [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button], [tabindex]')]
  .filter(e => !e.matches('.skip, main[tabindex="-1"]') && e.getClientRects().length)
  .map(e => [e, (e.matches('input[type=checkbox], input[type=radio]') && e.closest('label') || e)
                .getBoundingClientRect()])
  .filter(([e, r]) => r.width < size || r.height < size)
  .map(([e, r]) => `${e.outerHTML.slice(0, 80)} is ${Math.round(r.width)}x${Math.round(r.height)}`)"""


async def axe_everywhere(page: Page, site: Platform, screens: list[Screen], *, touch: bool = False) -> list[str]:
    """Each screen in each language, chosen with the language buttons; every problem found, one line each."""
    problems: list[str] = []
    for language in LANGUAGES:
        await choose_language(page, language)
        for screen in screens:
            where = f"[{language}] {screen.name}"
            reached = await show(page, site, screen)
            if reached:
                problems.append(f"{where} {reached}")
                continue
            lang = await page.locator("html").get_attribute("lang")
            if lang != language:
                problems.append(f"{where} has lang={lang!r}")
            problems += [f"{where} {line}" for line in await axe(page)]
            if touch:
                problems += [f"{where} touch target {line}" for line in await page.evaluate(SMALL_TARGETS, TOUCH_PX)]
    return problems


def report(problems: list[str]) -> str:
    return f"{len(problems)} problems:\n" + "\n".join(problems)


async def test_axe_runs_in_the_portal_pages_and_reports(site: Platform, browser: Browser) -> None:
    """The checks below can fail: axe-core runs despite the pages' CSP, and what it finds reaches the test."""
    async with opened(browser, axe=True) as page:
        await page.goto(f"{site.portal}/login")
        assert await axe(page) == []
        await page.evaluate("document.querySelector('label[for=pin]').remove(); "
                            "document.documentElement.removeAttribute('lang')")
        found = [line.split()[0] for line in await axe(page)]
        assert found == ["html-has-lang", "label"]


ANONYMOUS = [Screen("/login"), Screen("/login", 400, "/login"), Screen("/staff/login"),
             Screen("/staff/login", 400, "/staff/login")]


async def test_axe_anonymous(site: Platform, browser: Browser) -> None:
    async with opened(browser, axe=True) as page:
        await page.goto(f"{site.portal}/login")
        problems = await axe_everywhere(page, site, ANONYMOUS, touch=True)
    assert not problems, report(problems)


async def test_axe_inmate(site: Platform, browser: Browser) -> None:
    async with opened(browser, axe=True) as page:
        await inmate_login(page, site, await new_inmate(site))
        screens, broken = await crawl(page, site, "/home")
        assert not broken, report(broken)
        problems = await axe_everywhere(page, site, [*screens, Screen("/staff", 403)], touch=True)
    assert not problems, report(problems)


async def test_axe_staff_between_password_and_code(site: Platform, browser: Browser) -> None:
    member = await new_staff(site, "supervisor")
    async with opened(browser, axe=True) as page:
        await password_step(page, site, member)
        problems = await axe_everywhere(page, site, [Screen("/staff/enrol"),
                                                     Screen("/staff/enrol", 400, "/staff/enrol")])
        member.secret = "".join((await page.get_by_test_id("secret").inner_text()).split())
        await page.locator("#code").fill(await member.code())
        await page.locator('form[action="/staff/enrol"] button[type=submit]').click()
        await expect(page.get_by_test_id("recovery-codes")).to_be_visible()
        problems += [f"[de] first recovery codes {line}" for line in await axe(page)]
        await log_out(page, site, "/staff/login")
        await password_step(page, site, member)
        problems += await axe_everywhere(page, site, [Screen("/staff/totp"), Screen("/staff/totp", 400, "/staff/totp")])
    assert not problems, report(problems)


@pytest.mark.parametrize("role", ROLES)
async def test_axe_staff(site: Platform, browser: Browser, signed_in: dict[str, Any], role: str) -> None:
    async with as_staff(browser, site, signed_in, role, axe=True) as page:
        await page.goto(f"{site.portal}/staff")
        screens, broken = await crawl(page, site, "/staff")
        assert not broken, report(broken)
        problems = await axe_everywhere(page, site, [*screens, Screen("/home", 403)])
    assert not problems, report(problems)


async def test_axe_staff_form_answers(site: Platform, browser: Browser, signed_in: dict[str, Any]) -> None:
    """Pages shown in answer to a form; the same for every role but for the links, which the role tests cover."""
    async with as_staff(browser, site, signed_in, "education", axe=True) as page:
        await page.goto(f"{site.portal}/staff/account")
        problems = await axe_everywhere(page, site, [
            Screen("/staff/account", 400, "/staff/account/password"),
            Screen("/staff/account", 200, "/staff/account/recovery-codes", (("#password", PASSWORD),)),
        ])
    assert not problems, report(problems)


# Keyboard, zoom and touch, beyond what axe can see.

FOCUSED = """() => { const e = document.activeElement, s = getComputedStyle(e), r = e.getBoundingClientRect();
  return {tag: e.outerHTML.slice(0, 60), outline: s.outlineStyle, height: r.height,
          inView: r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth}; }"""


async def tab_to(page: Page, selector: str) -> None:
    """Press Tab until the focus is on `selector`; every stop on the way must show where the focus is."""
    for _ in range(20):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        assert focused["outline"] != "none" and focused["inView"], f"focus not visible: {focused}"
        if await page.evaluate("selector => document.activeElement.matches(selector)", selector):
            return
    pytest.fail(f"Tab never reached {selector}")


async def test_keyboard_only_inmate_login(site: Platform, browser: Browser) -> None:
    number = await new_inmate(site)
    async with opened(browser) as page:
        await page.goto(f"{site.portal}/login")
        await page.keyboard.press("Tab")
        skip = await page.evaluate(FOCUSED)
        assert 'class="skip"' in skip["tag"] and skip["inView"] and skip["height"] >= TOUCH_PX, skip
        await tab_to(page, "#inmate_number")
        await page.keyboard.type(number)
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.id") == "pin"
        await page.keyboard.type(PIN)
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{site.portal}/home")

        # The skip link takes the keyboard past the header to the page's content.
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"


async def test_keyboard_only_staff_login_and_enrolment(site: Platform, browser: Browser) -> None:
    member = await new_staff(site, "security")
    async with opened(browser) as page:
        await page.goto(f"{site.portal}/staff/login")
        await tab_to(page, "#username")
        await page.keyboard.type(member.username)
        await tab_to(page, "#password")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{site.portal}/staff/enrol")
        member.secret = "".join((await page.get_by_test_id("secret").inner_text()).split())
        await tab_to(page, "#code")
        await page.keyboard.type(await member.code())
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("recovery-codes")).to_be_visible()
        await tab_to(page, 'main a[href="/staff"]')
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{site.portal}/staff")


NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"


async def test_at_200_percent_zoom_nothing_scrolls_sideways(site: Platform, browser: Browser) -> None:
    """WCAG 1.4.4 and 1.4.10: a 1280 px wide screen at 200% zoom is a 640 CSS px wide page."""
    number = await new_inmate(site)
    async with opened(browser, viewport={"width": 640, "height": 360}) as page:
        await page.goto(f"{site.portal}/login")
        wide: list[str] = []
        for language in LANGUAGES:
            await choose_language(page, language)
            for path in ("/login", "/staff/login"):
                await page.goto(f"{site.portal}{path}")
                if not await page.evaluate(NO_SIDEWAYS_SCROLL):
                    wide.append(f"[{language}] {path}")
        await inmate_login(page, site, number)
        for language in LANGUAGES:
            await choose_language(page, language)
            if not await page.evaluate(NO_SIDEWAYS_SCROLL):
                wide.append(f"[{language}] /home")
    assert not wide, report(wide)
