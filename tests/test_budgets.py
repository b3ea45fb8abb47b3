"""Budgets of daily minutes in policy files: which profile holds for whom, and errors that name their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.policy_store import PolicyHolder, check_files, describe_change
from policies.rules import parse_policy

PROFILES = """\
quotas:
  default: {general: 60, jobs: 120, learning: unlimited}
  groups:
    School: {general: 90, jobs: 30}
    night: {general: unlimited}
  inmates:
    a1: {general: 15}
"""


@pytest.mark.parametrize(("inmate", "groups", "category", "budget"), [
    ("B2", [], "general", 60),                        # the default profile
    ("B2", [], "learning", None),                     # unlimited, said so
    ("B2", [], "housing", None),                      # given nowhere: unlimited
    ("B2", ["school"], "general", 90),                # a group names it: its budget, even above the default
    ("B2", ["school"], "jobs", 30),                   # ... and below it: the group's profile replaces the default
    ("B2", ["school", "night"], "general", None),     # the most generous group wins; unlimited is the most
    ("B2", ["unknown"], "general", 60),               # a group without a profile changes nothing
    ("A1", ["school", "night"], "general", 15),       # the inmate's own override wins over every group
    ("A1", [], "jobs", 120),                          # an override of one category leaves the others
])
def test_which_budget_holds(inmate: str, groups: list[str], category: str, budget: int | None) -> None:
    parsed = parse_policy(PROFILES, "quotas.yaml")
    assert parsed.errors == []
    assert parsed.budgets.budget(inmate, groups, category) == budget


@pytest.mark.parametrize(("text", "line", "message"), [
    ("quotas:\n  default: {general: 1441}\n", 2, "quotas.default.general: '1441' must be a number of minutes from 0"),
    ("quotas:\n  default: {general: -5}\n", 2, "quotas.default.general: '-5' must be a number of minutes"),
    ("quotas:\n  default: {general: lots}\n", 2, "or unlimited"),
    ("quotas:\n  default: [general]\n", 2, "quotas.default maps quota categories to minutes a day"),
    ("quotas:\n  default: {general: 1, general: 2}\n", 2, "category 'general' is given twice"),
    ("quotas:\n  default: {Gen eral: 1}\n", 2, "quota category 'gen eral' must be a name"),
    ("quotas:\n  everyone: {general: 1}\n", 2, "quotas: unknown key 'everyone' (known: default, groups, inmates)"),
    ("quotas:\n  groups:\n    school: 60\n", 3, "quotas.groups.school maps quota categories to minutes"),
    ("quotas:\n  groups:\n    a: {general: 1}\n    A: {general: 2}\n", 4, "quotas.groups: a is given twice"),
    ("quotas:\n  inmates: [A1]\n", 2, "quotas.inmates maps a name to its budgets"),
    ("rules:\n  - id: r\n    allow: [a.org]\n    quota: 'no/slash'\n", 4, "quota category 'no/slash' must be a name"),
])
def test_budget_errors_name_the_line(text: str, line: int, message: str) -> None:
    errors = parse_policy(text, "quotas.yaml").errors
    assert len(errors) == 1, errors
    assert errors[0].line == line and message in errors[0].message, errors[0]


def test_a_profile_is_given_in_one_file_only(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("quotas:\n  default: {general: 60}\n  groups:\n    school: {general: 9}\n")
    (tmp_path / "b.yaml").write_text("quotas:\n  groups:\n    night: {general: 5}\n    school: {jobs: 1}\n")
    errors = check_files(sorted(tmp_path.iterdir())).errors
    assert [(e.line, e.message) for e in errors] == [
        (4, f"quotas for group school are given already in {tmp_path / 'a.yaml'}:4")]


def test_profiles_from_several_files_join_and_a_change_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("quotas:\n  default: {general: 60}\n")
    (tmp_path / "b.yaml").write_text("quotas:\n  inmates:\n    A1: {general: 5}\n")
    holder = PolicyHolder(tmp_path)
    assert holder.load()
    before = holder.snapshot
    assert before.budgets.budget("A1", [], "general") == 5 and before.budgets.budget("B2", [], "general") == 60
    (tmp_path / "a.yaml").write_text("quotas:\n  default: {general: 45}\n")
    assert holder.load()
    assert holder.snapshot.version != before.version
    assert describe_change(before, holder.snapshot).endswith(
        "quotas default general=60; inmate A1 general=5 -> default general=45; inmate A1 general=5")
