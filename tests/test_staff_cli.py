"""`gatehouse staff` as an administrator runs it: a real process on a real data dir, then the database checked."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gatehouse import staff as accounts
from gatehouse.cli import main
from gatehouse.db.engine import utcnow
from gatehouse.db.models import AuditRecord, RecoveryCode, StaffAccount, StaffSession
from gatehouse.kernel import Kernel
from gatehouse.settings import load_settings
from tests.test_cli import gatehouse

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
PASSWORD = "correct horse battery staple"
POLICY = accounts.StaffSessionPolicy(idle=timedelta(minutes=15), max_age=timedelta(hours=10))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("staff-cli") / "data"
    result = gatehouse(path, "init", "--facility", "Haren", "--timezone", "Europe/Brussels")
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def factory(data_dir: Path) -> Iterator[sessionmaker[Session]]:
    kernel = Kernel.open(load_settings(data_dir))
    yield kernel.factory
    kernel.engine.dispose()


def add(data_dir: Path, username: str, *roles: str, password: str = PASSWORD) -> str:
    """The secret of the provisioning URI `staff add` printed."""
    args = [arg for role in roles for arg in ("--role", role)]
    result = gatehouse(data_dir, "staff", "add", "--username", username, *args, "--password-stdin",
                       stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    return uri_secret(result.stdout)


def uri_secret(stdout: str) -> str:
    match = re.search(r"otpauth://\S+", stdout)
    assert match, f"no provisioning URI in: {stdout}"
    totp = pyotp.parse_uri(match.group(0))
    assert isinstance(totp, pyotp.TOTP)
    return str(totp.secret)


def test_add_prints_the_provisioning_uri_of_the_stored_secret(data_dir: Path,
                                                              factory: sessionmaker[Session]) -> None:
    result = gatehouse(data_dir, "staff", "add", "--username", "Alice.Martens", "--role", "education",
                       "--role", "security", "--name", "Alice  Martens", "--language", "nl", "--password-stdin",
                       stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "added staff account alice.martens (education,security)" in result.stdout
    uri = re.search(r"otpauth://\S+", result.stdout)
    assert uri and uri.group(0).startswith("otpauth://totp/Gatehouse%20Haren:alice.martens?")
    totp = pyotp.parse_uri(uri.group(0))
    assert isinstance(totp, pyotp.TOTP) and totp.issuer == "Gatehouse Haren" and totp.name == "alice.martens"
    grouped = re.search(r"key: ([A-Z2-7 ]+)", result.stdout)
    assert grouped and grouped.group(1).replace(" ", "") == totp.secret
    assert PASSWORD not in result.stdout + result.stderr
    with factory() as db:
        account = db.scalars(select(StaffAccount).where(StaffAccount.username == "alice.martens")).one()
        assert account.totp_secret == totp.secret
        assert account.role_names == ["education", "security"]
        assert account.display_name == "Alice Martens" and account.language == "nl"
        assert account.totp_enrolled_at is None and not account.disabled
        assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
    assert accounts.verify_password(factory, "alice.martens", PASSWORD) == account.id
    assert accounts.verify_password(factory, "alice.martens", PASSWORD + "x") is None
    listed = gatehouse(data_dir, "staff", "list").stdout
    assert re.search(r"alice\.martens\s+education,security\s+pending\s+active\s+Alice Martens", listed)
    with factory() as db:
        tags = db.scalars(select(AuditRecord.reason).where(AuditRecord.tag == "admin:staff:added")).all()
    assert "alice.martens roles=education,security" in tags


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """The command in this process, quicker than a new interpreter: (exit code, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith("GATEHOUSE_")]:
        monkeypatch.delenv(name)

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            code = main([*argv, "--data-dir", str(data_dir)])
        except SystemExit as exc:  # argparse refuses before any handler runs
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--username", "x", "--role", "admin"], PASSWORD, "a username is 2-64 lower-case letters"),
    (["--username", "bad name", "--role", "admin"], PASSWORD, "a username is 2-64 lower-case letters"),
    (["--username", "a" * 65, "--role", "admin"], PASSWORD, "a username is 2-64 lower-case letters"),
    (["--username", "bob", "--role", "janitor"], PASSWORD, "invalid choice: 'janitor'"),
    (["--username", "bob"], PASSWORD, "the following arguments are required: --role"),
    (["--username", "bob", "--role", "admin"], "short pass", "a password has at least 12 characters"),
    (["--username", "bob", "--role", "admin"], "my name is bob, ok?", "must not contain the username"),
    (["--username", "bob", "--role", "admin"], "", "no password on standard input"),
    (["--username", "bob", "--role", "admin", "--language", "xx"], PASSWORD, "invalid choice: 'xx'"),
])
def test_add_refuses_bad_input_with_a_clear_error(cli: Run, factory: sessionmaker[Session], args: list[str],
                                                  stdin: str, message: str) -> None:
    code, out, err = cli("staff", "add", *args, "--password-stdin", stdin=stdin + "\n")
    assert code == 2
    assert message in err
    assert "Traceback" not in err and "otpauth://" not in out
    with factory() as db:
        assert db.scalar(select(StaffAccount.id).where(StaffAccount.username.in_(["x", "bob", "a" * 65]))) is None


def test_add_refuses_a_username_taken_in_another_case(cli: Run, factory: sessionmaker[Session]) -> None:
    assert cli("staff", "add", "--username", "dora", "--role", "admin", "--password-stdin",
               stdin=PASSWORD + "\n")[0] == 0
    code, _, err = cli("staff", "add", "--username", "DORA", "--role", "security", "--password-stdin",
                       stdin="another good password\n")
    assert code == 2 and "a staff account 'dora' exists already" in err
    assert accounts.verify_password(factory, "dora", PASSWORD) is not None


def enrolled_with_a_session(factory: sessionmaker[Session], username: str) -> tuple[int, str]:
    """The account as after a first login: enrolled, a used step, ten recovery codes, a full session."""
    with factory.begin() as db:
        account = accounts.find_staff(db, username)
        account.totp_enrolled_at, account.totp_last_step = utcnow(), 1234
        account_id = account.id
    accounts.new_recovery_codes(factory, account_id, utcnow())
    token = accounts.start_session(factory, POLICY, account_id, "127.0.0.1", utcnow())
    return account_id, accounts.promote(factory, POLICY, token, utcnow())


def test_reset_2fa_gives_a_new_secret_and_ends_codes_and_sessions(data_dir: Path,
                                                                  factory: sessionmaker[Session]) -> None:
    old = add(data_dir, "erik", "security")
    account_id, token = enrolled_with_a_session(factory, "erik")
    assert accounts.resolve_session(factory, POLICY, token, utcnow()) is not None

    result = gatehouse(data_dir, "staff", "reset-2fa", "--username", "Erik")
    assert result.returncode == 0, result.stderr
    assert "erik: two-factor reset" in result.stdout
    new = uri_secret(result.stdout)
    assert new != old
    with factory() as db:
        account = db.get(StaffAccount, account_id)
        assert account is not None and account.totp_secret == new
        assert account.totp_enrolled_at is None and account.totp_last_step is None
        assert db.scalars(select(RecoveryCode).where(RecoveryCode.account_id == account_id)).all() == []
        reasons = db.scalars(select(StaffSession.end_reason).where(StaffSession.account_id == account_id)).all()
    assert accounts.resolve_session(factory, POLICY, token, utcnow()) is None
    assert "totp-reset" in reasons and None not in reasons
    assert "pending" in next(line for line in gatehouse(data_dir, "staff", "list").stdout.splitlines()
                             if line.startswith("erik "))


@pytest.mark.parametrize("action", [["reset-2fa"], ["disable"], ["enable"], ["set-roles", "--role", "admin"],
                                    ["set-password", "--password-stdin"]])
def test_commands_on_an_unknown_account_say_so(cli: Run, action: list[str]) -> None:
    code, _, err = cli("staff", *action, "--username", "nobody", stdin=PASSWORD + "\n")
    assert code == 2 and "gatehouse: no staff account 'nobody'" in err


def test_set_roles_set_password_disable_and_enable(cli: Run, factory: sessionmaker[Session]) -> None:
    assert cli("staff", "add", "--username", "fien", "--role", "education", "--role", "supervisor",
               "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    account_id, token = enrolled_with_a_session(factory, "fien")

    code, out, _ = cli("staff", "set-roles", "--username", "fien", "--role", "supervisor", "--role", "admin")
    assert code == 0 and "fien: roles admin,supervisor" in out
    who = accounts.resolve_session(factory, POLICY, token, utcnow())
    assert who is not None and who.roles == {"admin", "supervisor"}, "roles apply to open sessions at once"

    code, _, err = cli("staff", "set-password", "--username", "fien", "--password-stdin", stdin="short\n")
    assert code == 2 and "at least 12 characters" in err
    assert accounts.resolve_session(factory, POLICY, token, utcnow()) is not None, "a refused change ends nothing"
    code, out, err = cli("staff", "set-password", "--username", "fien", "--password-stdin",
                         stdin="a brand new passphrase\n")
    assert code == 0, err
    assert accounts.resolve_session(factory, POLICY, token, utcnow()) is None
    assert accounts.verify_password(factory, "fien", PASSWORD) is None
    assert accounts.verify_password(factory, "fien", "a brand new passphrase") == account_id

    token = accounts.promote(factory, POLICY, accounts.start_session(factory, POLICY, account_id, "127.0.0.1",
                                                                     utcnow()), utcnow())
    assert cli("staff", "disable", "--username", "fien")[0] == 0
    assert accounts.resolve_session(factory, POLICY, token, utcnow()) is None
    assert accounts.verify_password(factory, "fien", "a brand new passphrase") is None
    assert re.search(r"^fien\s.*\sdisabled\s", cli("staff", "list")[1], re.MULTILINE)
    assert cli("staff", "enable", "--username", "fien")[0] == 0
    assert accounts.verify_password(factory, "fien", "a brand new passphrase") == account_id
    with factory() as db:
        reasons = set(db.scalars(select(StaffSession.end_reason).where(StaffSession.account_id == account_id)))
        changes = db.scalars(select(AuditRecord.reason).where(AuditRecord.tag == "admin:staff:changed")).all()
    assert {"password-changed", "disabled"} <= reasons
    assert {"fien roles education,supervisor -> admin,supervisor", "fien password", "fien disabled",
            "fien enabled"} <= set(changes)
