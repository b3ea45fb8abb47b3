"""Policy sources compile into one snapshot; a broken source never replaces the snapshot in force."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.db.engine import make_engine, session_factory, upgrade, utcnow
from gatehouse.db.models import PolicyRule
from gatehouse.policy_store import PolicyHolder


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def test_files_and_database_rules_form_one_snapshot(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - id: a\n    allow: [a.example.org]\n")
    with factory.begin() as db:
        db.add(PolicyRule(rule_id="from-portal", spec={"allow": ["b.example.org"], "groups": ["learners"]},
                          created_at=utcnow(), created_by="teacher1"))
    holder = PolicyHolder(tmp_path, factory, ZoneInfo("Europe/Brussels"))
    assert holder.load(), holder.errors
    assert {r.id for r in holder.snapshot.rules} == {"a", "from-portal"}
    assert holder.snapshot.matching("b.example.org")[0].groups == frozenset({"learners"})
    assert holder.snapshot.timezone == ZoneInfo("Europe/Brussels")


def test_a_broken_file_keeps_the_snapshot_in_force(tmp_path: Path) -> None:
    good = tmp_path / "site.yaml"
    good.write_text("rules:\n  - id: a\n    allow: [a.example.org]\n")
    holder = PolicyHolder(tmp_path)
    assert holder.load()
    before = holder.snapshot
    good.write_text("rules:\n  - id: a\n    allow: [a.example.org, '*.com']\n")
    assert not holder.load()
    assert holder.snapshot is before
    assert [str(e) for e in holder.errors] == [f"{good}:3: rule 'a': '*.com' would cover a whole public suffix "
                                              "(com is one); name the site"]
    good.write_text("rules:\n  - id: a\n    allow: [b.example.org]\n")
    assert holder.load()
    assert holder.snapshot is not before and holder.snapshot.matching("b.example.org")


def test_ids_must_be_unique_across_sources(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - id: same\n    allow: [a.example.org]\n")
    (tmp_path / "b.yaml").write_text("rules:\n  - id: same\n    allow: [b.example.org]\n")
    holder = PolicyHolder(tmp_path, factory)
    assert not holder.load()
    assert "rule id 'same' is used in" in str(holder.errors[0])


def test_snapshot_versions_are_stable_across_loads(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - id: a\n    allow: [a.example.org]\n    methods: [GET, POST, HEAD]\n")
    first, second = PolicyHolder(tmp_path), PolicyHolder(tmp_path)
    assert first.load() and second.load()
    assert first.snapshot.version == second.snapshot.version != "empty"


def test_a_policy_change_is_described_field_by_field_and_moving_a_rule_is_no_change() -> None:
    from gatehouse.policy_store import describe_change
    from policies.rules import parse_policy
    from policies.snapshot import Snapshot

    def snap(text: str) -> Snapshot:
        result = parse_policy(text, "p.yaml")
        assert result.errors == []
        return Snapshot.build(result.rules, version=text[-6:], hours=result.hours)

    before = snap("rules:\n  - id: a\n    allow: [a.test]\n  - id: b\n    allow: [b.test]\n")
    moved = snap("rules:\n  - id: b\n    allow: [b.test]\n  - id: a\n    allow: [a.test]\n")
    assert describe_change(before, moved) == f"{before.version} -> {moved.version}"
    after = snap("hours:\n  cell: [mon-fri 08:00-12:00]\nrules:\n  - id: a\n    allow: [a.test, c.test]\n"
                 "    methods: [GET, POST]\n    groups: [learners]\n  - id: d\n    deny: [d.test]\n")
    assert describe_change(before, after) == (
        f"{before.version} -> {after.version}; added d; removed b; "
        "changed a (hosts a.test -> a.test,c.test; methods GET,HEAD -> GET,POST; groups - -> learners); "
        "hours open at any time -> cell: mon-fri 08:00-12:00")
