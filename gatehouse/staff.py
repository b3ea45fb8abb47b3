"""Staff accounts: argon2 passwords, mandatory TOTP with replay refused atomically, recovery codes, sessions.

Synchronous, like the rest of the kernel's storage; the portal calls these from a worker thread.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from gatehouse import otp
from gatehouse.db.models import RecoveryCode, StaffAccount, StaffAccountRole, StaffNotice, StaffRole, StaffSession
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.settings import LANGUAGES

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PASSWORD_MIN = 12
PASSWORD_MAX = 1024
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password of anyone")


class Stage(enum.StrEnum):
    PASSWORD = "password"
    """The password was right; the second factor (or its enrolment) is still to come."""
    FULL = "full"


class EndReason(enum.StrEnum):
    LOGOUT = "logout"
    IDLE = "idle"
    EXPIRED = "expired"
    PASSWORD_CHANGED = "password-changed"
    DISABLED = "disabled"
    TOTP_RESET = "totp-reset"
    PROMOTED = "promoted"


class NoticeKind(enum.StrEnum):
    TOTP_REPLAYED = "totp-replayed"
    RECOVERY_CODE_USED = "recovery-code-used"


@dataclass(frozen=True, slots=True)
class StaffIdentity:
    session_id: int
    account_id: int
    username: str
    display_name: str
    roles: frozenset[str]
    language: str
    stage: Stage
    enrolled: bool
    created_at: datetime

    def has(self, *roles: str) -> bool:
        return self.stage is Stage.FULL and bool(self.roles.intersection(roles))


def check_username(username: str) -> str:
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise InvalidInput("a username is 2-64 lower-case letters, digits, '.', '_' or '-'")
    return username


def check_roles(roles: list[str]) -> list[str]:
    known = {r.value for r in StaffRole}
    clean = sorted({r.strip().lower() for r in roles if r.strip()})
    if not clean:
        raise InvalidInput(f"give at least one role: {', '.join(sorted(known))}")
    unknown = [r for r in clean if r not in known]
    if unknown:
        raise InvalidInput(f"role {unknown[0]!r} is not one of {', '.join(sorted(known))}")
    return clean


def check_password(password: str, username: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"a password has at least {PASSWORD_MIN} characters")
    if username and username.lower() in password.lower():
        raise InvalidInput("a password must not contain the username")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"a password has at most {PASSWORD_MAX} characters")
    return password


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_staff(session: Session, *, username: str, roles: list[str], password: str, display_name: str = "",
              language: str = "en", now: datetime) -> StaffAccount:
    username = check_username(username)
    roles = check_roles(roles)
    check_password(password, username)
    if language not in LANGUAGES:
        raise InvalidInput(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    if session.scalar(select(StaffAccount.id).where(StaffAccount.username == username)):
        raise Conflict(f"a staff account {username!r} exists already")
    account = StaffAccount(
        username=username, display_name=" ".join(display_name.split()) or username,
        password_hash=_hasher.hash(password), language=language, totp_secret=otp.new_secret(),
        password_changed_at=now, disabled=False, created_at=now,
        roles=[StaffAccountRole(role=r) for r in roles])
    session.add(account)
    session.flush()
    return account


def find_staff(session: Session, username: str) -> StaffAccount:
    account = session.scalar(select(StaffAccount).where(StaffAccount.username == username.strip().lower()))
    if account is None:
        raise NotFound(f"no staff account {username.strip()!r}")
    return account


def list_staff(session: Session) -> list[StaffAccount]:
    return list(session.scalars(select(StaffAccount).order_by(StaffAccount.username)))


def set_roles(account: StaffAccount, roles: list[str]) -> None:
    wanted = check_roles(roles)
    kept = {r.role: r for r in account.roles if r.role in wanted}
    account.roles = [kept.get(r) or StaffAccountRole(role=r) for r in wanted]  # sorted, as they are read back


def verify_password(factory: sessionmaker[Session], username: str, password: str) -> int | None:
    """The account id if the password is right and the account may log in; hashes even for unknown names."""
    with factory.begin() as session:
        account = session.scalar(select(StaffAccount).where(StaffAccount.username == username.strip().lower()))
        try:
            _hasher.verify(account.password_hash if account else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        if account is None or account.disabled:
            return None
        if _hasher.check_needs_rehash(account.password_hash):
            account.password_hash = _hasher.hash(password)
        return account.id


def change_password(session: Session, account: StaffAccount, password: str, now: datetime) -> None:
    account.password_hash = _hasher.hash(check_password(password, account.username))
    account.password_changed_at = now


def reset_totp(session: Session, account: StaffAccount, now: datetime) -> None:
    """A new secret to enrol at next login; old recovery codes and every session of the account end."""
    account.totp_secret = otp.new_secret()
    account.totp_enrolled_at = None
    account.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    end_sessions_of(session, account.id, EndReason.TOTP_RESET, now)


def accept_step(factory: sessionmaker[Session], account_id: int, step: int, now: datetime,
                by_session: int | None = None) -> bool:
    """Record `step` as the last accepted one if it is strictly later: one UPDATE, so of two concurrent
    submissions of the same code exactly one wins. `by_session` is the login that submitted it."""
    with factory.begin() as session:
        result = session.execute(
            update(StaffAccount)
            .where(StaffAccount.id == account_id,
                   (StaffAccount.totp_last_step.is_(None)) | (StaffAccount.totp_last_step < step))
            .values(totp_last_step=step, totp_step_session=by_session))
        won = bool(result.rowcount == 1)  # type: ignore[attr-defined]
        if won:
            session.execute(update(StaffAccount).where(StaffAccount.id == account_id,
                                                       StaffAccount.totp_enrolled_at.is_(None))
                            .values(totp_enrolled_at=now))
        return won


def submitted_again(factory: sessionmaker[Session], account_id: int, step: int, session_id: int) -> bool:
    """Whether `step` is the last accepted one and this same login submitted it (a double click)."""
    with factory() as session:
        row = session.execute(select(StaffAccount.totp_last_step, StaffAccount.totp_step_session)
                              .where(StaffAccount.id == account_id)).one_or_none()
    return row is not None and row[0] == step and row[1] == session_id


def use_recovery_code(factory: sessionmaker[Session], account_id: int, code: str, now: datetime) -> bool:
    with factory.begin() as session:
        result = session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.account_id == account_id, RecoveryCode.code_hash == otp.recovery_hash(code),
                   RecoveryCode.used_at.is_(None))
            .values(used_at=now))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def new_recovery_codes(factory: sessionmaker[Session], account_id: int, now: datetime) -> list[str]:
    """Ten new codes replace every earlier one; the caller shows them once, only hashes are kept."""
    codes = otp.new_recovery_codes()
    with factory.begin() as session:
        session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account_id))
        session.add_all(RecoveryCode(account_id=account_id, code_hash=otp.recovery_hash(c), created_at=now)
                        for c in codes)
    return codes


def recovery_codes_left(factory: sessionmaker[Session], account_id: int) -> int:
    with factory() as session:
        return len(list(session.scalars(select(RecoveryCode.id).where(
            RecoveryCode.account_id == account_id, RecoveryCode.used_at.is_(None)))))


def add_notice(factory: sessionmaker[Session], account_id: int, kind: NoticeKind, address: str,
               now: datetime) -> None:
    with factory.begin() as session:
        session.add(StaffNotice(account_id=account_id, kind=kind.value, address=address, at=now))


def take_notices(factory: sessionmaker[Session], account_id: int, now: datetime) -> list[StaffNotice]:
    """Notices not shown yet, marked shown: each is shown to the account holder once, at the next login."""
    with factory.begin() as session:
        rows = list(session.scalars(select(StaffNotice).where(
            StaffNotice.account_id == account_id, StaffNotice.shown_at.is_(None)).order_by(StaffNotice.at)))
        for row in rows:
            row.shown_at = now
        return rows


@dataclass(frozen=True, slots=True)
class StaffSessionPolicy:
    idle: timedelta
    max_age: timedelta
    second_factor: timedelta = timedelta(minutes=10)


def start_session(factory: sessionmaker[Session], policy: StaffSessionPolicy, account_id: int, address: str,
                  now: datetime) -> str:
    """A session at the password stage; its token is returned once, only its hash is stored."""
    token = secrets.token_urlsafe(32)
    with factory.begin() as session:
        session.add(StaffSession(token_hash=token_hash(token), account_id=account_id, stage=Stage.PASSWORD.value,
                                 address=address, created_at=now, last_seen_at=now,
                                 expires_at=now + policy.second_factor))
    return token


def _replace(factory: sessionmaker[Session], token: str, stage: Stage, reason: EndReason, now: datetime,
             lifetime: timedelta | None) -> str:
    """End the open session at `stage` and start a full one with a new token (no fixation), for `lifetime` or
    until the old one would have ended. The end is one conditional UPDATE, so of two concurrent requests on one
    session only one gets a successor."""
    new = secrets.token_urlsafe(32)
    with factory.begin() as session:
        row = session.execute(select(StaffSession.id, StaffSession.account_id, StaffSession.address,
                                     StaffSession.expires_at)
                              .where(StaffSession.token_hash == token_hash(token), StaffSession.ended_at.is_(None),
                                     StaffSession.stage == stage.value)).one_or_none()
        ended = row is not None and session.execute(
            update(StaffSession).where(StaffSession.id == row.id, StaffSession.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason.value)).rowcount == 1  # type: ignore[attr-defined]
        if row is None or not ended:
            raise NotFound("the login ended; log in again")
        session.add(StaffSession(token_hash=token_hash(new), account_id=row.account_id, stage=Stage.FULL.value,
                                 address=row.address, created_at=now, last_seen_at=now,
                                 expires_at=row.expires_at if lifetime is None else now + lifetime))
    return new


def promote(factory: sessionmaker[Session], policy: StaffSessionPolicy, token: str, now: datetime) -> str:
    """After the second factor: the pending session ends and a full one starts, for the longest a session lasts."""
    return _replace(factory, token, Stage.PASSWORD, EndReason.PROMOTED, now, policy.max_age)


def rotate(factory: sessionmaker[Session], token: str, reason: EndReason, now: datetime) -> str:
    """A new token for a full session (after a password change) that ends when the old one would have: a change
    never lengthens a session."""
    return _replace(factory, token, Stage.FULL, reason, now, None)


def end_session(factory: sessionmaker[Session], token: str, reason: EndReason, now: datetime) -> None:
    with factory.begin() as session:
        session.execute(update(StaffSession).where(StaffSession.token_hash == token_hash(token),
                                                   StaffSession.ended_at.is_(None))
                        .values(ended_at=now, end_reason=reason.value))


def end_sessions_of(session: Session, account_id: int, reason: EndReason, now: datetime,
                    keep: int | None = None) -> int:
    query = update(StaffSession).where(StaffSession.account_id == account_id, StaffSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(StaffSession.id != keep)
    result = session.execute(query.values(ended_at=now, end_reason=reason.value))
    return int(result.rowcount)  # type: ignore[attr-defined]


def resolve_session(factory: sessionmaker[Session], policy: StaffSessionPolicy, token: str,
                    now: datetime) -> StaffIdentity | None:
    """The identity behind a session cookie; a session past its time or of a disabled account ends here."""
    with factory.begin() as session:
        row = session.scalar(select(StaffSession).where(StaffSession.token_hash == token_hash(token),
                                                        StaffSession.ended_at.is_(None)))
        if row is None:
            return None
        account = row.account
        reason = (EndReason.EXPIRED if row.expires_at <= now else
                  EndReason.IDLE if row.last_seen_at + policy.idle <= now else
                  EndReason.DISABLED if account.disabled else
                  EndReason.PASSWORD_CHANGED if account.password_changed_at > row.created_at else None)
        if reason is not None:
            row.ended_at, row.end_reason = now, reason.value
            return None
        if (now - row.last_seen_at).total_seconds() >= 30:
            row.last_seen_at = now
        return StaffIdentity(row.id, account.id, account.username, account.display_name,
                             frozenset(account.role_names), account.language, Stage(row.stage),
                             account.totp_enrolled_at is not None, row.created_at)


def set_language(factory: sessionmaker[Session], account_id: int, language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidInput(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    with factory.begin() as session:
        session.execute(update(StaffAccount).where(StaffAccount.id == account_id).values(language=language))
