"""A real browser at a cell terminal: Chromium with the gateway as its proxy, the portal reached directly."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import Origin
from tests.helpers import INMATE, NEEDS_CHROMIUM, PIN, Platform, launched_chromium

pytestmark = [
    NEEDS_CHROMIUM,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def kiosk_args(platform: Platform) -> tuple[str, ...]:
    """A terminal's browser: the gateway as its proxy, the facility CA's key trusted."""
    return (f"--proxy-server=http://{platform.proxy}", "--disable-quic",
            f"--ignore-certificate-errors-spki-list={spki(platform.ca_file)}")


def spki(cert_file: str) -> str:
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
async def page(platform: Platform, tmp_path: Path) -> AsyncIterator[object]:
    # The proxy as a kiosk sets it: loopback (the portal here) stays direct, as Chromium does by default.
    async with launched_chromium(*kiosk_args(platform)) as browser:
        context = await browser.new_context(locale="en-GB")
        page = await context.new_page()
        yield page
        await context.close()


async def test_inmate_logs_in_and_browses_through_the_gateway(page, platform: Platform, origin: Origin,
                                                                tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Before login the gateway sends the browser to the portal.
    await page.goto("http://allowed.test/first")
    assert await page.locator("h1").inner_text() == "Please log in first"
    await page.get_by_role("link", name="Open the portal").click()
    await page.wait_for_url(f"{platform.portal}/login")
    assert await page.locator("html").get_attribute("lang") == "en"

    # A wrong PIN keeps the number typed and says how many attempts are left.
    await page.get_by_label("Inmate number").fill(INMATE)
    await page.get_by_label("PIN").fill("0000")
    await page.get_by_role("button", name="Log in").click()
    assert "4 attempts left" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("Inmate number").input_value() == INMATE

    await page.get_by_label("PIN").fill(PIN)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{platform.portal}/home")
    assert await page.get_by_test_id("terminal").inner_text() == "cell-1 (cell)"
    await page.screenshot(path=str(tmp_path / "home.png"))

    response = await page.goto("http://allowed.test/lesson")
    assert response is not None and response.status == 200
    assert await page.locator("body").inner_text() == "origin allowed.test GET /lesson 0"
    response = await page.goto("https://allowed.test/secure")
    assert response is not None and response.status == 200
    assert "origin allowed.test GET /secure" in await page.locator("body").inner_text()

    response = await page.goto("https://other.test/")
    assert response is not None and response.status == 403
    assert await page.locator("h1").inner_text() == "This page is blocked"
    assert "This site is not on the list of allowed sites." in await page.locator("main").inner_text()
    await page.screenshot(path=str(tmp_path / "blocked.png"))
    assert not any(host == "other.test" for _, host, _ in origin.seen)

    # Logging out from the portal ends access at once.
    await page.goto(f"{platform.portal}/home")
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(f"{platform.portal}/login")
    await page.goto("http://allowed.test/after")
    assert await page.locator("h1").inner_text() == "Please log in first"
    assert not origin.saw("GET", "allowed.test", "/after")
