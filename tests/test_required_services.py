"""With GATEHOUSE_TEST_REQUIRE_SERVICES set (as CI sets it), a missing service stops the run instead of
skipping the tests that need it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           "tests/test_policy_warnings.py"], cwd=ROOT, env=base | env, capture_output=True,
                          text=True, timeout=120)


def test_a_missing_browser_or_redis_fails_the_run_when_services_are_required(tmp_path: Path) -> None:
    empty = tmp_path / "bin"  # a PATH with no chromium, curl or redis-server on it
    empty.mkdir()
    result = run_pytest({"GATEHOUSE_TEST_REQUIRE_SERVICES": "1", "PATH": str(empty),
                         "GATEHOUSE_TEST_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"})
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error: nothing ran
    for what in ("GATEHOUSE_TEST_REDIS_URL is not set", "Chromium is not installed", "curl is not installed",
                 "redis-server is not installed", "pdftotext is not installed", "espeak-ng is not installed"):
        assert what in result.stderr, (what, result.stderr)
    assert "GATEHOUSE_TEST_POSTGRES_URL" not in result.stderr


def test_without_the_variable_a_missing_service_only_skips() -> None:
    result = run_pytest({"PATH": os.environ.get("PATH", "")})
    assert result.returncode == 0, result.stdout + result.stderr
