"""Visitors: registration with a confirmed e-mail address, verification by staff who saw an identity document,
passwords (argon2) with an optional TOTP whose replay is refused atomically, and their login sessions.

Synchronous like the rest of the kernel's storage; the public listener calls these from a worker thread. What
staff accounts have already is used as it is: the password rules and token hashing of `gatehouse.staff`, the
codes of `gatehouse.otp`, the address check of `gatehouse.mail`.

A row may exist before its person registers: an inmate proposed them or staff added them (no password). A
registration takes such a row over, and so does one for an address that never confirmed; an address that did is
answered like a new one (nothing tells a stranger it is registered) and its owner gets a mail instead. Whoever
follows a confirmation link gives the password chosen at registration, so a link sent to the owner of an address
cannot confirm a registration somebody else made with it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gatehouse import otp
from gatehouse.db.models import Inmate
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.mail import check_address
from gatehouse.settings import LANGUAGES
from gatehouse.staff import check_password, token_hash
from gatehouse.visits import outbox
from gatehouse.visits.models import (
    ListEntry,
    ListStatus,
    MailKind,
    Visit,
    VisitGuest,
    Visitor,
    VisitorSession,
)

CONFIRM_FOR = timedelta(hours=48)
RECENT = timedelta(days=30)
"""Visits that ended within this long are still listed to the visitor (with a cancellation's reason)."""
TOUCH_SECONDS = 30
_hasher = PasswordHasher()  # argon2id with argon2-cffi's defaults, as for staff passwords
_DUMMY = _hasher.hash("not a password of anyone")


@dataclass(frozen=True, slots=True)
class VisitorSessionPolicy:
    """A visitor logs in from home: longer idle than staff (a call of an hour sends no page requests)."""

    idle: timedelta = timedelta(minutes=90)
    max_age: timedelta = timedelta(hours=12)
    second_factor: timedelta = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class VisitorIdentity:
    """A visitor as a request (or a password check, `session_id` 0) knows them."""

    session_id: int
    visitor_id: int
    name: str
    email: str
    language: str
    confirmed: bool
    verified: bool
    """E-mail confirmed, identity checked by staff, not suspended: may be booked and join visits."""
    lawyer: bool
    suspended: str
    """Why staff suspended or refused the account; empty when they did not."""
    totp: bool
    totp_done: bool
    """The session passed every factor the account has (the password alone when it has no code app)."""


@dataclass(frozen=True, slots=True)
class TotpSetup:
    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class Listed:
    """An inmate whose approved list holds this visitor."""

    inmate_id: int
    number: str
    name: str
    relationship: str


@dataclass(frozen=True, slots=True)
class VisitSummary:
    """A visit as its family may know it: never the booth."""

    id: int
    inmate_name: str
    starts_at: datetime
    ends_at: datetime
    visit_class: str
    status: str
    close_reason: str
    recorded: bool


def check_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 255:
        raise InvalidInput("an e-mail address has at most 255 characters")
    try:
        return check_address(email, "the e-mail address")
    except ValueError:
        raise InvalidInput(f"{email!r} is not an e-mail address") from None


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("give the visitor's name")
    if len(name) > 255:
        raise InvalidInput("a name has at most 255 characters")
    return name


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise InvalidInput(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    return language


def _text(value: str, what: str, most: int = 255) -> str:
    value = " ".join(value.split())
    if not value:
        raise InvalidInput(f"give {what}")
    if len(value) > most:
        raise InvalidInput(f"{what} has at most {most} characters")
    return value


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _naive(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def find_visitor(session: Session, email: str) -> Visitor:
    visitor = session.scalar(select(Visitor).where(Visitor.email == email.strip().lower()))
    if visitor is None:
        raise NotFound(f"no visitor with the address {email.strip()!r}")
    return visitor


def get_visitor(session: Session, visitor_id: int) -> Visitor:
    visitor = session.get(Visitor, visitor_id)
    if visitor is None:
        raise NotFound(f"no visitor {visitor_id}")
    return visitor


# -- registration and confirmation ------------------------------------------------------------------------------

def register(session: Session, *, name: str, email: str, password: str, language: str,
             now: datetime) -> tuple[Visitor, str]:
    """The visitor and the confirmation link's secret (mailed through the outbox; only its hash is kept). For an
    address registered and confirmed already: that visitor, unchanged, and "" (its owner is mailed instead)."""
    now = _naive(now)
    email, name, language = check_email(email), check_name(name), check_language(language)
    check_password(password, email)
    visitor = session.scalar(select(Visitor).where(Visitor.email == email))
    if visitor is not None and visitor.password_hash and visitor.email_confirmed_at is not None:
        _hasher.hash(password)  # the work of a registration, so the answer's time does not tell either
        outbox.queue(session, MailKind.CONFIRM, email, now, visitor_id=visitor.id, payload={"registered": "yes"})
        return visitor, ""
    if visitor is None:
        visitor = Visitor(name=name, email=email, created_at=now)
        session.add(visitor)
    elif visitor.verified_at is None:
        visitor.name = name  # once staff checked a document, the name they read stays
    secret = secrets.token_urlsafe(32)
    visitor.password_hash = _hasher.hash(password)
    visitor.language = language
    visitor.totp_secret, visitor.totp_last_step = None, None
    visitor.email_token, visitor.email_token_expires = token_hash(secret), now + CONFIRM_FOR
    session.flush()
    outbox.queue(session, MailKind.CONFIRM, email, now, visitor_id=visitor.id, payload={"secret": secret})
    return visitor, secret


def confirmation(session: Session, secret: str, now: datetime) -> Visitor:
    """The visitor whose confirmation link this is, while it may be followed."""
    visitor = session.scalar(select(Visitor).where(Visitor.email_token == token_hash(secret)))
    if visitor is None or visitor.email_token_expires is None or visitor.email_token_expires <= _naive(now):
        raise NotFound("this confirmation link is not valid or has expired; register again to get a new one")
    return visitor


def confirm_email(session: Session, secret: str, now: datetime) -> Visitor:
    """The address is the visitor's: the link works once. The caller has checked the registration's password."""
    visitor = confirmation(session, secret, now)
    visitor.email_confirmed_at = _naive(now)
    visitor.email_token, visitor.email_token_expires = None, None
    return visitor


# -- staff: adding, verifying, refusing -------------------------------------------------------------------------

def add_visitor(session: Session, *, name: str, email: str, verified_by: str | None, document: str = "",
                lawyer: bool = False, now: datetime) -> Visitor:
    """A visitor added by staff (or the CLI), verified at once when `verified_by` names who saw the document.
    They log in once they register with this address and confirm it."""
    email, name = check_email(email), check_name(name)
    if lawyer and not verified_by:
        raise InvalidInput("a lawyer is verified by staff: give who verified them")
    if session.scalar(select(Visitor.id).where(Visitor.email == email)) is not None:
        raise Conflict(f"a visitor with the address {email} exists already")
    visitor = Visitor(name=name, email=email, created_at=_naive(now))
    if verified_by:
        visitor.verified_at, visitor.verified_by = _naive(now), _text(verified_by, "who verified", 64)
        visitor.document = " ".join(document.split())[:255]
        visitor.lawyer = lawyer
    session.add(visitor)
    session.flush()
    return visitor


def ensure_visitor(session: Session, *, name: str, email: str, now: datetime) -> Visitor:
    """The visitor with this address, made (unregistered, unverified) if there is none: an inmate's proposal."""
    email = check_email(email)
    visitor = session.scalar(select(Visitor).where(Visitor.email == email))
    if visitor is None:
        visitor = Visitor(name=check_name(name), email=email, created_at=_naive(now))
        session.add(visitor)
        session.flush()
    return visitor


def verify(session: Session, visitor_id: int, *, by: str, document: str, lawyer: bool, now: datetime) -> Visitor:
    """`by` saw the identity document `document` (its kind and number as they read them)."""
    visitor = get_visitor(session, visitor_id)
    if visitor.suspended_reason:
        raise Conflict(f"visitor {visitor.email} is suspended: {visitor.suspended_reason}")
    if visitor.verified_at is not None:
        raise Conflict(f"visitor {visitor.email} was verified already by {visitor.verified_by}")
    if visitor.password_hash and visitor.email_confirmed_at is None:
        raise Conflict(f"visitor {visitor.email} has not confirmed their e-mail address yet")
    visitor.document = _text(document, "the identity document")
    visitor.verified_at, visitor.verified_by, visitor.lawyer = _naive(now), _text(by, "who verified", 64), lawyer
    return visitor


def suspend(session: Session, visitor_id: int, *, by: str, reason: str, now: datetime) -> Visitor:
    """The account stops: its sessions end, it is booked no more. A refused verification is one too, with its
    reason (the visitor reads it after giving their password)."""
    visitor = get_visitor(session, visitor_id)
    visitor.suspended_reason = _text(reason, "a reason")
    end_sessions_of(session, visitor.id, now)
    return visitor


def waiting(session: Session) -> list[Visitor]:
    """Visitors who confirmed their address and wait for staff to see their identity document."""
    return list(session.scalars(select(Visitor).where(
        Visitor.email_confirmed_at.is_not(None), Visitor.verified_at.is_(None), Visitor.suspended_reason == "")
        .order_by(Visitor.email_confirmed_at, Visitor.id)))


# -- passwords and codes ----------------------------------------------------------------------------------------

def _identity(visitor: Visitor, session_id: int = 0, totp_done: bool = False) -> VisitorIdentity:
    return VisitorIdentity(session_id, visitor.id, visitor.name, visitor.email, visitor.language,
                           visitor.email_confirmed_at is not None, visitor.verified, visitor.lawyer,
                           visitor.suspended_reason, visitor.totp_secret is not None, totp_done)


def verify_password(factory: sessionmaker[Session], email: str, password: str) -> VisitorIdentity | None:
    """The visitor if the password is theirs; an unknown address or a row without a password costs a hash too."""
    with factory.begin() as session:
        visitor = session.scalar(select(Visitor).where(Visitor.email == email.strip().lower()))
        stored = visitor.password_hash if visitor is not None else None
        try:
            _hasher.verify(stored or _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        if visitor is None or stored is None:
            return None
        if _hasher.check_needs_rehash(stored):
            visitor.password_hash = _hasher.hash(password)
        return _identity(visitor)


def change_password(session: Session, visitor_id: int, password: str, now: datetime,
                    keep: int | None = None) -> None:
    """Every other session of the visitor ends (a stolen one too). The caller checked the current password."""
    visitor = get_visitor(session, visitor_id)
    visitor.password_hash = _hasher.hash(check_password(password, visitor.email))
    end_sessions_of(session, visitor_id, now, keep=keep)


def set_language(factory: sessionmaker[Session], visitor_id: int, language: str) -> None:
    check_language(language)
    with factory.begin() as session:
        session.execute(update(Visitor).where(Visitor.id == visitor_id).values(language=language))


def begin_totp(email: str, issuer: str) -> TotpSetup:
    """A new secret for the visitor's app; it is stored only once a code of it is confirmed."""
    secret = otp.new_secret()
    return TotpSetup(secret, otp.provisioning_uri(secret, email, issuer))


def confirm_totp(factory: sessionmaker[Session], visitor_id: int, secret: str, code: str, now: datetime) -> None:
    """The app shows the right code: from now on every login asks for one. Raises `otp.InvalidCode` (or its
    kinds), `Conflict` if the account has an app already."""
    step = otp.matching_step(secret, code, _aware(now))
    with factory.begin() as session:
        result = session.execute(update(Visitor).where(Visitor.id == visitor_id, Visitor.totp_secret.is_(None))
                                 .values(totp_secret=secret, totp_last_step=step))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("a code app is set up for this account already")


def accept_code(factory: sessionmaker[Session], visitor_id: int, code: str, now: datetime) -> None:
    """A code of the visitor's app, accepted once: the pure check, then one conditional UPDATE of the last step,
    so of two submissions of one code exactly one wins. Raises `otp.Replayed`, `otp.OutOfSync`, `otp.InvalidCode`."""
    with factory() as session:
        row = session.execute(select(Visitor.totp_secret, Visitor.totp_last_step)
                              .where(Visitor.id == visitor_id)).one_or_none()
    if row is None or row[0] is None:
        raise otp.InvalidCode("no code app is set up for this account")
    step = otp.matching_step(row[0], code, _aware(now), row[1])
    with factory.begin() as session:
        result = session.execute(update(Visitor).where(
            Visitor.id == visitor_id, Visitor.totp_last_step.is_(None) | (Visitor.totp_last_step < step))
            .values(totp_last_step=step))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise otp.Replayed("another submission of this code won")


# -- sessions ---------------------------------------------------------------------------------------------------

def start_session(factory: sessionmaker[Session], policy: VisitorSessionPolicy, visitor_id: int,
                  now: datetime) -> str:
    """A session after the password; with a code app, only good for the code step until `promote`. The token is
    returned once, only its hash is stored."""
    now = _naive(now)
    token = secrets.token_urlsafe(32)
    with factory.begin() as session:
        visitor = get_visitor(session, visitor_id)
        done = visitor.totp_secret is None
        session.add(VisitorSession(token=token_hash(token), visitor_id=visitor_id, started_at=now, last_seen_at=now,
                                   expires_at=now + (policy.max_age if done else policy.second_factor),
                                   totp_done=done))
    return token


def _replace(factory: sessionmaker[Session], token: str, *, pending: bool, now: datetime,
             lifetime: timedelta | None) -> str:
    """End the open session and start a full one with a new token (no fixation), for `lifetime` or until the old
    one would have ended; of two concurrent requests on one session only one gets a successor."""
    now = _naive(now)
    new = secrets.token_urlsafe(32)
    with factory.begin() as session:
        row = session.execute(select(VisitorSession.id, VisitorSession.visitor_id, VisitorSession.expires_at)
                              .where(VisitorSession.token == token_hash(token), VisitorSession.ended_at.is_(None),
                                     VisitorSession.totp_done == (not pending))).one_or_none()
        ended = row is not None and session.execute(
            update(VisitorSession).where(VisitorSession.id == row.id, VisitorSession.ended_at.is_(None))
            .values(ended_at=now)).rowcount == 1  # type: ignore[attr-defined]
        if row is None or not ended:
            raise NotFound("the login ended; log in again")
        session.add(VisitorSession(token=token_hash(new), visitor_id=row.visitor_id, started_at=now, last_seen_at=now,
                                   expires_at=row.expires_at if lifetime is None else now + lifetime,
                                   totp_done=True))
    return new


def promote(factory: sessionmaker[Session], policy: VisitorSessionPolicy, token: str, now: datetime) -> str:
    """After the code: the pending session ends and a full one starts."""
    return _replace(factory, token, pending=True, now=now, lifetime=policy.max_age)


def rotate(factory: sessionmaker[Session], token: str, now: datetime) -> str:
    """A new token for a full session (after a password change) that ends when the old one would have."""
    return _replace(factory, token, pending=False, now=now, lifetime=None)


def resolve_session(factory: sessionmaker[Session], policy: VisitorSessionPolicy, token: str,
                    now: datetime) -> VisitorIdentity | None:
    """The visitor behind a session cookie; a session past its time, or of a suspended account, ends here."""
    now = _naive(now)
    with factory.begin() as session:
        row = session.scalar(select(VisitorSession).where(VisitorSession.token == token_hash(token),
                                                          VisitorSession.ended_at.is_(None)))
        if row is None:
            return None
        visitor = row.visitor
        if row.expires_at <= now or row.last_seen_at + policy.idle <= now or visitor.suspended_reason:
            row.ended_at = now
            return None
        if (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS:
            row.last_seen_at = now
        return _identity(visitor, row.id, row.totp_done)


def end_session(factory: sessionmaker[Session], token: str, now: datetime) -> None:
    with factory.begin() as session:
        session.execute(update(VisitorSession).where(VisitorSession.token == token_hash(token),
                                                     VisitorSession.ended_at.is_(None)).values(ended_at=_naive(now)))


def end_sessions_of(session: Session, visitor_id: int, now: datetime, keep: int | None = None) -> int:
    query = update(VisitorSession).where(VisitorSession.visitor_id == visitor_id, VisitorSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(VisitorSession.id != keep)
    return int(session.execute(query.values(ended_at=_naive(now))).rowcount)  # type: ignore[attr-defined]


# -- what a visitor sees ----------------------------------------------------------------------------------------

def inmates_of(session: Session, visitor_id: int) -> list[Listed]:
    """The inmates whose approved list holds this visitor, by name."""
    rows = session.execute(select(Inmate.id, Inmate.number, Inmate.name, ListEntry.relationship_)
                           .join(ListEntry, ListEntry.inmate_id == Inmate.id)
                           .where(ListEntry.visitor_id == visitor_id,
                                  ListEntry.status == ListStatus.APPROVED.value)
                           .order_by(Inmate.name, Inmate.id))
    return [Listed(*row) for row in rows]


def visits_of(session: Session, visitor_id: int, now: datetime) -> list[VisitSummary]:
    """The visitor's visits that have not ended, and those that ended within `RECENT`, soonest first."""
    rows = session.execute(select(Visit.id, Inmate.name, Visit.starts_at, Visit.ends_at, Visit.visit_class,
                                  Visit.status, Visit.close_reason, Visit.recorded)
                           .join(VisitGuest, VisitGuest.visit_id == Visit.id)
                           .join(Inmate, Inmate.id == Visit.inmate_id)
                           .where(VisitGuest.visitor_id == visitor_id, Visit.ends_at > _naive(now) - RECENT)
                           .order_by(Visit.starts_at, Visit.id))
    return [VisitSummary(*row) for row in rows]

