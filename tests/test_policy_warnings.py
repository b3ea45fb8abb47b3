"""`gatehouse policy check` warns about keys that can never match yet (visit before visits exist), naming file
and line, and still passes the files; a course scope is live since enrolments exist, so it draws no warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.policy_store import PolicyHolder, check_files, dormant, policy_files
from tests.test_cli import gatehouse

POLICY = """\
rules:
  - id: reading
    description: only for the reading course
    allow: [read.example.org]
    courses: [reading-101]
  - id: relay
    allow: [turn.prison.example]
    mode: passthrough
    visit: true
  - id: school
    allow: [school.example.org]
    groups: [learners]
    courses: [maths]
  - id: plain
    allow: [jobs.example.org]
    visit: false
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "policies"
    path.mkdir()
    (path / "learning.yaml").write_text(POLICY, encoding="utf-8")
    (path / "other.yaml").write_text("rules:\n  - id: wiki\n    allow: [wiki.example.org]\n", encoding="utf-8")
    return path


def test_each_key_that_cannot_match_yet_is_named_at_its_line(folder: Path) -> None:
    result = check_files(policy_files(folder))
    assert result.errors == []
    source = str(folder / "learning.yaml")
    found = [(w.source, w.line, w.message.split(":")[0:3]) for w in dormant(result)]
    assert found == [(source, 9, ["warning", " rule 'relay'", " visit"])]


def test_policy_check_warns_but_passes(folder: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert gatehouse(data_dir, "init", "--facility", "Haren").returncode == 0
    result = gatehouse(data_dir, "policy", "check", *(str(p) for p in policy_files(folder)))
    assert result.returncode == 0, result.stderr
    assert "ok: 5 rule(s) in 2 file(s), 1 warning(s)" in result.stdout
    learning = folder / "learning.yaml"
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{learning}:9: warning: rule 'relay': visit: video visits do not exist yet")
    assert len(lines) == 1 and "other.yaml" not in result.stderr  # courses, visit: false and plain rules: nothing
    # An error still fails the check, with the warnings beside it.
    (folder / "broken.yaml").write_text("rules:\n  - id: x\n    allow: ['*.com']\n", encoding="utf-8")
    failed = gatehouse(data_dir, "policy", "check", *(str(p) for p in policy_files(folder)))
    assert failed.returncode == 1 and "1 error(s)" in failed.stderr and "1 warning" not in failed.stdout
    assert f"{learning}:9: warning:" in failed.stderr


def test_the_running_policy_loads_them_and_logs_the_warnings(folder: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    holder = PolicyHolder(folder)
    with caplog.at_level("WARNING", logger="gatehouse.policy_store"):
        assert holder.load()
    assert {r.id for r in holder.snapshot.rules} == {"reading", "relay", "school", "plain", "wiki"}
    assert sum("warning: rule" in message for message in caplog.messages) == 1
