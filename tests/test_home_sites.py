"""Which sites the home page lists: the gateway's own decision for this inmate, terminal and moment (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from policies.decision import Subject
from policies.rules import parse_policy
from policies.snapshot import Snapshot
from portal.auth.sites import by_category, open_now

BRUSSELS = ZoneInfo("Europe/Brussels")
CELL = Subject("A100", frozenset({"learners"}), "cell-1", "cell", "s1")
POLICY = """\
hours:
  cell: [mon-fri 07:00-22:00]
rules:
  - id: school
    description: lessons
    allow: [learn.example.org, "*.cdn.example.org"]
    windows: [mon-fri 08:30-12:00]
    quota: learning
  - id: learners-jobs
    description: vacancies
    allow: [jobs.example.org]
    groups: [learners]
    quota: jobs
  - id: also-jobs
    description: the same site again
    allow: [jobs.example.org, www.cdn.example.org]
  - id: odd-port
    allow: [radio.example.org]
    ports: [8000]
  - id: webmail
    allow: [mail.example.org]
  - id: no-mail
    deny: [mail.example.org]
  - id: classroom
    allow: [class.example.org]
    terminals: [classroom]
  - id: old
    allow: [old.example.org]
    valid_until: 2026-01-01
"""


def _policy() -> Snapshot:
    result = parse_policy(POLICY, "home.yaml")
    assert result.errors == []
    return Snapshot.build(result.rules, timezone=BRUSSELS, hours=result.hours)


def at(local: str) -> datetime:
    return datetime.fromisoformat(local).replace(tzinfo=BRUSSELS).astimezone(UTC)


@pytest.mark.parametrize(("local", "expected"), [
    # Monday morning: the school rule's window is open.
    ("2026-11-23T09:00", [("learn.example.org", "https://learn.example.org/", "learning", "lessons"),
                          ("*.cdn.example.org", "", "learning", "lessons"),
                          ("jobs.example.org", "https://jobs.example.org/", "jobs", "vacancies"),
                          # Two rules allow it; the gateway charges the first, exact names before patterns.
                          ("www.cdn.example.org", "https://www.cdn.example.org/", "general", "the same site again"),
                          ("radio.example.org", "", "general", "")]),  # port 8000 only: no plain link
    # Monday afternoon: only what has no window; a name of another rule stays (allowed by that rule).
    ("2026-11-23T14:00", [("jobs.example.org", "https://jobs.example.org/", "jobs", "vacancies"),
                          ("www.cdn.example.org", "https://www.cdn.example.org/", "general", "the same site again"),
                          ("radio.example.org", "", "general", "")]),
    ("2026-11-28T09:00", []),  # Saturday: cell terminals are closed
])
def test_the_sites_open_now(local: str, expected: list[tuple[str, str, str, str]]) -> None:
    found = [(s.shown, s.url, s.category, s.description) for s in open_now(_policy(), CELL, at(local))]
    assert found == expected


def test_outside_the_rules_group_a_site_is_listed_under_the_rule_that_opens_it() -> None:
    stranger = Subject("B200", frozenset(), "cell-1", "cell", "s2")
    found = {s.shown: (s.category, s.description) for s in open_now(_policy(), stranger, at("2026-11-23T14:00"))}
    assert found["jobs.example.org"] == ("general", "the same site again")


def test_sites_are_grouped_by_category_in_name_order() -> None:
    groups = by_category(open_now(_policy(), CELL, at("2026-11-23T09:00")))
    assert [(category, [s.shown for s in sites]) for category, sites in groups] == [
        ("general", ["www.cdn.example.org", "radio.example.org"]), ("jobs", ["jobs.example.org"]),
        ("learning", ["learn.example.org", "*.cdn.example.org"])]
