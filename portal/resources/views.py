"""The directory of services for release, for readers (inmates, and staff looking at what inmates see): a search
with filters, and each entry in plain words.

An entry is read from its HSDS objects: the schedules' iCalendar fields become days and hours in the reader's
language, languages and countries are named by Babel, and "checked 3 weeks ago" says how fresh it is. Its website
is a link only while a rule opens it to everyone; otherwise its address is shown as text with the reason, so an
inmate can note it for later instead of meeting a block page. Each entry opened is on the audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.errors import NotFound
from gatehouse.resources import entries
from gatehouse.resources.entries import WebsiteState
from gatehouse.resources.models import Facet, Service
from gatehouse.resources.search import Filters, facet_values, search
from portal import i18n
from portal.access import client_address, reader, reader_of
from portal.auth.services import record
from portal.i18n import _
from portal.keys import KERNEL, VIEWER
from portal.layout import facility_today, render
from portal.resources.words import (
    PHONE_TYPES,
    Hours,
    ages,
    category_name,
    checked_words,
    cost,
    country_name,
    language_name,
    opening_hours,
    place_name,
)
from portal.transactions import read

routes = web.RouteTableDef()
PAGE = 20
MAX_QUERY = 200
@dataclass(frozen=True, slots=True)
class Found:
    """One result of a search."""

    id: str
    name: str
    organization: str
    city: str
    categories: tuple[str, ...]
    assured: date | None
    status: str


@dataclass(frozen=True, slots=True)
class Phone:
    number: str
    kind: str
    extension: str
    description: str


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lines: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True)
class Website:
    url: str
    state: str
    """open, waiting or closed (`WebsiteState`), as the gateway treats it for inmates now."""
    forms: bool
    """Its named forms may be sent, besides reading."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    name: str
    alternate_name: str
    organization: str
    description: str
    eligibility: str
    ages: str
    application: str
    fees: str
    costs: tuple[str, ...]
    documents: tuple[str, ...]
    phones: tuple[Phone, ...]
    email: str
    hours: tuple[Hours, ...]
    places: tuple[Place, ...]
    languages: tuple[str, ...]
    areas: tuple[str, ...]
    categories: tuple[str, ...]
    assured: date | None
    status: str
    website: Website | None


def _locations(details: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [sal["location"] for sal in details.get("service_at_locations") or []
            if isinstance(sal, Mapping) and isinstance(sal.get("location"), Mapping)]


def first_city(service: Service) -> str:
    for location in _locations(service.details or {}):
        for address in location.get("addresses") or []:
            if address.get("city"):
                return str(address["city"])
    cities = service.facet(Facet.CITY)
    return place_name(cities[0]) if cities else ""


def found_of(service: Service) -> Found:
    return Found(service.id, service.name, service.organization.name, first_city(service),
                 tuple(service.facet(Facet.CATEGORY)), service.assured_date, service.status)


def _address_lines(address: Mapping[str, Any]) -> tuple[str, ...]:
    town = " ".join(str(address.get(k) or "").strip() for k in ("postal_code", "city")).strip()
    region = ", ".join(str(address.get(k)) for k in ("state_province", "region") if address.get(k))
    country = country_name(str(address["country"])) if address.get("country") else ""
    lines = (str(address.get("attention") or ""), str(address.get("address_1") or ""), town, region, country)
    return tuple(line.strip() for line in lines if line and line.strip())


def _documents(details: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for d in details.get("required_documents") or []:
        text = str(d.get("document") or "").strip()
        if d.get("uri"):
            text = f"{text} ({d['uri']})" if text else str(d["uri"])
        if text:
            out.append(text)
    return tuple(out)


def entry_of(session: Session, service: Service, opens: Callable[[str], bool] | None = None) -> Entry:
    """Everything the entry's page says, read in the caller's transaction. `opens`: for an inmate, whether the
    policy in force lets them open an address (a file rule may open a site no curated rule names)."""
    details = service.details or {}
    phones = tuple(Phone(str(p.get("number") or ""), _(PHONE_TYPES[p["type"]]) if p.get("type") in PHONE_TYPES
                         else "", str(p.get("extension") or ""), str(p.get("description") or ""))
                   for p in details.get("phones") or [] if p.get("number"))
    places = tuple(Place(str(loc.get("name") or ""), tuple(line for a in loc.get("addresses") or []
                                                           for line in _address_lines(a)),
                         str(loc.get("description") or "")) for loc in _locations(details))
    languages = tuple(dict.fromkeys(language_name(str(lang["code"]).split("-")[0]) if lang.get("code")
                                    else str(lang.get("name"))
                                    for lang in details.get("languages") or []
                                    if lang.get("code") or lang.get("name")))
    areas = tuple(" – ".join(str(a[k]) for k in ("name", "description") if a.get(k))
                  for a in details.get("service_areas") or [] if a.get("name") or a.get("description"))
    website = None
    if address := service.url or service.organization.website:
        status = entries.website_status(session, service)
        state = WebsiteState.OPEN if status.rules else WebsiteState.CLOSED  # open while a rule is in force
        if not status.rules and status.waiting:
            state = WebsiteState.WAITING
        if opens is not None and opens(address):
            state = WebsiteState.OPEN
        elif opens is not None and state is WebsiteState.OPEN:  # a rule, but not for this terminal or hour
            state = WebsiteState.CLOSED
        website = Website(address, state.value, bool(status.rules) and not status.waiting and bool(service.form_paths))
    return Entry(service.id, service.name, service.alternate_name, service.organization.name, service.description,
                 service.eligibility_description, ages(service.minimum_age, service.maximum_age),
                 service.application_process, service.fees_description,
                 tuple(c for c in (cost(o) for o in details.get("cost_options") or []) if c), _documents(details),
                 phones, service.email, tuple(opening_hours(details.get("schedules") or [])), places, languages,
                 areas, tuple(service.facet(Facet.CATEGORY)), service.assured_date, service.status, website)


def is_inmate(request: web.Request) -> bool:
    viewer = request[VIEWER]
    return viewer.inmate is not None and viewer.staff is None


def filters_of(query: Mapping[str, str]) -> Filters:
    return Filters(category=query.get("category", "")[:128], place=query.get("place", "")[:128],
                   language=query.get("language", "")[:16], conviction=query.get("conviction") == "yes")


def offset_of(query: Mapping[str, str]) -> int:
    given = query.get("from", "")
    return min(int(given), 100_000) if given.isascii() and given.isdigit() and len(given) <= 9 else 0


@dataclass(frozen=True, slots=True)
class Choices:
    categories: list[tuple[str, str]]
    cities: list[tuple[str, str]]
    regions: list[tuple[str, str]]
    languages: list[tuple[str, str]]


def choices(session: Session) -> Choices:
    """The filters' choices: every value an active entry has."""
    return Choices([(c, category_name(c)) for c, _label in facet_values(session, Facet.CATEGORY)],
                   facet_values(session, Facet.CITY), facet_values(session, Facet.REGION),
                   sorted(((c, language_name(c)) for c, _label in facet_values(session, Facet.LANGUAGE)),
                          key=lambda pair: pair[1].casefold()))


def page_links(path: str, query: Mapping[str, str], offset: int, shown: int, more: bool,
               size: int = PAGE) -> tuple[str, str]:
    """The addresses of the previous and next pages of results ("" where there is none)."""
    kept = {k: v for k, v in query.items() if k != "from" and v}
    before = urlencode({**kept, "from": max(offset - size, 0)}) if offset > 0 else ""
    after = urlencode({**kept, "from": offset + shown}) if more else ""
    return (f"{path}?{before}" if before else "", f"{path}?{after}" if after else "")


@routes.get("/resources", name="resources")
@reader
async def directory(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    query = " ".join(request.query.get("q", "").split())[:MAX_QUERY]
    filters, offset, language = filters_of(request.query), offset_of(request.query), i18n.current()

    def work(session: Session) -> tuple[list[Found], Choices]:
        rows = search(session, query, language, filters, limit=PAGE + 1, offset=offset)
        return [found_of(s) for s in rows], choices(session)

    rows, offered = await read(kernel, work)
    previous, following = page_links("/resources", request.query, offset, min(len(rows), PAGE), len(rows) > PAGE)
    asked = bool(query) or filters != Filters()
    return render(request, "resources/directory.html", {
        "title": _("Services for release"), "query": query, "filters": filters, "choices": offered,
        "rows": rows[:PAGE], "asked": asked, "previous": previous, "next_page": following, "offset": offset,
        "today": facility_today(request), "checked": checked_words, "category_name": category_name})


def _missing(request: web.Request) -> web.Response:
    return render(request, "resources/service_missing.html", {
        "title": _("Not in the directory"),
        "message": _("There is no such entry in the directory, or it is not open now.")}, status=404)


@routes.get("/resources/service/{id}", name="resources-service")
@reader
async def service_page(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    service_id, inmate = request.match_info["id"], is_inmate(request)
    viewer = request[VIEWER]

    def opens(address: str) -> bool:
        return viewer.inmate is not None and entries.opens_for(kernel.policies.snapshot, viewer.inmate.subject,
                                                               address, utcnow())

    def work(session: Session) -> Entry | None:
        try:
            service = entries.get(session, service_id)
        except NotFound:
            return None
        if inmate and service.status != "active":
            return None
        return entry_of(session, service, opens if inmate else None)

    entry = await read(kernel, work)
    if entry is None:
        return _missing(request)
    actor, terminal = reader_of(request)
    await record(kernel, AuditEvent(Tag.RESOURCES_SERVICE_VIEWED, "portal", actor=actor, terminal=terminal,
                                    client_addr=client_address(request), method="GET", path=request.path,
                                    decision="allow", reason=f"{entry.id}: {entry.name}"[:500]))
    back = request.query.get("back", "")
    return render(request, "resources/service.html", {
        "title": entry.name, "entry": entry, "inmate": inmate, "today": facility_today(request),
        "checked": checked_words, "category_name": category_name,
        "done": _("Saved to your plan.") if request.query.get("done") == "saved" else "",
        "back": back if back.startswith("/resources?") or back == "/resources" else "/resources"})
