"""The directory of services for release, for readers (inmates, and staff looking at what inmates see): a search
with filters, and each entry in plain words.

An entry is read from its HSDS objects: the schedules' iCalendar fields become days and hours in the reader's
language, languages and countries are named by Babel, and "checked 3 weeks ago" says how fresh it is. Its website
is a link only while a rule opens it to everyone; otherwise its address is shown as text with the reason, so an
inmate can note it for later instead of meeting a block page. Each entry opened is on the audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_timedelta, get_day_names
from babel.lists import format_list
from babel.numbers import format_currency
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.errors import NotFound
from gatehouse.kernel import Kernel
from gatehouse.resources import entries
from gatehouse.resources.entries import WebsiteState
from gatehouse.resources.models import Facet, Service
from gatehouse.resources.search import Filters, facet_values, search
from portal import i18n
from portal.access import client_address, reader
from portal.auth.services import record
from portal.i18n import N_, _, ngettext
from portal.keys import KERNEL, VIEWER
from portal.layout import render
from portal.transactions import read

routes = web.RouteTableDef()
PAGE = 20
MAX_QUERY = 200
CATEGORIES = {"employment": N_("Jobs and work"), "housing": N_("Housing"), "benefits": N_("Benefits"),
              "id-documents": N_("ID documents"), "health": N_("Health"), "addiction": N_("Addiction"),
              "debt": N_("Debt"), "legal": N_("Legal aid"), "family": N_("Family")}
"""The directory's categories (`hsds.CATEGORIES`) as a reader names them."""
PHONE_TYPES = {"voice": N_("Phone"), "text": N_("Text message"), "fax": N_("Fax"), "cell": N_("Mobile"),
               "video": N_("Video call"), "pager": N_("Pager"), "textphone": N_("Textphone")}
NTH = {1: N_("the first %(day)s"), 2: N_("the second %(day)s"), 3: N_("the third %(day)s"),
       4: N_("the fourth %(day)s"), 5: N_("the fifth %(day)s"), -1: N_("the last %(day)s")}
"""A weekday of the month, as RFC 5545 writes it (`1TU`, `-1FR`)."""
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


# -- words for stored values (pure: the reader's language is the only context) ---------------------------------

def category_name(code: str) -> str:
    return _(CATEGORIES[code]) if code in CATEGORIES else code


def place_name(value: str) -> str:
    """A place facet (stored in lower case, without accents) for a label."""
    return value.title()


def language_name(code: str) -> str:
    """A language code as the reader's language names it ("ar" is "Arabisch" to a Dutch reader)."""
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name(i18n.current())
    except (UnknownLocaleError, ValueError, TypeError):
        return code
    return (name[:1].upper() + name[1:]) if name else code


def country_name(code: str) -> str:
    return str(Locale.parse(i18n.current()).territories.get(code.upper(), code))


def checked_words(assured: date | None, today: date) -> str:
    """When an entry was last checked, as a relative time: "checked 3 weeks ago", "never checked"."""
    if assured is None:
        return _("never checked")
    if assured >= today:
        return _("checked today")
    return _("checked %(when)s") % {"when": format_timedelta(assured - today, granularity="day", add_direction=True,
                                                            locale=i18n.current())}


def _time(value: Any) -> str:
    try:
        return time.fromisoformat(str(value)).strftime("%H:%M") if value else ""
    except ValueError:
        return str(value)


def _day(value: Any) -> str:
    try:
        return format_date(date.fromisoformat(str(value)), "medium", locale=i18n.current()) if value else ""
    except ValueError:
        return str(value)


def weekdays(indices: Iterable[int]) -> str:
    """Monday to Friday as one span, Monday, Tuesday and Thursday as a list, in the reader's language."""
    names = get_day_names("wide", locale=i18n.current())
    runs: list[list[int]] = []
    for day in sorted(set(indices)):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    spans: list[str] = []
    for run in runs:
        spans += [f"{names[run[0]]} – {names[run[-1]]}"] if len(run) > 2 else [names[d] for d in run]
    return format_list(spans, locale=i18n.current()) if spans else ""


def _monthly_days(byday: str) -> str:
    names = get_day_names("wide", locale=i18n.current())
    parts = []
    for item in (p.strip().upper() for p in byday.split(",") if p.strip()):
        code, nth = item[-2:], item[:-2]
        if code not in DAYS:
            continue
        day = names[DAYS.index(code)]
        try:
            n = int(nth) if nth else 0
        except ValueError:
            n = 0
        parts.append(_(NTH[n]) % {"day": day} if n in NTH else day)
    return format_list(parts, locale=i18n.current()) if parts else ""


@dataclass(frozen=True, slots=True)
class Hours:
    when: str
    """Days and hours in plain words: "Monday – Friday, 08:30 – 16:30"."""
    note: str = ""
    """The schedule's own description, and the dates it holds between."""


def _hours(schedule: Mapping[str, Any]) -> str:
    opens, closes = _time(schedule.get("opens_at")), _time(schedule.get("closes_at"))
    if opens and closes:
        return f"{opens} – {closes}"
    if opens:
        return _("from %(time)s") % {"time": opens}
    return _("until %(time)s") % {"time": closes} if closes else ""


def _days(schedule: Mapping[str, Any]) -> str:
    """Which days: weekdays, weekdays of the month (`1TU`), or days of the month (`1,15`), and how often."""
    freq, byday = str(schedule.get("freq") or "").upper(), str(schedule.get("byday") or "")
    monthdays = [n.strip() for n in str(schedule.get("bymonthday") or "").split(",") if n.strip()]
    days = ""
    if freq == "MONTHLY" and byday:
        days = _("%(days)s of the month") % {"days": _monthly_days(byday)}
    elif freq == "MONTHLY" and monthdays:
        numbers = [n for n in monthdays if n != "-1"]
        spoken = [ngettext("day %(days)s of the month", "days %(days)s of the month", len(numbers))
                  % {"days": format_list(numbers, locale=i18n.current())}] if numbers else []
        if "-1" in monthdays:
            spoken.append(_("the last day of the month"))
        days = format_list(spoken, locale=i18n.current())
    elif byday:
        codes = [d.strip().upper()[-2:] for d in byday.split(",")]
        days = weekdays(DAYS.index(code) for code in codes if code in DAYS)
    interval = int(schedule.get("interval") or 1)
    if days and interval > 1 and freq in ("WEEKLY", "MONTHLY"):
        every = (ngettext("every %(num)d week", "every %(num)d weeks", interval) if freq == "WEEKLY" else
                 ngettext("every %(num)d month", "every %(num)d months", interval)) % {"num": interval}
        days = f"{days} ({every})"
    return days


def _dates(schedule: Mapping[str, Any]) -> str:
    start, end = _day(schedule.get("valid_from")), _day(schedule.get("valid_to"))
    if start and end:
        return _("from %(start)s to %(end)s") % {"start": start, "end": end}
    if start:
        return _("from %(start)s") % {"start": start}
    return _("until %(end)s") % {"end": end} if end else ""


def opening_hours(schedules: Sequence[Mapping[str, Any]]) -> list[Hours]:
    """HSDS schedules (RFC 5545 recurrences) read into days and hours, one line each."""
    found = []
    for schedule in schedules:
        when = ", ".join(part for part in (_days(schedule), _hours(schedule)) if part)
        note = "; ".join(part for part in (str(schedule.get("description") or "").strip(), _dates(schedule)) if part)
        if when:
            found.append(Hours(when[:1].upper() + when[1:], note))
        elif note:
            found.append(Hours(note[:1].upper() + note[1:]))
    return found


def ages(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return _("Ages %(low)d to %(high)d") % {"low": minimum, "high": maximum}
    if minimum is not None:
        return _("From %(num)d years old") % {"num": minimum}
    if maximum is not None:
        return _("Up to %(num)d years old") % {"num": maximum}
    return ""


def cost(option: Mapping[str, Any]) -> str:
    amount, currency = option.get("amount"), str(option.get("currency") or "")
    priced = ""
    if amount is not None:
        try:
            value = Decimal(str(amount))
            priced = format_currency(value, currency, locale=i18n.current()) if currency else f"{value}"
        except (InvalidOperation, ValueError):
            priced = str(amount)
    parts = [str(option.get("option") or "").strip(), priced, str(option.get("amount_description") or "").strip()]
    return " · ".join(p for p in parts if p)


# -- what the screens show -------------------------------------------------------------------------------------

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


def today(kernel: Kernel) -> date:
    """The facility's day, which "checked 3 weeks ago" counts from."""
    return kernel.policies.snapshot.local(utcnow()).date()


def is_inmate(request: web.Request) -> bool:
    viewer = request[VIEWER]
    return viewer.inmate is not None and viewer.staff is None


def filters_of(query: Mapping[str, str]) -> Filters:
    return Filters(category=query.get("category", "")[:128], place=query.get("place", "")[:128],
                   language=query.get("language", "")[:16], conviction=query.get("conviction") == "yes")


def offset_of(query: Mapping[str, str]) -> int:
    given = query.get("from", "")
    return min(int(given), 100_000) if given.isdigit() else 0


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
        "today": today(kernel), "checked": checked_words, "category_name": category_name})


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
    actor, terminal = ((viewer.staff.username, "") if viewer.staff is not None else
                       (viewer.inmate.inmate_number, viewer.inmate.terminal_name) if viewer.inmate is not None else
                       ("", ""))
    await record(kernel, AuditEvent(Tag.RESOURCES_SERVICE_VIEWED, "portal", actor=actor, terminal=terminal,
                                    client_addr=client_address(request), method="GET", path=request.path,
                                    decision="allow", reason=f"{entry.id}: {entry.name}"[:500]))
    back = request.query.get("back", "")
    return render(request, "resources/service.html", {
        "title": entry.name, "entry": entry, "inmate": inmate, "today": today(kernel), "checked": checked_words,
        "category_name": category_name,
        "done": _("Saved to your plan.") if request.query.get("done") == "saved" else "",
        "back": back if back.startswith("/resources?") or back == "/resources" else "/resources"})
