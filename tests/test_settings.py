"""Settings: one table, read once; bad values name the setting and the file; every setting documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatehouse.settings import SETTINGS, Resolve, SettingsError, default_config_text, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings["proxy.port"] == 3128
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'gatehouse.db'}"
    assert settings.portal_url == "http://127.0.0.1:8080"


def test_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "gatehouse.toml").write_text('[proxy]\nport = 3200\nresolve = ["a.test=127.0.0.1:81"]\n')
    settings = load_settings(tmp_path, environ={"GATEHOUSE_DATABASE_URL": "postgresql+psycopg://db/x"})
    assert settings["proxy.port"] == 3200
    assert settings["proxy.resolve"] == (Resolve("a.test", "127.0.0.1", 81),)
    assert settings.database_url == "postgresql+psycopg://db/x"
    assert load_settings(tmp_path, environ={"GATEHOUSE_PROXY_PORT": "3300"})["proxy.port"] == 3300


@pytest.mark.parametrize(("text", "env", "message"), [
    ("[proxy]\nport = 70000\n", {}, "gatehouse.toml: setting proxy.port = 70000: must be a port number"),
    ("[facility]\ntimezone = \"Mars/Olympus\"\n", {}, "setting facility.timezone = 'Mars/Olympus': unknown time zone"),
    ("[proxy]\nprot = 1\n", {}, "unknown setting proxy.prot"),
    ("[proxy\n", {}, "gatehouse.toml: Expected ']'"),
    ("", {"GATEHOUSE_PORTAL_PORT": "http"}, "environment GATEHOUSE_PORTAL_PORT: setting portal.port = 'http'"),
    ("", {"GATEHOUSE_PROXY_RESOLVE": "nohost"}, "expected HOST=ADDR:PORT"),
    ("", {"GATEHOUSE_DATABASE_URL": "1"}, ""),
])
def test_bad_values_name_the_setting_and_where(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    (tmp_path / "gatehouse.toml").write_text(text)
    if not message:
        load_settings(tmp_path, environ=env)  # a valid value, for contrast
        return
    with pytest.raises(SettingsError) as error:
        load_settings(tmp_path, environ=env)
    assert message in str(error.value)


def test_secret_values_are_not_printed(tmp_path: Path) -> None:
    (tmp_path / "gatehouse.toml").write_text("[database]\nurl = 5\n")
    with pytest.raises(SettingsError) as error:
        load_settings(tmp_path, environ={})
    assert "(hidden)" in str(error.value) and "5" not in str(error.value).split("=")[-1]


def test_default_file_lists_every_setting_and_parses(tmp_path: Path) -> None:
    text = default_config_text({"facility.name": "Haren"})
    for setting in SETTINGS:
        assert setting.env in text and setting.help in text
    (tmp_path / "gatehouse.toml").write_text(text)
    assert load_settings(tmp_path, environ={})["facility.name"] == "Haren"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [s.name for s in SETTINGS if not re.search(rf"`{re.escape(s.name)}`", readme)]
    assert missing == []
