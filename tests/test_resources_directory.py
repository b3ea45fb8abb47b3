"""The directory in the database, on SQLite and PostgreSQL alike: an HSDS feed imported and imported again (updated
by id, staff's decisions kept), exported back unchanged, searched in each portal language with its own stemming
and filtered by category, place, language and the conviction flag; stale entries, marking checked, edits, and an
entry's website opened only through a four-eyes proposal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.curation import proposals
from gatehouse.curation.models import ProposalKind
from gatehouse.db.engine import make_engine, session_factory, upgrade, utcnow
from gatehouse.errors import Conflict, InvalidInput
from gatehouse.resources import directory, entries, hsds
from gatehouse.resources.models import Facet, Service, Website
from gatehouse.resources.search import INDEX_TABLE, Filters, facet_values, search
from policies.decision import Subject
from policies.rules import parse_policy
from policies.snapshot import Snapshot

TODAY = date(2026, 12, 4)
TRIGGERS = ("everyone", "group", "course", "passthrough", "methods", "websocket", "ports")


def _address(n: str, city: str, region: str) -> hsds.Address:
    return hsds.Address(id=f"adr-{n}", address_1=f"Rue {n} 1", city=city, region=region, country="BE")


def _service(n: str, org: str, name: str, description: str, *, city: str, region: str, languages: tuple[str, ...],
             categories: tuple[str, ...], conviction: bool = False, url: str | None = None,
             assured: date | None = None, status: str = "active") -> hsds.Service:
    attributes = tuple(hsds.Attribute(id=f"att-{n}-{c}", taxonomy_term=hsds.category_term(c)) for c in categories)
    if conviction:
        attributes += (hsds.Attribute(id=f"att-{n}-conv", taxonomy_term=hsds.CONVICTION_TERM),)
    return hsds.Service(
        id=f"svc-{n}", organization_id=org, name=name, description=description, url=url, status=status,
        assured_date=assured,
        languages=tuple(hsds.Language(id=f"lang-{n}-{code}", name=code, code=code) for code in languages),
        locations=(hsds.Location(id=f"loc-{n}", name=name, addresses=(_address(n, city, region),)),),
        phones=(hsds.Phone(id=f"ph-{n}", number="+32 2 000 00 00"),),
        required_documents=(hsds.RequiredDocument(id=f"doc-{n}", document="Identiteitskaart / carte d'identité"),),
        attributes=attributes)


FEED = hsds.Directory(
    organizations=(hsds.Organization(id="org-a", name="Woonpunt Brussel", website="https://woonpunt.example"),
                   hsds.Organization(id="org-b", name="Maison de l'emploi", email="info@emploi.example")),
    services=(
        _service("1", "org-a", "Sociale woning aanvragen",
                 "Hulp bij het aanvragen van een sociale woning na je vrijlating.", city="Brussel",
                 region="Brussels", languages=("nl", "fr"), categories=("housing",), conviction=True,
                 url="https://woonpunt.example/aanvraag", assured=TODAY - timedelta(days=20)),
        _service("2", "org-b", "Recherche d'emploi accompagnée",
                 "Un conseiller vous aide à chercher un emploi et à préparer les entretiens d'embauche.",
                 city="Liège", region="Wallonie", languages=("fr",), categories=("employment",),
                 assured=TODAY - timedelta(days=400)),
        _service("3", "org-b", "Schuldhilfe", "Beratung bei Schulden und Hilfe beim Haushaltsplan.",
                 city="Eupen", region="Ostbelgien", languages=("de",), categories=("debt",)),
        _service("4", "org-a", "Oude woningdienst", "Gesloten dienst voor woningen.", city="Brussel",
                 region="Brussels", languages=("nl",), categories=("housing",), status="inactive"),
    ))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def imported(engine: Engine) -> sessionmaker[Session]:
    factory = session_factory(engine)
    with factory.begin() as session:
        done = directory.import_directory(session, FEED, now=utcnow())
    assert (done.added, done.changed, done.same) == (4, 0, 0)
    return factory


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    """The feed imported into a database of this test's own."""
    return imported(engine)


@pytest.fixture(scope="module")
def read_only(module_database_url: str) -> Iterator[sessionmaker[Session]]:
    """The feed imported once per module and database kind, for the tests that only search."""
    engine = make_engine(module_database_url)
    upgrade(engine)
    yield imported(engine)
    engine.dispose()


def names(found: list[Service]) -> list[str]:
    return [s.id for s in found]


@pytest.mark.parametrize(("query", "language", "expected"), [
    ("woningen", "nl", ["svc-1"]),  # plural in the query, singular in the entry: the Dutch stemmer joins them
    ("sociale woning", "nl", ["svc-1"]),
    ("entretiens embauche", "fr", ["svc-2"]),
    ("entretien", "fr", ["svc-2"]),
    ("demarches emploi", "fr", []),  # every word must match
    ("Schulden", "de", ["svc-3"]),
    ("schuld", "de", ["svc-3"]),
    ("woonpunt", "en", ["svc-1"]),  # the organization's name is searched too
    ("carte d identite", "fr", ["svc-1", "svc-2", "svc-3"]),  # without the accents a reader may leave out
    ("Maison de l'emploi", "en", ["svc-2", "svc-3"]),
    ("identiteitskaart", "nl", ["svc-1", "svc-2", "svc-3"]),  # a required document (inactive svc-4 left out)
    ("", "fr", ["svc-2", "svc-3", "svc-1"]),  # no words: every active entry, by name
    ("woning or schulden", "nl", []),  # "or" is a word like any other, never an operator
    ("woning OR schulden", "de", []),
])
def test_search_stems_the_query_in_the_readers_language(read_only: sessionmaker[Session], query: str,
                                                        language: str, expected: list[str]) -> None:
    with read_only() as session:
        found = names(search(session, query, language))
    assert sorted(found) == sorted(expected)
    if not query:
        assert found == expected


@pytest.mark.parametrize(("filters", "expected"), [
    (Filters(category="housing"), ["svc-1"]),
    (Filters(category="Employment"), ["svc-2"]),
    (Filters(place="liege"), ["svc-2"]),  # without the accent, as a reader types it
    (Filters(place="Brussels"), ["svc-1"]),  # a region
    (Filters(language="de"), ["svc-3"]),
    (Filters(language="fr"), ["svc-1", "svc-2"]),
    (Filters(conviction=True), ["svc-1"]),
    (Filters(category="housing", place="Liège"), []),
])
def test_filters_narrow_the_directory(read_only: sessionmaker[Session], filters: Filters,
                                      expected: list[str]) -> None:
    with read_only() as session:
        assert sorted(names(search(session, "", "en", filters))) == expected
        assert sorted(names(search(session, "", "en", filters, include_inactive=True))) == sorted(
            expected + (["svc-4"] if filters in (Filters(category="housing"), Filters(place="Brussels")) else []))


def test_facet_choices_come_from_active_entries(read_only: sessionmaker[Session]) -> None:
    with read_only() as session:
        assert facet_values(session, Facet.CATEGORY) == [("debt", "debt"), ("employment", "employment"),
                                                         ("housing", "housing")]
        assert facet_values(session, Facet.CITY) == [("brussel", "Brussel"), ("eupen", "Eupen"), ("liege", "Liège")]
        assert [v for v, _label in facet_values(session, Facet.LANGUAGE)] == ["de", "fr", "nl"]


def test_reimport_updates_by_id_and_keeps_what_staff_decided(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        entries.mark_checked(session, "svc-3", by="eva", today=TODAY, now=utcnow())
        session.get(Service, "svc-2").link_state = "dead"
    changed = replace(FEED.services[1], name="Jobcoaching", description="Un coach pour trouver du travail.")
    feed = replace(FEED, services=(FEED.services[0], changed))
    with factory.begin() as session:
        done = directory.import_directory(session, feed, now=utcnow())
    assert (done.added, done.changed, done.same) == (0, 1, 1)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Service)) == 4, "an import never deletes"
        two = session.get(Service, "svc-2")
        assert (two.name, two.link_state) == ("Jobcoaching", "dead")
        assert names(search(session, "travail", "fr")) == ["svc-2"]
        assert names(search(session, "entretien", "fr")) == [], "the old text left the index"
        assert session.get(Service, "svc-3").assurer_email == "eva"
        rows = session.execute(text(f"SELECT count(*) FROM {INDEX_TABLE}")).scalar_one()
        assert rows == 4 * 4, "one row per entry and portal language"


def test_export_gives_back_what_was_imported(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        out = directory.export_directory(session)
    assert {o.id for o in out.organizations} == {"org-a", "org-b"}
    assert sorted(out.services, key=lambda s: s.id) == sorted(FEED.services, key=lambda s: s.id)


def test_a_failed_import_leaves_the_directory_as_it_was(factory: sessionmaker[Session]) -> None:
    broken = replace(FEED.services[0], name="Nieuw", organization_id="org-missing")
    with pytest.raises(Exception), factory.begin() as session:  # noqa: B017,PT011 (the database's own refusal)
        directory.import_directory(session, replace(FEED, services=(FEED.services[2], broken)), now=utcnow())
    with factory() as session:
        assert session.get(Service, "svc-1").name == "Sociale woning aanvragen"
        assert names(search(session, "woning", "nl")) == ["svc-1"]


def test_stale_entries_are_the_unchecked_and_the_old(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        assert names(entries.stale(session, TODAY, 180)) == ["svc-3", "svc-2"]  # never checked first
        entries.mark_checked(session, "svc-2", by="eva", today=TODAY, now=utcnow())
    with factory() as session:
        assert names(entries.stale(session, TODAY, 180)) == ["svc-3"]
        assert names(entries.stale(session, TODAY, 10)) == ["svc-3", "svc-1"]
        assert session.get(Service, "svc-2").assured_date == TODAY


def test_edits_name_every_bad_field_and_reach_the_index(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        with pytest.raises(InvalidInput) as bad:
            entries.edit(session, "svc-3", {"name": " ", "url": "ftp://x", "status": "gone", "organization_id": "x"},
                         by="eva", now=utcnow())
        message = str(bad.value)
        for field in ("name:", "url:", "status:", "organization_id:"):
            assert field in message
        before, after = entries.edit(session, "svc-3", {"description": "Hilfe bei Mietschulden.",
                                                        "name": "Schuldhilfe"}, by="eva", now=utcnow())
    assert (before, after) == ({"description": "Beratung bei Schulden und Hilfe beim Haushaltsplan."},
                               {"description": "Hilfe bei Mietschulden."})
    with factory() as session:
        assert names(search(session, "mietschulden", "de")) == ["svc-3"]
        assert session.get(Service, "svc-3").updated_by == "eva"


def test_a_website_opens_only_through_four_eyes(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    with factory.begin() as session:
        with pytest.raises(InvalidInput, match="no website"):
            entries.propose_website(session, "svc-3", Website.READ, by="eva", now=now, triggers=TRIGGERS)
        with pytest.raises(InvalidInput, match="form_paths"):
            entries.propose_website(session, "svc-1", Website.FORMS, by="eva", now=now, triggers=TRIGGERS)
        made = entries.propose_website(session, "svc-1", Website.FORMS, form_paths=["/aanvraag"], by="eva", now=now,
                                       triggers=TRIGGERS)
        assert [p.spec for p in made] == [
            {"allow": ["woonpunt.example"], "description": "directory: Sociale woning aanvragen"},
            {"allow": ["woonpunt.example"], "paths": ["/aanvraag"], "methods": ["GET", "HEAD", "POST"],
             "description": "directory: forms of Sociale woning aanvragen"}]
        assert all(p.needs == "security" for p in made)
        service = session.get(Service, "svc-1")
        assert entries.website_status(session, service).state == entries.WebsiteState.WAITING
        with pytest.raises(Conflict):
            entries.propose_website(session, "svc-1", Website.READ, by="eva", now=now, triggers=TRIGGERS)
        for proposal in made:
            with pytest.raises(proposals.Refused):
                proposals.approve(session, proposal.id, by="eva", roles=["education", "security"], now=now)
            proposals.approve(session, proposal.id, by="sam", roles=["security"], now=now)
        status = entries.website_status(session, service)
        assert status.state == entries.WebsiteState.OPEN and len(status.rules) == 2
        closing = entries.propose_website(session, "svc-1", Website.READ, by="eva", now=now, triggers=TRIGGERS)
        assert [p.kind for p in closing] == [ProposalKind.REMOVE.value], "reading only: the form rule goes"
        proposals.approve(session, closing[0].id, by="sam", roles=["security"], now=now)
        status = entries.website_status(session, service)
        assert status.state == entries.WebsiteState.OPEN and len(status.rules) == 1
        with pytest.raises(InvalidInput, match="already"):
            entries.propose_website(session, "svc-1", Website.READ, by="eva", now=now, triggers=TRIGGERS)
        closed = entries.propose_website(session, "svc-1", Website.CLOSED, by="eva", now=now, triggers=TRIGGERS)
        proposals.approve(session, closed[0].id, by="sam", roles=["security"], now=now)
        assert entries.website_status(session, service).state == entries.WebsiteState.CLOSED


@pytest.mark.parametrize(("url", "terminal", "opens"), [
    ("https://woonpunt.example/aanvraag", "cell", True),
    ("https://woonpunt.example/aanvraag", "library", False),  # the rule is for cells only
    ("https://emploi.example/", "cell", False),  # no rule names it
    ("not a web address", "cell", False),
    ("ftp://woonpunt.example/", "cell", False),
])
def test_an_entry_says_whether_its_site_opens_as_the_gateway_decides(url: str, terminal: str, opens: bool) -> None:
    parsed = parse_policy("rules:\n  - id: housing\n    allow: [woonpunt.example]\n    terminals: [cell]\n", "t.yaml")
    policy = Snapshot.build(parsed.rules)
    who = Subject("A1", frozenset(), "t1", terminal, "s1")
    assert entries.opens_for(policy, who, url, utcnow()) is opens


def test_a_large_import_refreshes_the_planners_statistics_in_its_transaction(engine: Engine) -> None:
    """Past `ANALYZE_AFTER` entries PostgreSQL analyses the tables inside the import's transaction (SQLite needs
    nothing): the import still commits whole, and the statistics see the new rows."""
    many = tuple(replace(FEED.services[0], id=f"svc-many-{n}", name=f"Woning {n}")
                 for n in range(directory.ANALYZE_AFTER))
    factory = session_factory(engine)
    with factory.begin() as session:
        done = directory.import_directory(session, replace(FEED, services=many), now=utcnow())
    assert done.added == directory.ANALYZE_AFTER
    with factory() as session:
        assert len(search(session, "woning", "nl", limit=1000)) == directory.ANALYZE_AFTER
        if session.get_bind().dialect.name == "postgresql":
            counted = session.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'resources_services'"))
            assert counted.scalar_one() == directory.ANALYZE_AFTER
