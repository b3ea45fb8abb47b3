"""Opening hours of terminals by kind and closed days: parsing with located errors, decisions across daylight
saving, files that disagree, and the block page a closed terminal shows, through the running gateway."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_time

from gatehouse.policy_store import check_files
from gateway.blockpage import regional
from policies.decision import ReasonCode, RequestFacts, Subject, decide_connect, decide_request
from policies.rules import parse_policy
from policies.snapshot import Snapshot
from tests.helpers import CELL, Platform, curl, eventually_records

BRUSSELS = ZoneInfo("Europe/Brussels")
POLICY = """\
hours:
  cell: [mon-sun 07:00-22:00]
  classroom: [mon-fri 08:30-12:00, mon-fri 13:00-16:00]
closed: [2026-12-25]
rules:
  - id: learning
    allow: [learn.example.org]
"""
CELL_WHO = Subject("A100", frozenset(), "cell-1", "cell", "s1")
CLASS_WHO = Subject("A100", frozenset(), "class-1", "classroom", "s1")
LIBRARY_WHO = Subject("A100", frozenset(), "lib-1", "library", "s1")


def snapshot(text: str = POLICY) -> Snapshot:
    result = parse_policy(text, "hours.yaml")
    assert result.errors == []
    return Snapshot.build(result.rules, timezone=BRUSSELS, hours=result.hours)


def utc(local: str) -> datetime:
    """A facility wall-clock time as the UTC instant the gateway's clock would show."""
    return datetime.fromisoformat(local).replace(tzinfo=BRUSSELS).astimezone(UTC)


@pytest.mark.parametrize(("who", "local", "open_", "opens"), [
    (CELL_WHO, "2026-11-23T06:59", False, "2026-11-23T07:00"),
    (CELL_WHO, "2026-11-23T07:00", True, None),
    (CELL_WHO, "2026-11-23T21:59", True, None),
    (CELL_WHO, "2026-11-23T22:00", False, "2026-11-24T07:00"),
    # Daylight saving: the window keeps its wall-clock hours on both change days.
    (CELL_WHO, "2026-03-29T06:30", False, "2026-03-29T07:00"),
    (CELL_WHO, "2026-03-29T07:30", True, None),
    (CELL_WHO, "2026-10-25T06:59", False, "2026-10-25T07:00"),
    (CELL_WHO, "2026-10-25T21:30", True, None),
    (CLASS_WHO, "2026-11-23T12:30", False, "2026-11-23T13:00"),  # the lunch break
    (CLASS_WHO, "2026-11-27T16:00", False, "2026-11-30T08:30"),  # Friday after class: Monday morning
    (CLASS_WHO, "2026-11-28T10:00", False, "2026-11-30T08:30"),  # Saturday
    (CELL_WHO, "2026-12-25T12:00", False, "2026-12-26T07:00"),  # a closed day closes every kind
    (LIBRARY_WHO, "2026-12-25T12:00", False, "2026-12-26T00:00"),
    (LIBRARY_WHO, "2026-11-23T03:00", True, None),  # a kind without hours is open at any time
])
def test_opening_hours_in_wall_clock_time(who: Subject, local: str, open_: bool, opens: str | None) -> None:
    policy = snapshot()
    for decision in (decide_connect(RequestFacts("CONNECT", "learn.example.org", 443), who, policy, now=utc(local)),
                     decide_request(RequestFacts("GET", "learn.example.org", 443, "/"), who, policy,
                                    now=utc(local))):
        assert decision.allowed is open_, (local, decision.explanation)
        if not open_:
            assert decision.reasons[0].code is ReasonCode.TERMINAL_CLOSED
            assert decision.opens_at == (datetime.fromisoformat(opens) if opens else None)


def test_closed_wins_over_every_allow_and_is_explained() -> None:
    decision = decide_request(RequestFacts("GET", "learn.example.org", 443, "/"), CELL_WHO, snapshot(),
                              now=utc("2026-11-23T23:00"))
    assert decision.explanation == "terminal-closed: cell terminals are closed now; opens Tue 2026-11-24 07:00"


@pytest.mark.parametrize(("text", "line", "message"), [
    ("hours:\n  cell: [mon-sun 07:00-22:00]\n  kitchen: [mon 08:00-09:00]\n", 3, "'kitchen' is not a terminal kind"),
    ("hours:\n  cell: [mon-sun 22:00-07:00]\n", 2, "the end must be after the start"),
    ("hours:\n  cell: [weekdays 08:00-17:00]\n", 2, "must look like 'mon-fri 08:00-17:00'"),
    ("hours: [cell]\n", 1, "hours maps a terminal kind to its windows"),
    ("closed: [2026-12-25, christmas]\n", 1, "'christmas' is not a date like 2026-12-25"),
    ("rules: []\nopening: {}\n", 2, "unknown top-level key 'opening'"),
])
def test_hours_errors_name_the_line(text: str, line: int, message: str) -> None:
    result = parse_policy(text, "h.yaml")
    assert [(e.line, message in e.message) for e in result.errors] == [(line, True)], result.errors


def test_a_kind_given_hours_in_two_files_is_an_error_naming_both(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("hours:\n  cell: [mon-sun 07:00-22:00]\nclosed: [2026-12-25]\n")
    second.write_text("closed: [2027-01-01]\nhours:\n  classroom: [mon-fri 08:00-16:00]\n  cell: [mon 08:00-09:00]\n")
    result = check_files([first, second])
    assert [(e.source, e.line) for e in result.errors] == [(str(second), 4)]
    assert f"{first}:2" in result.errors[0].message
    second.write_text("closed: [2027-01-01]\nhours:\n  classroom: [mon-fri 08:00-16:00]\n")
    merged = check_files([first, second])
    assert merged.errors == [] and set(merged.hours.kinds) == {"cell", "classroom"}
    assert {d.isoformat() for d in merged.hours.closed} == {"2026-12-25", "2027-01-01"}


async def test_a_closed_terminal_shows_when_it_opens_and_the_denial_is_recorded(platform: Platform) -> None:
    """Today (in the facility) is made a closed day: the cell's browser gets the closed page, in its language."""
    zone = ZoneInfo(platform.settings["facility.timezone"])
    today = datetime.now(UTC).astimezone(zone).date()
    (platform.settings.policy_dir / "hours.yaml").write_text(f"closed: [{today.isoformat()}]\n")
    assert platform.up.kernel.policies.load()
    async with platform.client(CELL) as browser:
        await platform.login(browser)
    result = await curl(platform, "http://allowed.test/lesson")
    assert result.status == 403
    assert "This terminal is closed now" in result.body
    tomorrow = today + timedelta(days=1)
    english = regional("en", zone)  # as the portal writes it in the facility's country
    when = f"{format_date(tomorrow, 'full', locale=english)}, {format_time(time(0, 0), 'short', locale=english)}"
    assert f"It opens again on {when}." in result.body
    assert not platform.origin.saw("GET", "allowed.test", "/lesson")
    denied = await eventually_records(platform, tag="gateway:request:denied")
    assert denied[-1].reason.startswith("terminal-closed: cell terminals are closed now; opens ")


async def test_the_inmate_home_page_shows_the_terminals_hours_in_the_inmates_language(platform: Platform) -> None:
    import html
    import re

    from tests.helpers import OTHER_INMATE, OTHER_PIN

    zone = ZoneInfo(platform.settings["facility.timezone"])
    soon = datetime.now(UTC).astimezone(zone).date() + timedelta(days=3)
    (platform.settings.policy_dir / "hours.yaml").write_text(
        f"hours:\n  cell: [mon-fri 08:00-12:00, sat 10:00-11:30]\nclosed: [{soon.isoformat()}, 2020-01-01]\n")
    assert platform.up.kernel.policies.load()
    async with platform.client(CELL) as browser:
        await platform.login(browser, OTHER_INMATE, OTHER_PIN)  # Marie Dubois reads French
        async with browser.get(f"{platform.portal}/home") as resp:
            body = html.unescape(await resp.text())
    hours = re.search(r'<ul data-testid="hours">(.*?)</ul>', body, re.S)
    assert hours is not None
    assert re.findall(r"<li>([^<]+)</li>", hours.group(1)) == ["lundi – vendredi, 08:00 – 12:00",
                                                               "samedi, 10:00 – 11:30"]
    closed = re.search(r'<ul data-testid="closed-days">(.*?)</ul>', body, re.S)
    assert closed is not None and str(soon.year) in closed.group(1) and "2020" not in closed.group(1)


def test_a_rule_outside_its_window_says_when_it_opens_and_the_page_says_it_in_the_inmates_language() -> None:
    from gateway.blockpage import page_for

    policy = snapshot("rules:\n  - id: school\n    allow: [learn.example.org]\n"
                      "    windows: [mon-fri 08:30-12:00, mon-thu 13:00-16:00]\n")
    decision = decide_request(RequestFacts("GET", "learn.example.org", 443, "/"), CELL_WHO, policy,
                              now=utc("2026-11-27T12:30"))  # Friday lunchtime: no afternoon window on Fridays
    assert decision.reasons[0].code is ReasonCode.OUTSIDE_WINDOW
    assert decision.opens_at == datetime(2026, 11, 30, 8, 30)
    never = snapshot("rules:\n  - id: other\n    deny: [learn.example.org]\n")
    assert decide_request(RequestFacts("GET", "learn.example.org", 443, "/"), CELL_WHO, never,
                          now=utc("2026-11-27T12:30")).opens_at is None
    for language, words in (("en", "This site can be used again from Monday, 30 November 2026, 08:30."),
                            ("nl", "U kunt deze site weer gebruiken vanaf maandag 30 november 2026 om 08:30."),
                            ("fr", "Ce site sera de nouveau accessible à partir du lundi 30 novembre 2026 à 08:30."),
                            ("de", "Diese Seite kann ab Montag, 30. November 2026 um 08:30 wieder benutzt werden.")):
        page = page_for(decision, "https://learn.example.org/", "http://portal", language, policy).render().decode()
        assert words in page, (language, page)
