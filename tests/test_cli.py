"""The `gatehouse` command as an administrator runs it: a real process, a real data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def gatehouse(data_dir: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "gatehouse.cli", *args, "--data-dir", str(data_dir)],
                          input=stdin, capture_output=True, text=True, timeout=120, env=full_env)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "data"
    result = gatehouse(path, "init", "--facility", "Haren", "--timezone", "Europe/Brussels")
    assert result.returncode == 0, result.stderr
    return path


def test_init_creates_settings_database_and_ca(data_dir: Path) -> None:
    assert 'name = "Haren"' in (data_dir / "gatehouse.toml").read_text()
    assert (data_dir / "gatehouse.db").exists()
    assert (data_dir / "ca" / "gatehouse-ca-cert.pem").read_text().startswith("-----BEGIN CERTIFICATE")
    assert oct((data_dir / "ca" / "mitmproxy-ca.pem").stat().st_mode & 0o777) == "0o600"
    assert oct((data_dir / "secret.key").stat().st_mode & 0o777) == "0o600"
    again = gatehouse(data_dir, "init")
    assert again.returncode == 0 and "created the facility CA" not in again.stdout


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "gatehouse.cli", "--help"], capture_output=True, text=True).stdout
    for command in ("init", "run", "demo", "db", "terminal", "inmate", "policy", "audit"):
        assert command in out
    sub = subprocess.run([sys.executable, "-m", "gatehouse.cli", "inmate", "import", "--help"],
                         capture_output=True, text=True)
    assert sub.returncode == 0 and "imports nothing" in sub.stdout


def test_terminals(data_dir: Path) -> None:
    added = gatehouse(data_dir, "terminal", "add", "--name", "cell-7", "--address", "10.2.0.7", "--kind", "cell",
                      "--unit", "B")
    assert added.returncode == 0, added.stderr
    clash = gatehouse(data_dir, "terminal", "add", "--name", "cell-8", "--address", "10.2.0.7", "--kind", "cell")
    assert clash.returncode == 2 and "10.2.0.7 belongs to terminal 'cell-7'" in clash.stderr
    bad = gatehouse(data_dir, "terminal", "add", "--name", "x", "--address", "not-an-ip", "--kind", "cell")
    assert bad.returncode == 2 and "'not-an-ip' is not an IP address" in bad.stderr
    listed = gatehouse(data_dir, "terminal", "list").stdout
    assert "cell-7" in listed and "10.2.0.7" in listed
    assert gatehouse(data_dir, "terminal", "remove", "--name", "cell-7").returncode == 0
    assert "cell-7" not in gatehouse(data_dir, "terminal", "list").stdout


def test_inmate_add_reads_pin_from_stdin(data_dir: Path) -> None:
    result = gatehouse(data_dir, "inmate", "add", "--number", "c300", "--name", "Ana Lopes", "--group", "jobs",
                       "--language", "fr", "--pin-stdin", stdin="4321\n")
    assert result.returncode == 0, result.stderr
    listed = gatehouse(data_dir, "inmate", "list").stdout
    assert "C300" in listed and "Ana Lopes" in listed and "jobs" in listed
    assert "4321" not in listed
    bad = gatehouse(data_dir, "inmate", "add", "--number", "c301", "--name", "X", "--pin-stdin", stdin="12\n")
    assert bad.returncode == 2 and "4 to 12 digits" in bad.stderr


def test_bad_roster_imports_nothing_and_names_the_lines(data_dir: Path, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("offender_id;last_name;first_name;language;groups\n"
                      "D1;Janssens;Piet;nl;learners\n"
                      "D2;;;fr;\n"
                      "D3;Weber;Anna;xx;\n"
                      "D1;Dup;Li;en;\n"
                      "D5;Ok;Tom;de;a b\n", encoding="utf-8")
    result = gatehouse(data_dir, "inmate", "import", str(roster))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"{roster}:3: name is empty" in lines
    assert f"{roster}:4: language 'xx' is not one of en, nl, fr, de" in lines
    assert f"{roster}:5: inmate D1 is on line 2 already" in lines
    assert any(line.startswith(f"{roster}:6: group 'a b'") for line in lines)
    assert "nothing was imported" in result.stderr
    assert "D1" not in gatehouse(data_dir, "inmate", "list").stdout


def test_good_roster_imports_and_updates(data_dir: Path, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffNumber,Name,Language,Groups,PIN\nE1,Eva Maes,nl,learners|jobs,5678\nE2,Bo Li,en,,\n",
                      encoding="utf-8")
    first = gatehouse(data_dir, "inmate", "import", str(roster))
    assert first.returncode == 0, first.stderr
    assert "2 added, 0 updated" in first.stdout
    roster.write_text("number,name,language\nE1,Eva Maes-Peeters,nl\n", encoding="utf-8")
    second = gatehouse(data_dir, "inmate", "import", str(roster))
    assert "0 added, 1 updated" in second.stdout
    assert "Eva Maes-Peeters" in gatehouse(data_dir, "inmate", "list").stdout


def test_policy_check(tmp_path: Path, data_dir: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - id: khan-academy\n    allow: [www.khanacademy.org, '*.kastatic.org']\n"
                    "  - id: no-mail\n    deny: [mail.example.org]\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - id: ok\n    allow: [a.org]\n  - id: two\n    allow: ['*.com']\n    colour: x\n")
    ok = gatehouse(data_dir, "policy", "check", str(good))
    assert ok.returncode == 0 and "2 rule(s)" in ok.stdout
    bad = gatehouse(data_dir, "policy", "check", str(good), str(broken), str(tmp_path / "missing.yaml"))
    assert bad.returncode == 1
    assert f"{broken}:6: unknown key 'colour'" in bad.stderr
    assert f"{tmp_path / 'missing.yaml'}:1: no such file" in bad.stderr


def test_audit_export_jsonl(data_dir: Path) -> None:
    result = gatehouse(data_dir, "audit", "export", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    records = [r for r in lines if r["kind"] == "record"]
    assert {r["kind"] for r in lines} == {"record", "checkpoint"}  # the copy carries its signed checkpoints
    tags = [r["tag"] for r in records]
    assert "admin:terminal:added" in tags and "admin:inmate:added" in tags
    assert all(set(r) >= {"id", "at", "plane", "tag", "actor", "decision", "reason"} for r in records)
    again = gatehouse(data_dir, "audit", "export", "--since", "2999-01-01T00:00")
    assert again.stdout == ""
    again = [json.loads(line) for line in gatehouse(data_dir, "audit", "export").stdout.splitlines()]
    assert [r for r in again if r["kind"] == "record"][-1]["tag"] == "audit:records:exported"


def test_bad_settings_stop_with_the_setting_named(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "gatehouse.toml").write_text("[proxy]\nport = 99999\n")
    result = gatehouse(folder, "terminal", "list")
    assert result.returncode == 2
    assert "gatehouse.toml: setting proxy.port = 99999" in result.stderr


def test_uninitialised_database_is_reported(tmp_path: Path) -> None:
    result = gatehouse(tmp_path / "empty", "inmate", "list")
    assert result.returncode == 2 and "no database at" in result.stderr and "gatehouse init" in result.stderr


def test_policy_explain(tmp_path: Path) -> None:
    data_dir = tmp_path / "explain"
    assert gatehouse(data_dir, "init").returncode == 0
    gatehouse(data_dir, "terminal", "add", "--name", "class-1", "--address", "10.0.0.2", "--kind", "classroom")
    gatehouse(data_dir, "inmate", "add", "--number", "A1", "--name", "Jo", "--group", "learners")
    (data_dir / "policies" / "example.yaml").write_text(
        "rules:\n  - id: school\n    allow: [learn.example.org]\n    groups: [learners]\n    terminals: [classroom]\n"
        "    windows: ['mon-fri 08:00-16:00']\n    paths: [/courses]\n"
        "  - id: no-forum\n    deny: [learn.example.org]\n    paths: [/courses/forum]\n")
    base = ["policy", "explain", "--inmate", "a1", "--terminal", "class-1", "--at", "2026-11-23T09:00"]
    allowed = gatehouse(data_dir, *base, "--url", "https://learn.example.org/courses/1")
    assert allowed.returncode == 0, allowed.stderr
    assert "decision: ALLOW (inspect)" in allowed.stdout and "rule-allow[school]" in allowed.stdout
    forum = gatehouse(data_dir, *base, "--url", "https://learn.example.org/courses/forum/x")
    assert forum.returncode == 1 and "rule-deny[no-forum]" in forum.stdout
    evening = gatehouse(data_dir, "policy", "explain", "--inmate", "A1", "--terminal", "class-1",
                        "--at", "2026-11-23T18:30", "--url", "https://learn.example.org/courses/1")
    assert evening.returncode == 1 and "outside mon-fri 08:00-16:00" in evening.stdout
    post = gatehouse(data_dir, *base, "--method", "POST", "--url", "https://learn.example.org/courses/1")
    assert post.returncode == 1 and "POST is not allowed" in post.stdout
    bad = gatehouse(data_dir, *base, "--url", "ftp://x")
    assert bad.returncode == 2 and "must be an http:// or https:// URL" in bad.stderr
    unknown = gatehouse(data_dir, "policy", "explain", "--inmate", "Z9", "--url", "http://a.org/")
    assert unknown.returncode == 2 and "no inmate with number 'Z9'" in unknown.stderr
