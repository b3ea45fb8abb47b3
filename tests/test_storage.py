"""Storage on SQLite and PostgreSQL alike: migrations, constraints, sessions and the PIN lockout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.db.engine import make_engine, pending_migrations, session_factory, upgrade, utcnow
from gatehouse.db.models import Facility, Inmate, InmateSession, Terminal
from gatehouse.errors import Conflict, InvalidInput
from gatehouse.inmates import add_inmate, set_groups
from gatehouse.sessions import EndReason, LoginRefused, SessionPolicy, end_session, login, resolve
from gatehouse.terminals import add_terminal, remove_terminal

POLICY = SessionPolicy(idle=timedelta(minutes=15), max_age=timedelta(hours=8), max_attempts=3,
                       lock=timedelta(minutes=15), timezone=ZoneInfo("Europe/Brussels"))


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
        add_terminal(db, facility, name="cell-1", address="10.1.0.1", kind="cell", unit="A")
        add_terminal(db, facility, name="class-1", address="10.1.0.2", kind="classroom")
        add_inmate(db, facility, number="a100", name="Jan Peeters", groups=["learners"], pin="2468")
        add_inmate(db, facility, number="B200", name="Marie Dubois", pin="1357")
    return factory


def test_migrations_reach_head_with_every_table(engine: Engine) -> None:
    assert not pending_migrations(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"facilities", "terminals", "inmates", "inmate_groups", "sessions", "policy_rules",
            "audit_records", "alembic_version"} <= tables


def test_register_constraints(factory: sessionmaker[Session]) -> None:
    with factory.begin() as db:
        facility = db.scalars(select(Facility)).one()
        with pytest.raises(Conflict, match="belongs to terminal 'cell-1'"):
            add_terminal(db, facility, name="cell-9", address="10.1.0.1", kind="cell")
        with pytest.raises(InvalidInput, match="kind 'kitchen'"):
            add_terminal(db, facility, name="k", address="10.1.0.7", kind="kitchen")
        with pytest.raises(Conflict, match="A100 exists already"):
            add_inmate(db, facility, number="A100", name="Again")
        inmate = db.scalars(select(Inmate).where(Inmate.number == "A100")).one()
        assert inmate.group_names == ["learners"]
        set_groups(inmate, ["learners", "jobs"])
    with factory() as db:
        assert db.scalars(select(Inmate).where(Inmate.number == "A100")).one().group_names == ["jobs", "learners"]


def test_database_refuses_two_open_sessions_per_terminal(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    with factory.begin() as db:
        ids = list(db.scalars(select(Inmate.id)))
        terminal_id = db.scalars(select(Terminal.id)).first()
        db.add(InmateSession(token="t1", terminal_id=terminal_id, inmate_id=ids[0], started_at=now,
                             last_seen_at=now, expires_at=now))
    with pytest.raises(IntegrityError), factory.begin() as db:
        db.add(InmateSession(token="t2", terminal_id=terminal_id, inmate_id=ids[1], started_at=now,
                             last_seen_at=now, expires_at=now))


def test_login_binds_terminal_and_replaces_older_sessions(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    first, replaced = login(factory, POLICY, address="10.1.0.1", number="a100", pin="2468", now=now)
    assert replaced == [] and first.inmate_number == "A100" and first.terminal_name == "cell-1"
    assert resolve(factory, POLICY, "10.1.0.1", now)[1] == first
    # Same inmate at another terminal: the first session ends.
    second, replaced = login(factory, POLICY, address="10.1.0.2", number="A100", pin="2468", now=now)
    assert [r.token for r in replaced] == [first.token]
    assert resolve(factory, POLICY, "10.1.0.1", now)[1] is None
    # Another inmate at the second terminal replaces the binding there.
    third, replaced = login(factory, POLICY, address="10.1.0.2", number="B200", pin="1357", now=now)
    assert [r.token for r in replaced] == [second.token]
    assert end_session(factory, third.token, EndReason.LOGOUT, now) is not None
    assert resolve(factory, POLICY, "10.1.0.2", now)[1] is None


def test_sessions_end_when_idle_or_expired(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    active, _ = login(factory, POLICY, address="10.1.0.1", number="A100", pin="2468", now=now)
    assert resolve(factory, POLICY, "10.1.0.1", now + timedelta(minutes=14))[1] is not None
    assert resolve(factory, POLICY, "10.1.0.1", now + timedelta(minutes=16))[1] is None
    with factory() as db:
        row = db.scalars(select(InmateSession).where(InmateSession.token == active.token)).one()
        assert row.end_reason == "idle"


def test_activity_is_written_at_most_every_thirtieth_of_the_idle_time(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    active, _ = login(factory, POLICY, address="10.1.0.1", number="A100", pin="2468", now=now)

    def seen() -> object:
        with factory() as db:
            return db.scalars(select(InmateSession.last_seen_at).where(InmateSession.token == active.token)).one()

    assert POLICY.touch_every == timedelta(seconds=30)
    resolve(factory, POLICY, "10.1.0.1", now + timedelta(seconds=29), touch=True)
    assert seen() == now, "a read within 30 s of the last write leaves it"
    resolve(factory, POLICY, "10.1.0.1", now + timedelta(seconds=30), touch=True)
    assert seen() == now + timedelta(seconds=30)
    resolve(factory, POLICY, "10.1.0.1", now + timedelta(minutes=14), touch=True)
    assert resolve(factory, POLICY, "10.1.0.1", now + timedelta(minutes=28))[1] is not None, "kept alive"


def test_wrong_pins_lock_the_account_and_are_kept(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    for left in (2, 1):
        with pytest.raises(LoginRefused, match=f"{left} attempt"):
            login(factory, POLICY, address="10.1.0.1", number="A100", pin="0000", now=now)
    with pytest.raises(LoginRefused, match="locked until") as locked:
        login(factory, POLICY, address="10.1.0.1", number="A100", pin="0000", now=now)
    assert locked.value.code == "locked-now"
    with pytest.raises(LoginRefused, match="locked until"):
        login(factory, POLICY, address="10.1.0.1", number="A100", pin="2468", now=now + timedelta(minutes=5))
    active, _ = login(factory, POLICY, address="10.1.0.1", number="A100", pin="2468",
                      now=now + timedelta(minutes=16))
    assert active.inmate_number == "A100"


@pytest.mark.parametrize(("address", "number", "code"), [
    ("10.9.9.9", "A100", "unknown-terminal"),
    ("10.1.0.1", "Z999", "wrong-pin"),
])
def test_login_refusals(factory: sessionmaker[Session], address: str, number: str, code: str) -> None:
    with pytest.raises(LoginRefused) as refused:
        login(factory, POLICY, address=address, number=number, pin="2468", now=utcnow())
    assert refused.value.code == code


def test_concurrent_logins_leave_one_open_session(factory: sessionmaker[Session]) -> None:
    """Two terminals log the same inmate in at once: the database keeps at most one open session."""
    now = utcnow()
    outcomes: list[object] = []

    def attempt(address: str) -> None:
        try:
            outcomes.append(login(factory, POLICY, address=address, number="A100", pin="2468", now=now))
        except Exception as exc:  # collected and checked below: only a clear refusal is acceptable
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(a,)) for a in ("10.1.0.1", "10.1.0.2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with factory() as db:
        open_rows = db.scalars(select(InmateSession).where(InmateSession.ended_at.is_(None))).all()
    assert len(open_rows) == 1
    refusals = [o for o in outcomes if isinstance(o, Exception)]
    assert all(isinstance(o, LoginRefused) and o.code == "race" for o in refusals), refusals


def test_remove_terminal(factory: sessionmaker[Session]) -> None:
    login(factory, POLICY, address="10.1.0.1", number="A100", pin="2468", now=utcnow())
    with factory.begin() as db:
        remove_terminal(db, "cell-1")
    assert resolve(factory, POLICY, "10.1.0.1", utcnow()) == (None, None)


def test_the_migrations_build_exactly_the_models(engine: Engine) -> None:
    """A column or index added to a model without a migration (or the other way round) is named here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gatehouse.db.models import Base
    from gatehouse.resources.search import INDEX_TABLE

    def modelled(name: str | None, kind: str, parents: dict[str, str | None]) -> bool:
        """The directory's search index is made per database by its migration, not from a model."""
        table = name if kind == "table" else parents.get("table_name")
        return not (table or "").startswith(INDEX_TABLE)

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": modelled})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
