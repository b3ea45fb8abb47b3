"""A browser's own traffic (Google's update, sync and safe-browsing services) is kept out of what is said about
an inmate, and the demo and the kiosk policy switch it off in the first place. Also: review dates are written
as the facility's country writes them."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gatehouse.audit import AuditEvent, Tag
from gatehouse.audit.alerts import local_day
from gatehouse.db.engine import utcnow
from gatehouse.demo.run import CHROMIUM_QUIET, chromium_command
from gatehouse.settings import SETTINGS_BY_NAME
from portal import i18n
from tests.conftest import Origin, platform_settings
from tests.helpers import INMATE, OTHER_INMATE, Platform, staff_client

ROOT = Path(__file__).resolve().parent.parent
SECURITY_ADDR = "127.0.0.32"
NOISE = ("optimizationguide-pa.googleapis.com", "accounts.google.com", "update.googleapis.com",
         "r4---sn-4g5e6nsz.gvt1.com")


@pytest.fixture
async def noisy(tmp_path: Path, origin: Origin, database_url: str) -> AsyncIterator[Platform]:
    """Low alert thresholds (a burst is 8 denials, a heavy day 3 active minutes), on SQLite and PostgreSQL."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin, database_url).replace(
        audit__alert_burst=8, audit__alert_daily_minutes=3)
    async with running(settings) as up:
        yield Platform(up, origin, settings)


async def _write(platform: Platform, actor: str, host: str, decision: str, at: datetime) -> None:
    assert platform.up.kernel.audit is not None
    tag = Tag.GATEWAY_CONNECT_DENIED if decision == "deny" else Tag.GATEWAY_CONNECT_ALLOWED
    await platform.up.kernel.audit.write(AuditEvent(
        tag, "gateway", actor=actor, terminal="cell-1", method="CONNECT", host=host, decision=decision,
        reason=f"no-match: no rule allows {host}" if decision == "deny" else "rule-allow[x]: allowed", at=at))


async def test_browser_background_traffic_raises_no_alert_and_is_shown_apart(noisy: Platform) -> None:
    platform = noisy
    now = utcnow()
    day_start, _ = local_day(now, ZoneInfo(platform.settings["facility.timezone"]))
    base = now if now - day_start > timedelta(minutes=6) else day_start - timedelta(minutes=1)
    # The inmate's browser: 24 denials to Google's services within two minutes, and allowed background calls
    # in four different minutes; the inmate's own requests: 3 denials and 2 active minutes, under both limits.
    for n in range(24):
        await _write(platform, INMATE, NOISE[n % len(NOISE)], "deny", base - timedelta(seconds=5 * n))
    for n in range(4):
        await _write(platform, INMATE, "clients2.google.com", "allow", base - timedelta(minutes=n))
    for n in range(3):
        await _write(platform, INMATE, "games.test", "deny", base - timedelta(seconds=n))
    await _write(platform, INMATE, "allowed.test", "allow", base - timedelta(minutes=1))
    # Someone else's own denials still raise a burst.
    for n in range(8):
        await _write(platform, OTHER_INMATE, "games.test", "deny", base - timedelta(seconds=n))
    await platform.up.kernel.ship()
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        async with sam.get(f"{platform.portal}/audit/alerts") as resp:
            alerts = html.unescape(await resp.text())
        async with sam.get(f"{platform.portal}/audit/charts?days=1") as resp:
            charts = html.unescape(await resp.text())
    assert f'data-testid="alert-denied-burst-{OTHER_INMATE}"' in alerts
    assert f"alert-denied-burst-{INMATE}" not in alerts and f"alert-daily-usage-{INMATE}" not in alerts
    busiest = re.findall(r'<svg [^>]*role="img"[^>]*>.*?</svg>', charts, re.S)[2]
    assert "games.test" in busiest and not any(host in busiest for host in NOISE + ("clients2.google.com",))
    background = re.search(r'<section class="card"[^>]*data-testid="background">(.*?)</section>', charts, re.S)
    assert background is not None
    rows = dict(re.findall(r'<th scope="row">([^<]+)</th><td>\d+</td><td>(\d+)</td>', background.group(1)))
    assert rows == {"optimizationguide-pa.googleapis.com": "6", "accounts.google.com": "6",
                    "update.googleapis.com": "6", "r4---sn-4g5e6nsz.gvt1.com": "6", "clients2.google.com": "0"}
    # Recorded all the same: nothing is dropped from the log.
    assert len(platform.records(host="accounts.google.com")) == 6


def test_the_list_of_browser_service_hosts_takes_names_and_patterns_only() -> None:
    setting = SETTINGS_BY_NAME["audit.browser_service_hosts"]
    assert setting.parse("Update.GoogleAPIs.com, *.gvt1.com") == ("*.gvt1.com", "update.googleapis.com")
    assert {"accounts.google.com", "update.googleapis.com", "safebrowsing.googleapis.com"} <= set(setting.default)
    for bad in ("*.com", "http://x.test/", "*"):
        with pytest.raises(ValueError, match="host names or"):
            setting.parse(bad)


def test_the_demos_chromium_command_switches_off_chromiums_own_services() -> None:
    command = chromium_command(("127.0.0.1", 3128), "SPKI=", "http://127.0.0.1:8080/")
    assert command[0] == "chromium" and command[-1] == "http://127.0.0.1:8080/"
    assert "--proxy-server=127.0.0.1:3128" in command and "--ignore-certificate-errors-spki-list=SPKI=" in command
    for flag in ("--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--no-first-run", "--disable-domain-reliability"):
        assert flag in command, flag
    features = next(f for f in CHROMIUM_QUIET if f.startswith("--disable-features="))
    assert {"Translate", "OptimizationHints", "MediaRouter", "AutofillServerCommunication",
            "NetworkTimeServiceQuerying"} <= set(
        features.partition("=")[2].split(","))


def test_the_kiosk_policy_is_json_and_switches_off_what_calls_home() -> None:
    policy = json.loads((ROOT / "deploy" / "chromium-policy.json").read_text(encoding="utf-8"))
    assert policy["ProxySettings"] == {"ProxyMode": "pac_script",
                                       "ProxyPacUrl": "http://portal.prison.example/kiosk.pac"}
    expected = {"SyncDisabled": True, "BrowserSignin": 0, "SafeBrowsingProtectionLevel": 0,
                "ComponentUpdatesEnabled": False, "BrowserNetworkTimeQueriesEnabled": False,
                "TranslateEnabled": False, "AutofillAddressEnabled": False,
                "AutofillCreditCardEnabled": False, "PasswordManagerEnabled": False,
                "DeveloperToolsAvailability": 2, "ExtensionInstallBlocklist": ["*"],
                "MetricsReportingEnabled": False, "SearchSuggestEnabled": False,
                "WebRtcIPHandling": "disable_non_proxied_udp"}
    assert {key: policy.get(key) for key in expected} == expected
    readme = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    assert "chromium-policy.json" in readme and "/etc/chromium/policies/managed/" in readme


@pytest.mark.parametrize(("zone", "language", "short", "day"), [
    ("Europe/Brussels", "en", "02/12/26, 15:47", "Wednesday, 2 December 2026"),  # en_BE, not US
    ("Europe/Brussels", "nl", "2/12/2026, 15:47", "woensdag 2 december 2026"),  # nl_BE
    ("Europe/Brussels", "fr", "2/12/26 15:47", "mercredi 2 décembre 2026"),  # fr_BE
    ("UTC", "en", "02/12/2026, 14:47", "Wednesday, 2 December 2026"),  # no country: English as en_GB
    ("America/New_York", "en", "12/2/26, 9:47\u202fAM", "Wednesday, December 2, 2026"),  # a US facility
])
def test_review_dates_are_written_as_in_the_facilitys_country(zone: str, language: str, short: str,
                                                              day: str) -> None:
    i18n.activate(language)
    try:
        stored = datetime(2026, 12, 2, 14, 47)
        assert i18n.format_datetime(stored, ZoneInfo(zone), "short") == short
        assert i18n.format_date(stored, ZoneInfo(zone)) == day
    finally:
        i18n.activate("en")


async def test_the_audit_page_writes_english_dates_day_first(platform: Platform) -> None:
    assert platform.up.kernel.audit is not None
    await platform.up.kernel.audit.write(AuditEvent(Tag.GATEWAY_REQUEST_ALLOWED, "gateway", actor=INMATE,
                                                    host="dated.test", decision="allow",
                                                    at=datetime(2026, 1, 31, 9, 5)))
    await platform.up.kernel.ship()
    async with staff_client(platform, SECURITY_ADDR, "sam", ["security"]) as sam:
        async with sam.get(f"{platform.portal}/audit/inmates/{INMATE}?after=20260201T000000.000000_0") as resp:
            body = html.unescape(await resp.text())
    assert "<h2>Saturday, 31 January 2026</h2>" in body
    assert "31/01/26, 10:05" in body  # Brussels, day first, a 24-hour clock
