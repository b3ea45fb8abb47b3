"""The directory in the database: an HSDS feed imported (all of it or nothing, updating entries by id), exported
back as HSDS, and the facets inmates filter by, taken from each entry's own HSDS objects.

An import never deletes: an entry that a new feed no longer carries stays, as staff left it, until staff mark it
inactive. What staff decided about an entry (its website, the last link check) survives a re-import; what the
feed says (names, texts, phones, hours) is the feed's and is replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gatehouse.db.engine import stored
from gatehouse.resources import hsds
from gatehouse.resources.models import Facet, Organization, Service, ServiceFacet
from gatehouse.resources.search import facet_value, reindex

M = TypeVar("M", Organization, Service)
ANALYZE_AFTER = 200
"""An import that adds or changes this many entries has PostgreSQL look at the tables again."""
FEED_FIELDS = ("name", "alternate_name", "description", "url", "email", "status", "application_process",
               "fees_description", "eligibility_description", "minimum_age", "maximum_age", "assured_date",
               "assurer_email", "last_modified")
"""HSDS service fields kept as columns; None in the feed is "" in a text column."""
TEXT_COLUMNS = frozenset(FEED_FIELDS) - {"minimum_age", "maximum_age", "assured_date", "last_modified"}


@dataclass(frozen=True, slots=True)
class Imported:
    added: int
    changed: int
    same: int
    organizations: int

    def __str__(self) -> str:
        return (f"{self.added} entries added, {self.changed} changed, {self.same} unchanged "
                f"({self.organizations} organizations)")


def _language_code(code: str | None) -> str:
    """The primary language of a tag ("nl-BE" is "nl"), as inmates pick a language."""
    return (code or "").split("-")[0].strip().lower()


def facets_of(service: hsds.Service) -> dict[tuple[str, str], str]:
    """(kind, value as looked up) → the value as the feed wrote it."""
    found: dict[tuple[str, str], str] = {}

    def add(kind: Facet, written: str | None) -> None:
        written = " ".join((written or "").split())
        if written and (value := facet_value(written)[:128]):
            found.setdefault((kind.value, value), written[:128])

    for category in hsds.categories(service):
        add(Facet.CATEGORY, category)
    for location in service.locations:
        for address in location.addresses:
            add(Facet.CITY, address.city)
            add(Facet.REGION, address.region)
            add(Facet.REGION, address.state_province)
    for area in service.service_areas:
        add(Facet.REGION, area.name)
    for language in service.languages:
        add(Facet.LANGUAGE, _language_code(language.code))
    if hsds.open_to_conviction(service):
        add(Facet.CONVICTION, "yes")
    return found


def _columns(service: hsds.Service) -> dict[str, object]:
    values: dict[str, object] = {}
    for name in FEED_FIELDS:
        value = getattr(service, name)
        values[name] = ("" if value is None else str(value)) if name in TEXT_COLUMNS else value
    if service.last_modified is not None:  # kept as naive UTC, as every time in the database
        values["last_modified"] = stored(service.last_modified)
    values["details"] = hsds.details_of(service)
    values["language"] = next((_language_code(lang.code) for lang in service.languages if lang.code), "")
    return values


def import_directory(session: Session, directory: hsds.Directory, *, now: datetime) -> Imported:
    """Add or update every organization and service of `directory` in the caller's transaction; the caller's
    rollback (on any error) leaves the directory as it was."""
    orgs = _by_id(session, Organization, {o.id for o in directory.organizations}
                  | {s.organization_id for s in directory.services})
    for org in directory.organizations:
        kept = orgs.get(org.id)
        if kept is None:
            kept = orgs[org.id] = Organization(id=org.id)
            session.add(kept)
        kept.name, kept.description = org.name, org.description or ""
        kept.email, kept.website = org.email or "", org.website or ""
    existing = _by_id(session, Service, {s.id for s in directory.services})
    added = changed = same = 0
    touched: list[Service] = []
    for service in directory.services:
        row = existing.get(service.id)
        values = _columns(service)
        wanted = facets_of(service)
        if row is None:
            row = Service(id=service.id, imported_at=now, updated_at=now, updated_by="import")
            session.add(row)
            added += 1
        elif (all(getattr(row, k) == v for k, v in values.items()) and row.organization_id == service.organization_id
              and {(f.kind, f.value): f.label for f in row.facets} == wanted):
            same += 1
            continue
        else:
            changed += 1
        row.organization_id = service.organization_id
        if service.organization_id in orgs:  # else the database refuses the unknown organization at the flush
            row.organization = orgs[service.organization_id]
        for name, value in values.items():
            setattr(row, name, value)
        row.imported_at, row.updated_at, row.updated_by = now, now, "import"
        row.facets = [ServiceFacet(kind=kind, value=value, label=label)
                      for (kind, value), label in sorted(wanted.items())]
        touched.append(row)
    session.flush()
    reindex(session, touched)
    if len(touched) >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics in the same transaction: without them PostgreSQL guesses a category has 3 services and
        # joins two filters row by row (a second a search at 20,000 services instead of 35 ms).
        session.execute(text("ANALYZE resources_services, resources_facets, resources_search"))
    return Imported(added, changed, same, len(directory.organizations))


def _by_id(session: Session, model: type[M], ids: Iterable[str]) -> dict[str, M]:
    """The rows of `model` with these ids, in one query per 500."""
    wanted, found = sorted(ids), {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found.update({row.id: row for row in session.scalars(select(model).where(model.id.in_(chunk)))})
    return found


def export_directory(session: Session, ids: Iterable[str] | None = None) -> hsds.Directory:
    """Every entry (or those of `ids`) and the organizations they belong to, as HSDS."""
    query = select(Service).order_by(Service.id)
    if ids is not None:
        query = query.where(Service.id.in_(list(ids)))
    services = list(session.scalars(query))
    orgs = {s.organization.id: s.organization for s in services}
    return hsds.Directory(
        organizations=tuple(hsds.Organization(o.id, o.name, o.description or None, o.email or None,
                                              o.website or None) for o in sorted(orgs.values(), key=lambda o: o.id)),
        services=tuple(_as_hsds(s) for s in services))


def _as_hsds(row: Service) -> hsds.Service:
    values: dict[str, Any] = {name: (getattr(row, name) or None) if name in TEXT_COLUMNS else getattr(row, name)
                              for name in FEED_FIELDS}
    values["status"] = row.status or "active"
    if row.last_modified is not None:
        values["last_modified"] = row.last_modified.replace(tzinfo=UTC)
    return hsds.with_details(hsds.Service(id=row.id, organization_id=row.organization_id, **values),
                             row.details or {})
