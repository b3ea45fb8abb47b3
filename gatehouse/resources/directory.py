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
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.resources import hsds
from gatehouse.resources.models import Facet, Organization, Service, ServiceFacet
from gatehouse.resources.search import facet_value, reindex

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


def facets_of(service: hsds.Service) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = {(Facet.CATEGORY.value, facet_value(c)) for c in hsds.categories(service)}
    for location in service.locations:
        for address in location.addresses:
            if address.city:
                found.add((Facet.CITY.value, facet_value(address.city)))
            for region in (address.region, address.state_province):
                if region:
                    found.add((Facet.REGION.value, facet_value(region)))
    found |= {(Facet.REGION.value, facet_value(area.name)) for area in service.service_areas if area.name}
    found |= {(Facet.LANGUAGE.value, _language_code(lang.code)) for lang in service.languages if lang.code}
    if hsds.open_to_conviction(service):
        found.add((Facet.CONVICTION.value, "yes"))
    return {(kind, value[:128]) for kind, value in found if value}


def _columns(service: hsds.Service) -> dict[str, object]:
    values: dict[str, object] = {}
    for name in FEED_FIELDS:
        value = getattr(service, name)
        values[name] = ("" if value is None else str(value)) if name in TEXT_COLUMNS else value
    if service.last_modified is not None:  # kept as naive UTC, as every time in the database
        values["last_modified"] = service.last_modified.astimezone(UTC).replace(tzinfo=None)
    values["details"] = hsds.details_of(service)
    values["language"] = next((_language_code(lang.code) for lang in service.languages if lang.code), "")
    return values


def import_directory(session: Session, directory: hsds.Directory, *, now: datetime) -> Imported:
    """Add or update every organization and service of `directory` in the caller's transaction; the caller's
    rollback (on any error) leaves the directory as it was."""
    for org in directory.organizations:
        kept = session.get(Organization, org.id) or Organization(id=org.id)
        kept.name, kept.description = org.name, org.description or ""
        kept.email, kept.website = org.email or "", org.website or ""
        session.add(kept)
    session.flush()
    added = changed = same = 0
    touched: list[Service] = []
    for service in directory.services:
        row = session.get(Service, service.id)
        values = _columns(service)
        wanted = facets_of(service)
        if row is None:
            row = Service(id=service.id, imported_at=now, updated_at=now, updated_by="import")
            session.add(row)
            added += 1
        elif (all(getattr(row, k) == v for k, v in values.items()) and row.organization_id == service.organization_id
              and {(f.kind, f.value) for f in row.facets} == wanted):
            same += 1
            continue
        else:
            changed += 1
        row.organization_id = service.organization_id
        for name, value in values.items():
            setattr(row, name, value)
        row.imported_at, row.updated_at, row.updated_by = now, now, "import"
        row.facets = [ServiceFacet(kind=kind, value=value) for kind, value in sorted(wanted)]
        touched.append(row)
    session.flush()
    for row in touched:
        session.refresh(row, ["organization"])
    reindex(session, touched)
    return Imported(added, changed, same, len(directory.organizations))


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
