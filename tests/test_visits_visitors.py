"""Visitors' accounts against a real database (SQLite and PostgreSQL): registration and its take-overs,
confirmation, verification by staff, sessions, the code app with replay refused, what a visitor may see, and the
`gatehouse visitor add` command."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from gatehouse import otp
from gatehouse.cli import main
from gatehouse.cli.ops import initialise
from gatehouse.db.engine import make_engine, session_factory, stored, upgrade
from gatehouse.db.models import Facility, Inmate
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.inmates import add_inmate
from gatehouse.kernel import Kernel
from gatehouse.staff import add_staff, token_hash
from gatehouse.visits import visitors
from gatehouse.visits.models import (
    Booth,
    ListEntry,
    ListStatus,
    MailKind,
    Outbox,
    Visit,
    VisitGuest,
    Visitor,
    VisitorSession,
    VisitStatus,
)
from gatehouse.visits.visitors import VisitorSessionPolicy

NOW = datetime(2030, 3, 4, 9, 0)  # naive UTC, as stored
PASSWORD = "a walk along the canal at dusk"
POLICY = VisitorSessionPolicy()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    factory = session_factory(engine)
    with factory.begin() as db:
        facility = Facility(name="Haren", timezone="Europe/Brussels")
        db.add(facility)
        db.flush()
        add_inmate(db, facility, number="A1", name="Jan Peeters")
        add_inmate(db, facility, number="B2", name="Marie Dubois")
    return factory


def register(factory: sessionmaker[Session], email: str = "ann@example.org", name: str = "Ann Janssens",
             password: str = PASSWORD, language: str = "nl", now: datetime = NOW) -> tuple[int, str]:
    with factory.begin() as db:
        person, secret = visitors.register(db, name=name, email=email, password=password, language=language, now=now)
        return person.id, secret


def confirmed(factory: sessionmaker[Session], email: str = "ann@example.org") -> int:
    visitor_id, secret = register(factory, email)
    with factory.begin() as db:
        visitors.confirm_email(db, secret, NOW)
    return visitor_id


def outbox_rows(factory: sessionmaker[Session]) -> list[Outbox]:
    with factory() as db:
        return list(db.scalars(select(Outbox).order_by(Outbox.id)))


def row(factory: sessionmaker[Session], visitor_id: int) -> Visitor:
    with factory() as db:
        found = db.get(Visitor, visitor_id)
        assert found is not None
        return found


# -- registration -----------------------------------------------------------------------------------------------

def test_a_registration_keeps_only_the_hash_of_the_link_and_queues_its_mail(factory: sessionmaker[Session]) -> None:
    visitor_id, secret = register(factory, email="  Ann@Example.ORG ")
    person = row(factory, visitor_id)
    assert person.email == "ann@example.org" and person.language == "nl"
    assert person.email_token == token_hash(secret) and secret not in (person.email_token or "")
    assert person.email_token_expires == NOW + timedelta(hours=48)
    assert person.password_hash and PASSWORD not in person.password_hash and person.email_confirmed_at is None
    [mail] = outbox_rows(factory)
    assert (mail.kind, mail.recipient, mail.visitor_id, mail.payload) == (
        MailKind.CONFIRM.value, "ann@example.org", visitor_id, {"secret": secret})


@pytest.mark.parametrize(("email", "password", "problem"), [
    ("not-an-address", PASSWORD, "is not an e-mail address"),
    ("a b@example.org", PASSWORD, "is not an e-mail address"),
    ("ann@example.org", "too short", "at least 12 characters"),
    ("ann@example.org", "my ann@example.org secret", "must not contain"),
])
def test_a_registration_checks_the_address_and_the_password_as_staff_passwords(
        factory: sessionmaker[Session], email: str, password: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        register(factory, email=email, password=password)
    assert outbox_rows(factory) == []


def test_an_address_registered_already_gets_the_same_answer_and_its_owner_a_mail(
        factory: sessionmaker[Session]) -> None:
    visitor_id = confirmed(factory)
    before = row(factory, visitor_id)
    again_id, secret = register(factory, name="Someone Else", password="another long passphrase")
    after = row(factory, visitor_id)
    assert (again_id, secret) == (visitor_id, "")
    assert (after.name, after.password_hash, after.email_token) == (before.name, before.password_hash, None)
    assert [(m.kind, m.payload) for m in outbox_rows(factory)][-1] == (MailKind.CONFIRM.value, {"registered": "yes"})
    assert visitors.verify_password(factory, "ann@example.org", "another long passphrase") is None


def test_a_registration_takes_over_a_row_staff_or_an_inmate_made(factory: sessionmaker[Session]) -> None:
    with factory.begin() as db:
        added = visitors.add_visitor(db, name="Ann Janssens-Peeters", email="ann@example.org", verified_by="sam",
                                     document="identity-card: 592-1234567-89", now=NOW)
        proposed = visitors.ensure_visitor(db, name="Bob", email="bob@example.org", now=NOW)
        assert visitors.ensure_visitor(db, name="Robert", email="BOB@example.org", now=NOW).id == proposed.id
        added_id, proposed_id = added.id, proposed.id
    assert register(factory, name="Ann J.")[0] == added_id
    assert register(factory, email="bob@example.org", name="Bob Maes")[0] == proposed_id
    assert row(factory, added_id).name == "Ann Janssens-Peeters"  # the name staff read on the document stays
    assert row(factory, proposed_id).name == "Bob Maes"
    assert row(factory, added_id).verified_at is not None and not row(factory, added_id).verified  # not confirmed


def test_a_second_registration_of_an_unconfirmed_address_replaces_the_first(factory: sessionmaker[Session]) -> None:
    """Whoever registers first cannot hold an address they do not own: the owner's later registration wins, and
    the first link stops working."""
    visitor_id, first = register(factory, password="the squatter's passphrase")
    again, second = register(factory)
    assert again == visitor_id and first != second
    with factory.begin() as db, pytest.raises(NotFound):
        visitors.confirm_email(db, first, NOW)
    assert visitors.verify_password(factory, "ann@example.org", "the squatter's passphrase") is None
    assert visitors.verify_password(factory, "ann@example.org", PASSWORD) is not None


def test_a_confirmation_link_works_once_and_not_after_48_hours(factory: sessionmaker[Session]) -> None:
    visitor_id, secret = register(factory)
    with factory.begin() as db, pytest.raises(NotFound):
        visitors.confirm_email(db, secret, NOW + timedelta(hours=48))
    with factory.begin() as db, pytest.raises(NotFound):
        visitors.confirm_email(db, secret[:-1] + ("A" if secret[-1] != "A" else "B"), NOW)
    with factory.begin() as db:
        assert visitors.confirm_email(db, secret, NOW + timedelta(hours=47)).id == visitor_id
    with factory.begin() as db, pytest.raises(NotFound):
        visitors.confirm_email(db, secret, NOW + timedelta(hours=47))
    assert row(factory, visitor_id).email_confirmed_at == NOW + timedelta(hours=47)


# -- staff ------------------------------------------------------------------------------------------------------

def test_verification_needs_a_confirmed_address_and_records_who_and_what(factory: sessionmaker[Session]) -> None:
    visitor_id, secret = register(factory)
    with factory.begin() as db, pytest.raises(Conflict, match="not confirmed"):
        visitors.verify(db, visitor_id, by="sam", document="passport: EH123456", lawyer=False, now=NOW)
    with factory.begin() as db:
        visitors.confirm_email(db, secret, NOW)
    with factory.begin() as db, pytest.raises(InvalidInput, match="identity document"):
        visitors.verify(db, visitor_id, by="sam", document="  ", lawyer=False, now=NOW)
    with factory.begin() as db:
        assert [v.id for v in visitors.waiting(db)] == [visitor_id]
        visitors.verify(db, visitor_id, by="sam", document="passport:  EH123456", lawyer=True, now=NOW)
    person = row(factory, visitor_id)
    assert (person.verified, person.verified_by, person.document, person.lawyer) == (
        True, "sam", "passport: EH123456", True)
    with factory.begin() as db:
        assert visitors.waiting(db) == []
        with pytest.raises(Conflict, match="verified already by sam"):
            visitors.verify(db, visitor_id, by="kim", document="passport: X", lawyer=False, now=NOW)


def test_staff_may_verify_a_visitor_they_added_before_the_visitor_registers(factory: sessionmaker[Session]) -> None:
    with factory.begin() as db:
        person = visitors.add_visitor(db, name="Lex Advocaat", email="lex@law.example", verified_by=None, now=NOW)
        visitors.verify(db, person.id, by="sam", document="bar card: 1234", lawyer=True, now=NOW)
        with pytest.raises(Conflict, match="exists already"):
            visitors.add_visitor(db, name="Lex", email="LEX@law.example", verified_by=None, now=NOW)
        with pytest.raises(InvalidInput, match="lawyer"):
            visitors.add_visitor(db, name="Lex", email="lex2@law.example", verified_by=None, lawyer=True, now=NOW)


def test_a_refusal_suspends_the_account_and_ends_its_sessions(factory: sessionmaker[Session]) -> None:
    visitor_id = confirmed(factory)
    token = visitors.start_session(factory, POLICY, visitor_id, NOW)
    with factory.begin() as db:
        visitors.suspend(db, visitor_id, by="sam", reason="the document did not match the person", now=NOW)
        assert visitors.waiting(db) == []
    assert visitors.resolve_session(factory, POLICY, token, NOW) is None
    who = visitors.verify_password(factory, "ann@example.org", PASSWORD)
    assert who is not None and who.suspended == "the document did not match the person" and not who.verified


# -- sessions and codes -----------------------------------------------------------------------------------------

def test_a_session_ends_when_idle_or_past_its_longest_and_never_lives_again(factory: sessionmaker[Session]) -> None:
    visitor_id = confirmed(factory)
    token = visitors.start_session(factory, POLICY, visitor_id, NOW)
    who = visitors.resolve_session(factory, POLICY, token, NOW + POLICY.idle - timedelta(minutes=1))
    assert who is not None and who.totp_done and who.email == "ann@example.org"
    assert visitors.resolve_session(factory, POLICY, token, NOW + 2 * POLICY.idle) is None
    assert visitors.resolve_session(factory, POLICY, token, NOW + POLICY.idle) is None  # ended, not only late
    token = visitors.start_session(factory, POLICY, visitor_id, NOW)
    moment = NOW
    while moment < NOW + POLICY.max_age - POLICY.idle:  # kept busy, it still ends at its longest
        moment += POLICY.idle / 2
        assert visitors.resolve_session(factory, POLICY, token, moment) is not None
    assert visitors.resolve_session(factory, POLICY, token, NOW + POLICY.max_age) is None
    token = visitors.start_session(factory, POLICY, visitor_id, NOW)
    visitors.end_session(factory, token, NOW)
    assert visitors.resolve_session(factory, POLICY, token, NOW) is None
    with factory() as db:
        assert all(token not in s.token for s in db.scalars(select(VisitorSession)))


def now_step() -> int:
    return otp.step_at(time.time())


def test_with_a_code_app_a_login_waits_for_a_code_and_a_code_is_taken_once(factory: sessionmaker[Session]) -> None:
    visitor_id = confirmed(factory)
    setup = visitors.begin_totp("ann@example.org", "Gatehouse Haren")
    assert setup.uri.startswith("otpauth://totp/") and "ann%40example.org" in setup.uri
    assert row(factory, visitor_id).totp_secret is None  # nothing is kept before a code of it is right
    app = pyotp.TOTP(setup.secret)
    with pytest.raises(otp.InvalidCode):
        visitors.confirm_totp(factory, visitor_id, setup.secret, "000000" if app.now() != "000000" else "111111",
                              datetime.now(UTC))
    visitors.confirm_totp(factory, visitor_id, setup.secret, app.now(), datetime.now(UTC))
    other = otp.new_secret()
    with pytest.raises(Conflict):
        visitors.confirm_totp(factory, visitor_id, other, pyotp.TOTP(other).now(), datetime.now(UTC))

    token = visitors.start_session(factory, POLICY, visitor_id, NOW)
    pending = visitors.resolve_session(factory, POLICY, token, NOW)
    assert pending is not None and pending.totp and not pending.totp_done
    assert visitors.resolve_session(factory, POLICY, token, NOW + POLICY.second_factor) is None  # 10 minutes
    token = visitors.start_session(factory, POLICY, visitor_id, NOW)
    with pytest.raises(otp.Replayed):  # the code that set the app up is used already
        visitors.accept_code(factory, visitor_id, app.now(), datetime.now(UTC))
    next_code = app.at(time.time() + 30)
    visitors.accept_code(factory, visitor_id, next_code, datetime.now(UTC))
    with pytest.raises(otp.Replayed):
        visitors.accept_code(factory, visitor_id, next_code, datetime.now(UTC))
    full = visitors.promote(factory, POLICY, token, NOW)
    assert full != token and visitors.resolve_session(factory, POLICY, token, NOW) is None
    who = visitors.resolve_session(factory, POLICY, full, NOW)
    assert who is not None and who.totp_done
    with pytest.raises(NotFound):
        visitors.promote(factory, POLICY, token, NOW)


def test_of_concurrent_submissions_of_one_code_exactly_one_is_taken(factory: sessionmaker[Session]) -> None:
    visitor_id = confirmed(factory)
    secret = otp.new_secret()
    with factory.begin() as db:
        db.execute(update(Visitor).where(Visitor.id == visitor_id).values(totp_secret=secret))
    code = pyotp.TOTP(secret).now()
    results: list[str] = []
    start = threading.Barrier(8)

    def submit() -> None:
        start.wait()
        try:
            visitors.accept_code(factory, visitor_id, code, datetime.now(UTC))
            results.append("taken")
        except otp.Replayed:
            results.append("replayed")

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["replayed"] * 7 + ["taken"]


def test_a_password_change_ends_every_other_session(factory: sessionmaker[Session]) -> None:
    visitor_id = confirmed(factory)
    mine, stolen = (visitors.start_session(factory, POLICY, visitor_id, NOW) for _ in range(2))
    who = visitors.resolve_session(factory, POLICY, mine, NOW)
    assert who is not None
    with factory.begin() as db:
        visitors.change_password(db, visitor_id, "a brand new passphrase", NOW, keep=who.session_id)
    assert visitors.resolve_session(factory, POLICY, stolen, NOW) is None
    rotated = visitors.rotate(factory, mine, NOW)
    assert visitors.resolve_session(factory, POLICY, mine, NOW) is None
    assert visitors.resolve_session(factory, POLICY, rotated, NOW) is not None
    assert visitors.verify_password(factory, "ann@example.org", PASSWORD) is None
    assert visitors.verify_password(factory, "ann@example.org", "a brand new passphrase") is not None
    assert visitors.verify_password(factory, "nobody@example.org", PASSWORD) is None


# -- what a visitor sees ----------------------------------------------------------------------------------------

def test_a_visitor_sees_the_inmates_whose_list_holds_them_and_their_visits(factory: sessionmaker[Session]) -> None:
    visitor_id = confirmed(factory)
    with factory.begin() as db:
        jan, marie = (db.scalar(select(Inmate).where(Inmate.number == n)) for n in ("A1", "B2"))
        assert jan is not None and marie is not None
        booth = Booth(name="booth-7", unit="A")
        db.add(booth)
        db.add_all([ListEntry(inmate_id=jan.id, visitor_id=visitor_id, relationship_="daughter",
                              status=ListStatus.APPROVED.value, proposed_by="inmate:A1", proposed_at=NOW),
                    ListEntry(inmate_id=marie.id, visitor_id=visitor_id, status=ListStatus.REFUSED.value,
                              proposed_by="inmate:B2", proposed_at=NOW, reason="no")])
        db.flush()
        for days, status in ((-40, VisitStatus.APPROVED), (-3, VisitStatus.CANCELLED), (2, VisitStatus.APPROVED)):
            start = NOW + timedelta(days=days)
            visit = Visit(inmate_id=jan.id, booth_id=booth.id, starts_at=start, ends_at=start + timedelta(minutes=30),
                          status=status.value, requested_by="staff:sam", requested_at=NOW,
                          close_reason="lockdown" if status is VisitStatus.CANCELLED else "")
            visit.visitors = [VisitGuest(visitor_id=visitor_id)]
            db.add(visit)
    with factory() as db:
        assert visitors.inmates_of(db, visitor_id) == [visitors.Listed(jan.id, "A1", "Jan Peeters", "daughter")]
        seen = visitors.visits_of(db, visitor_id, NOW)
    assert [(v.starts_at, v.status, v.close_reason, v.inmate_name) for v in seen] == [
        (NOW - timedelta(days=3), "cancelled", "lockdown", "Jan Peeters"),
        (NOW + timedelta(days=2), "approved", "", "Jan Peeters")]
    assert not hasattr(seen[0], "booth")


# -- the command ------------------------------------------------------------------------------------------------

def test_gatehouse_visitor_add(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = initialise(tmp_path / "data", {}, quiet=True)
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as db:
            add_staff(db, username="sam", roles=["security"], password=PASSWORD, now=stored(datetime.now(UTC)))
    finally:
        kernel.engine.dispose()
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["visitor", "add", *data, "--name", "Lex Advocaat", "--email", "Lex@Law.example", "--verified-by",
                 "sam", "--document", "bar card 1234", "--lawyer"]) == 0
    assert "added visitor 1 lex@law.example (verified by sam as a lawyer)" in capsys.readouterr().out
    assert main(["visitor", "add", *data, "--name", "Lex", "--email", "lex@law.example"]) == 2
    assert "exists already" in capsys.readouterr().err
    kim = ["--name", "Kim", "--email", "kim@example.org"]
    assert main(["visitor", "add", *data, *kim, "--verified-by", "nobody"]) == 2
    assert main(["visitor", "add", *data, *kim, "--lawyer"]) == 2
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as db:
            rows = list(db.scalars(select(Visitor)))
            assert [(v.email, v.verified_by, v.document, v.lawyer) for v in rows] == [
                ("lex@law.example", "sam", "bar card 1234", True)]
    finally:
        kernel.engine.dispose()
