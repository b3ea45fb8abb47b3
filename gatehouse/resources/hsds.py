"""Open Referral HSDS 3.0 read and written: the directory of services that help people after release.

Two shapes of the same data are read: a tabular data package (a folder with `datapackage.json` and one CSV per
HSDS table, found by the resources it names) and HSDS JSON (a list of service objects as the compiled
`service.json` nests them, or an object with a `"services"` list). Both are flattened into rows of HSDS tables
and checked by the same code, so a problem reads alike wherever it came from: every problem is collected and
raised at once as `FILE:LINE: message`, FILE as the package names it, LINE the physical line where the CSV row
or the JSON object starts.

Categories and the conviction flag are HSDS attributes: a taxonomy term of taxonomy `gatehouse-category` whose
code is one of `CATEGORIES`, and the term of taxonomy `gatehouse-eligibility` with code `open-to-conviction`.
Terms of other taxonomies are kept as they are. Phones, schedules and languages that belong only to a location
or an organization, and attributes of anything but a service, are outside this model and left out.

A feed comes from outside and a written package is opened in spreadsheets: a cell of free text that a spreadsheet
would take for a formula (`=`, `+`, `-`, `@`) is written with a leading `'`, which reading takes off again.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gatehouse.errors import InvalidInput

CATEGORY_TAXONOMY = "gatehouse-category"
CATEGORIES = ("employment", "housing", "benefits", "id-documents", "health", "addiction", "debt", "legal",
              "family", "education")
ELIGIBILITY_TAXONOMY = "gatehouse-eligibility"
OPEN_TO_CONVICTION = "open-to-conviction"
"""The one eligibility code: the service takes people with a conviction (many state they do not)."""
_SAL_NAMESPACE = uuid.UUID("6f1d7a52-4c3e-5b8a-9d0e-2a7c1b9e4f30")


# -- the directory -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    description: str | None = None
    email: str | None = None
    website: str | None = None


@dataclass(frozen=True, slots=True)
class Address:
    id: str
    address_1: str | None = None
    city: str | None = None
    region: str | None = None
    state_province: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    name: str | None = None
    description: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class Phone:
    id: str
    number: str
    extension: int | None = None
    type: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """One RFC 5545 recurrence as HSDS flattens it: `byday` like `MO,TU` or `2MO`, `bymonthday` like `1,15`."""

    id: str
    freq: str | None = None
    interval: int | None = None
    byday: str | None = None
    bymonthday: str | None = None
    dtstart: date | None = None
    until: date | None = None
    wkst: str | None = None
    opens_at: time | None = None
    closes_at: time | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    timezone: float | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Language:
    id: str
    name: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceArea:
    id: str
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RequiredDocument:
    id: str
    document: str
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class CostOption:
    id: str
    option: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    amount_description: str | None = None


@dataclass(frozen=True, slots=True)
class TaxonomyTerm:
    id: str
    name: str
    code: str | None = None
    taxonomy: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Attribute:
    id: str
    taxonomy_term: TaxonomyTerm
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    organization_id: str
    name: str
    alternate_name: str | None = None
    description: str | None = None
    url: str | None = None
    email: str | None = None
    status: str = "active"
    application_process: str | None = None
    fees_description: str | None = None
    eligibility_description: str | None = None
    minimum_age: int | None = None
    maximum_age: int | None = None
    assured_date: date | None = None
    assurer_email: str | None = None
    last_modified: datetime | None = None
    phones: tuple[Phone, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    languages: tuple[Language, ...] = ()
    service_areas: tuple[ServiceArea, ...] = ()
    required_documents: tuple[RequiredDocument, ...] = ()
    cost_options: tuple[CostOption, ...] = ()
    locations: tuple[Location, ...] = ()
    attributes: tuple[Attribute, ...] = ()


@dataclass(frozen=True, slots=True)
class Directory:
    organizations: tuple[Organization, ...] = ()
    services: tuple[Service, ...] = ()


def categories(service: Service) -> tuple[str, ...]:
    """The Gatehouse categories of a service, in the order its attributes give them."""
    return tuple(a.taxonomy_term.code for a in service.attributes
                 if a.taxonomy_term.taxonomy == CATEGORY_TAXONOMY and a.taxonomy_term.code)


def open_to_conviction(service: Service) -> bool:
    return any(a.taxonomy_term.taxonomy == ELIGIBILITY_TAXONOMY and a.taxonomy_term.code == OPEN_TO_CONVICTION
               for a in service.attributes)


def category_term(code: str, name: str | None = None) -> TaxonomyTerm:
    """The term of a Gatehouse category, with the id a written package gives it."""
    if code not in CATEGORIES:
        raise ValueError(f"{code!r} is not a Gatehouse category ({', '.join(CATEGORIES)})")
    return TaxonomyTerm(f"{CATEGORY_TAXONOMY}-{code}", name or code, code, CATEGORY_TAXONOMY)


CONVICTION_TERM = TaxonomyTerm(f"{ELIGIBILITY_TAXONOMY}-{OPEN_TO_CONVICTION}", "Open to people with a conviction",
                               OPEN_TO_CONVICTION, ELIGIBILITY_TAXONOMY)


# -- problems ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    """Where the row or object starts; 0 when the problem is the whole file (it is missing)."""
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class HsdsError(InvalidInput):
    """Every problem found in a directory, each `FILE:LINE: message`."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


# -- fields --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Kind:
    type: str
    """The Frictionless field type a written package declares."""
    parse: Callable[[str], Any]
    """Raises ValueError (or ArithmeticError) when the text is not one."""
    expected: str


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_MAGNITUDE = 30
"""No number a directory holds (an age, a coordinate, an amount) has more than this many digits before its point."""


def _matching(pattern: str, convert: Callable[[str], Any] = str) -> Callable[[str], Any]:
    compiled = re.compile(pattern)

    def parse(text: str) -> Any:
        if not compiled.fullmatch(text):
            raise ValueError(text)
        return convert(text)
    return parse


def _one_of(options: tuple[str, ...], fold: Callable[[str], str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if fold(text) not in options:
            raise ValueError(text)
        return fold(text)
    return parse


def _decimal(text: str) -> Decimal:
    if not _NUMBER.fullmatch(text):
        raise ValueError(text)
    number = Decimal(text)
    if number.adjusted() > _MAGNITUDE:  # int(Decimal("1e999999999")) runs for hours, holding the GIL
        raise ValueError(text)
    return number


def _whole(text: str) -> int:
    number = _decimal(text)
    if number != number.to_integral_value():
        raise ValueError(text)
    return int(number)


def _within(low: float, high: float, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = convert(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value
    return parse


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"\s", text):
        raise ValueError(text)
    return text


def _byday(text: str) -> str:
    parts = [p.strip().upper() for p in text.split(",")]
    if not all(re.fullmatch(r"(?:[+-]?[1-5])?(?:MO|TU|WE|TH|FR|SA|SU)", p) for p in parts):
        raise ValueError(text)
    return ",".join(parts)


def _bymonthday(text: str) -> str:
    days = [_whole(p.strip()) for p in text.split(",")]
    if not all(1 <= abs(d) <= 31 for d in days):
        raise ValueError(text)
    return ",".join(map(str, days))


_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d"
_ZONE = rf"(?:Z|[+-]{_TIME})"
TEXT = _Kind("string", str, "text")
DATE = _Kind("date", _matching(r"\d{4}-\d\d-\d\d", date.fromisoformat), "a date (YYYY-MM-DD)")
DATETIME = _Kind("datetime", _matching(rf"\d{{4}}-\d\d-\d\d[T ]{_TIME}(?::[0-5]\d(?:\.\d+)?)?{_ZONE}",
                                       datetime.fromisoformat),
                 "a date and time with its time zone (YYYY-MM-DDTHH:MM:SSZ or with an offset like +01:00)")
TIME = _Kind("time", _matching(rf"{_TIME}(?::[0-5]\d)?{_ZONE}?", time.fromisoformat), "a time (HH:MM or HH:MM:SS)")
AGE = _Kind("integer", _within(0, 150, _whole), "an age in whole years (0 to 150)")
LATITUDE = _Kind("number", _within(-90, 90, lambda t: float(_decimal(t))), "a latitude (a number from -90 to 90)")
LONGITUDE = _Kind("number", _within(-180, 180, lambda t: float(_decimal(t))),
                  "a longitude (a number from -180 to 180)")
AMOUNT = _Kind("number", _within(0, float("inf"), _decimal), "an amount (a number of 0 or more, like 12.50)")
CURRENCY = _Kind("string", _matching(r"[A-Za-z]{3}", str.upper), "a currency code (three letters, like EUR)")
COUNTRY = _Kind("string", _matching(r"[A-Za-z]{2}", str.upper), "a country code (two letters, like BE)")
EMAIL = _Kind("string", _matching(r"[^@\s]+@[^@\s]+\.[^@\s]+"), "an e-mail address (name@example.org)")
URL = _Kind("string", _url, "a web address (http:// or https://)")
STATUS = _Kind("string", _one_of(("active", "inactive", "defunct", "temporarily closed"), str.lower),
               "a service status (active, inactive, defunct or temporarily closed)")
PHONE_TYPE = _Kind("string", _one_of(("text", "voice", "fax", "cell", "video", "pager", "textphone"), str.lower),
                   "a phone type (text, voice, fax, cell, video, pager or textphone)")
EXTENSION = _Kind("integer", _matching(r"\d{1,9}", int), "an extension (digits only)")
FREQ = _Kind("string", _one_of(("WEEKLY", "MONTHLY"), str.upper), "a frequency (WEEKLY or MONTHLY)")
INTERVAL = _Kind("integer", _within(1, float("inf"), _whole), "an interval (a whole number of 1 or more)")
BYDAY = _Kind("string", _byday, "a list of days (MO, TU, WE, TH, FR, SA, SU, comma separated; "
                                "a day may start with its ordinal in the month, as in 2MO or -1FR)")
BYMONTHDAY = _Kind("string", _bymonthday, "a list of days of the month (1 to 31 or -31 to -1, comma separated)")
WKST = _Kind("string", _one_of(_DAYS, str.upper), "a day (MO, TU, WE, TH, FR, SA or SU)")
TIMEZONE = _Kind("number", _within(-12, 14, lambda t: float(_decimal(t))), "a UTC offset in hours (-12 to 14)")
LANGUAGE_CODE = _Kind("string", _matching(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*"),
                      "a language code (BCP 47, like fr, nl or nl-BE)")
_FREE = (TEXT, EMAIL)
"""The kinds whose text is anybody's (a name, a description, an address), which a CSV cell may hold as a formula."""


# -- tables --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Table:
    fields: Mapping[str, _Kind]
    """What a row holds besides its links, by HSDS name: the dataclass's own fields (Attribute and the
    service_at_location link are built by hand)."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Columns that name a row of another table (column → table)."""
    required: tuple[str, ...] = ("id",)
    check: Callable[[Mapping[str, Any]], Iterator[str]] | None = None
    lengths: Mapping[str, int] = field(default_factory=dict)
    """The most characters a column may hold, where the database keeps it in a column of that size."""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(["id", *self.links, *self.fields]))


def _check_service(v: Mapping[str, Any]) -> Iterator[str]:
    if "/" in (v["id"] or "") or v["id"] in (".", ".."):  # the portal's pages of an entry have its id in their path
        yield f"id {v['id']!r} cannot be part of a web address (no / in it, and not . or ..)"
    low, high = v.get("minimum_age"), v.get("maximum_age")
    if low is not None and high is not None and low > high:
        yield f"minimum_age {low} is above maximum_age {high}"


def _check_schedule(v: Mapping[str, Any]) -> Iterator[str]:
    for first, last in (("valid_from", "valid_to"), ("dtstart", "until")):
        if v.get(first) and v.get(last) and v[last] < v[first]:
            yield f"{last} {v[last]} is before {first} {v[first]}"


def _check_language(v: Mapping[str, Any]) -> Iterator[str]:
    if not v.get("name") and not v.get("code"):
        yield "a language needs a name or a code"


def _check_term(v: Mapping[str, Any]) -> Iterator[str]:
    if v.get("taxonomy") == CATEGORY_TAXONOMY and v.get("code") not in CATEGORIES:
        yield f"code {v.get('code')!r} is not a Gatehouse category ({', '.join(CATEGORIES)})"
    if v.get("taxonomy") == ELIGIBILITY_TAXONOMY and v.get("code") != OPEN_TO_CONVICTION:
        yield f"code {v.get('code')!r} is not a Gatehouse eligibility flag ({OPEN_TO_CONVICTION})"


def _text_fields(*names: str, **kinds: _Kind) -> dict[str, _Kind]:
    return {"id": TEXT, **{n: TEXT for n in names}, **kinds}


TABLES: dict[str, _Table] = {
    "organization": _Table(_text_fields("name", "description", email=EMAIL, website=URL), required=("id", "name"),
                           lengths={"id": 100, "name": 255, "email": 255, "website": 1024}),
    "service": _Table(
        _text_fields("organization_id", "name", "alternate_name", "description", url=URL, email=EMAIL,
                     status=STATUS, application_process=TEXT, fees_description=TEXT, eligibility_description=TEXT,
                     minimum_age=AGE, maximum_age=AGE, assured_date=DATE, assurer_email=EMAIL,
                     last_modified=DATETIME),
        {"organization_id": "organization"}, ("id", "organization_id", "name", "status"), _check_service,
        {"id": 100, "organization_id": 100, "name": 255, "alternate_name": 255, "url": 1024, "email": 255,
         "assurer_email": 255}),
    "location": _Table(_text_fields("name", "description", latitude=LATITUDE, longitude=LONGITUDE)),
    "address": _Table(_text_fields("address_1", "city", "region", "state_province", "postal_code", country=COUNTRY),
                      {"location_id": "location"}, ("id", "location_id")),
    "service_at_location": _Table(_text_fields(), {"service_id": "service", "location_id": "location"},
                                  ("id", "service_id", "location_id")),
    "phone": _Table(_text_fields("number", extension=EXTENSION, type=PHONE_TYPE, description=TEXT),
                    {"service_id": "service"}, ("id", "number")),
    "schedule": _Table(
        _text_fields(freq=FREQ, interval=INTERVAL, byday=BYDAY, bymonthday=BYMONTHDAY, dtstart=DATE, until=DATE,
                     wkst=WKST, opens_at=TIME, closes_at=TIME, valid_from=DATE, valid_to=DATE, timezone=TIMEZONE,
                     description=TEXT),
        {"service_id": "service"}, check=_check_schedule),
    "language": _Table(_text_fields("name", code=LANGUAGE_CODE), {"service_id": "service"}, check=_check_language),
    "service_area": _Table(_text_fields("name", "description"), {"service_id": "service"}),
    "required_document": _Table(_text_fields("document", uri=URL), {"service_id": "service"},
                                ("id", "service_id", "document")),
    "cost_option": _Table(_text_fields("option", amount=AMOUNT, currency=CURRENCY, amount_description=TEXT),
                          {"service_id": "service"}, ("id", "service_id")),
    "taxonomy_term": _Table(_text_fields("name", "code", "taxonomy", "description"), required=("id", "name"),
                            check=_check_term),
    "attribute": _Table(_text_fields("link_entity", "value"),
                        {"link_id": "service", "taxonomy_term_id": "taxonomy_term"},
                        ("id", "link_id", "taxonomy_term_id")),
}
"""In the order a package is written: a table comes after the tables it names."""
_CHILDREN = {"phones": "phone", "schedules": "schedule", "languages": "language", "service_areas": "service_area",
             "required_documents": "required_document", "cost_options": "cost_option"}
"""A service's own lists in HSDS JSON and the tables they are rows of."""
_CLASSES: dict[str, Callable[..., Any]] = {
    "phone": Phone, "schedule": Schedule, "language": Language, "service_area": ServiceArea,
    "required_document": RequiredDocument, "cost_option": CostOption}


# -- reading -------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Row:
    file: str
    line: int
    cells: dict[str, str | None]
    label: str = ""
    """What the row is, said before each message where the file name does not say it (HSDS JSON)."""
    invalid: set[str] = field(default_factory=set)
    """Cells already reported as holding no value at all (a list where text belongs)."""


@dataclass(slots=True)
class _Found:
    """The rows of each table as read, before anything they say is checked."""

    rows: dict[str, list[_Row]] = field(default_factory=lambda: {name: [] for name in TABLES})
    broken: set[str] = field(default_factory=set)
    """Tables that could not be read: what names their rows is not checked, it would only repeat the problem."""
    problems: list[Problem] = field(default_factory=list)

    def bad(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message))


def read(path: Path) -> Directory:
    """The directory in a package folder, its datapackage.json, or an HSDS JSON file.

    Raises HsdsError with every problem found, sorted by file and line."""
    found = _Found()
    if path.is_dir():
        _read_package(path, found)
    elif path.name == "datapackage.json" and path.is_file():
        _read_package(path.parent, found)
    elif path.is_file():
        document = _parse_json(path.name, path.read_bytes(), found)
        if document is not _FAILED:
            _Flattener(path.name, found).services(document)
    else:
        found.bad(path.name, 0, "no such file or folder")
    directory = _assemble(found)
    if found.problems:
        raise HsdsError(sorted(found.problems, key=lambda p: (p.file, p.line)))
    return directory


def _decode(file: str, data: bytes, found: _Found) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        found.bad(file, data.count(b"\n", 0, exc.start) + 1,
                  f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be read as UTF-8); save the file as UTF-8")
        return None


class _Object(dict[str, Any]):
    """A JSON object that knows the line it starts on."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line


class _Array(list[Any]):
    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line


class _JsonSyntax(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos


_FAILED = object()
_NOT_TEXT = re.compile(r"[\x00\ud800-\udfff]")
"""NUL (which PostgreSQL refuses) and halves of a surrogate pair (which are not UTF-8), as JSON's \\u escapes
can write them."""
_BLANK = re.compile(r"[ \t\r\n]*")


class _LinedJson:
    """A JSON decoder that keeps the line where each object and list starts: the structure is parsed here,
    strings and numbers by `json` (numbers as Decimal, so an amount is read as written)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.scalars = json.JSONDecoder(parse_float=Decimal)

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def document(self) -> Any:
        value, end = self.value(0)
        end = self.skip(end)
        if end < len(self.text):
            raise _JsonSyntax(end, "Extra data")
        return value

    def skip(self, pos: int) -> int:
        blank = _BLANK.match(self.text, pos)
        return blank.end() if blank else pos

    def value(self, pos: int) -> tuple[Any, int]:
        pos = self.skip(pos)
        if self.text.startswith("{", pos):
            return self.members(pos)
        if self.text.startswith("[", pos):
            return self.items(pos)
        return self.scalar(pos)

    def scalar(self, pos: int) -> tuple[Any, int]:
        try:
            return self.scalars.raw_decode(self.text, pos)
        except json.JSONDecodeError as exc:
            raise _JsonSyntax(exc.pos, exc.msg) from None
        except ValueError:  # int() refuses a whole number longer than Python's limit (a ValueError, not a JSON one)
            raise _JsonSyntax(pos, f"a number of more than {sys.get_int_max_str_digits()} digits") from None

    def after(self, pos: int, close: str) -> tuple[bool, int]:
        """Past the comma or the closing bracket that follows a member or an item: (closed, position)."""
        pos = self.skip(pos)
        if self.text.startswith(",", pos):
            return False, pos + 1
        if self.text.startswith(close, pos):
            return True, pos + 1
        raise _JsonSyntax(pos, "Expecting ',' delimiter")

    def members(self, start: int) -> tuple[_Object, int]:
        found = _Object(self.line(start))
        pos = self.skip(start + 1)
        if self.text.startswith("}", pos):
            return found, pos + 1
        while True:
            pos = self.skip(pos)
            if not self.text.startswith('"', pos):
                raise _JsonSyntax(pos, "Expecting property name enclosed in double quotes")
            key, end = self.scalar(pos)
            if key in found:
                raise _JsonSyntax(pos, f"key {key!r} given twice in one object")
            end = self.skip(end)
            if not self.text.startswith(":", end):
                raise _JsonSyntax(end, "Expecting ':' delimiter")
            found[key], pos = self.value(end + 1)
            closed, pos = self.after(pos, "}")
            if closed:
                return found, pos

    def items(self, start: int) -> tuple[_Array, int]:
        found = _Array(self.line(start))
        pos = self.skip(start + 1)
        if self.text.startswith("]", pos):
            return found, pos + 1
        while True:
            item, pos = self.value(pos)
            found.append(item)
            closed, pos = self.after(pos, "]")
            if closed:
                return found, pos


def _parse_json(file: str, data: bytes, found: _Found) -> Any:
    """The document with its objects' lines, or _FAILED once the problem is recorded."""
    text = _decode(file, data, found)
    if text is None:
        return _FAILED
    parser = _LinedJson(text)
    try:
        return parser.document()
    except _JsonSyntax as exc:
        line = parser.line(exc.pos)
        column = exc.pos - (parser.newlines[line - 2] if line > 1 else -1)
        found.bad(file, line, f"not valid JSON at column {column}: {str(exc).removesuffix(' at')}")
    except RecursionError:
        found.bad(file, 1, "not valid JSON: nested too deeply")
    return _FAILED


def _read_package(folder: Path, found: _Found) -> None:
    index = "datapackage.json"
    try:
        data = (folder / index).read_bytes()
    except FileNotFoundError:
        found.bad(index, 0, "no such file; a data package folder holds datapackage.json and the CSV files it names")
        found.broken.update(TABLES)
        return
    package = _parse_json(index, data, found)
    resources = package.get("resources") if isinstance(package, _Object) else None
    if not isinstance(package, _Object) or not isinstance(resources, _Array):
        if package is not _FAILED:
            found.bad(index, getattr(package, "line", 1), 'expected an object with a "resources" list')
        found.broken.update(TABLES)
        return
    named: set[str] = set()
    for resource in resources:
        table = resource.get("name") if isinstance(resource, _Object) else None
        if not isinstance(resource, _Object) or not isinstance(table, str) or table not in TABLES:
            continue
        if table in named:
            found.bad(index, resource.line, f"resource {table!r} is named twice")
            continue
        named.add(table)
        rows = _read_resource(folder, index, table, resource, found)
        if rows is None:
            found.broken.add(table)
        else:
            found.rows[table] = rows
    for table in ("organization", "service"):
        if table not in named:
            found.bad(index, package.line, f"no resource named {table!r}; a directory needs its {table} table")
            found.broken.add(table)


def _read_resource(folder: Path, index: str, table: str, resource: _Object, found: _Found) -> list[_Row] | None:
    path = resource.get("path")
    if not isinstance(path, str) or not _inside(path):
        found.bad(index, resource.line, f"resource {table!r}: path {path!r} is not the name of a file in the package")
        return None
    if not (folder / path).is_file():
        found.bad(index, resource.line, f"resource {table!r} names {path}, which is not in the package")
        return None
    if not (folder / path).resolve().is_relative_to(folder.resolve()):  # its rows would print another file's lines
        found.bad(index, resource.line, f"resource {table!r}: {path} is a link to a file outside the package")
        return None
    dialect = resource.get("dialect")
    delimiter = dialect.get("delimiter", ",") if isinstance(dialect, _Object) else ","
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        found.bad(index, resource.line, f"resource {table!r}: delimiter {delimiter!r} is not one character")
        return None
    return _read_csv(path, (folder / path).read_bytes(), table, delimiter, found)


def _inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not PurePosixPath(path).is_absolute() and ".." not in parts and "\\" not in path


def _read_csv(file: str, data: bytes, table: str, delimiter: str, found: _Found) -> list[_Row] | None:
    """The rows of one table, each at the physical line it starts on; None when the file cannot be read."""
    text = _decode(file, data, found)
    if text is None:
        return None
    spec = TABLES[table]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        found.bad(file, 1, f"the file is empty; expected a header row naming {', '.join(spec.required)} at least")
        return None
    except csv.Error as exc:
        found.bad(file, 1, f"not valid CSV: {exc}")
        return None
    problems = [f"no column {column!r}; {table} needs {', '.join(spec.required)}"
                for column in spec.required if column not in header]
    problems += [f"column {column!r} given twice" for column in spec.columns if header.count(column) > 1]
    for message in problems:
        found.bad(file, 1, message)
    if problems:
        return None
    where = {column: header.index(column) for column in spec.columns if column in header}
    rows: list[_Row] = []
    end = reader.line_num
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            found.bad(file, start, f"not valid CSV: {exc}")
            return None
        end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            found.bad(file, start, f"{len(cells)} cells where the header has {len(header)}")
            continue
        rows.append(_Row(file, start, {column: _unquoted(cells[i].strip(), spec.fields.get(column, TEXT)) or None
                                       for column, i in where.items()}))


class _Flattener:
    """HSDS JSON's nested objects as rows of the tables they stand for, each at the line its object starts.

    An organization, location or taxonomy term that several services nest is one row; given differently under
    the same id it is a problem. A nested object's id fills the link column of the object it is nested in."""

    def __init__(self, file: str, found: _Found) -> None:
        self.file = file
        self.found = found
        self.first: dict[tuple[str, str], _Object] = {}

    def bad(self, line: int, message: str) -> None:
        self.found.bad(self.file, line, message)

    def services(self, document: Any) -> None:
        listed = document.get("services") if isinstance(document, _Object) else document
        if not isinstance(listed, _Array):
            self.bad(getattr(document, "line", 1), 'expected a list of services, or an object with a "services" list')
            return
        for n, service in enumerate(listed, 1):
            if isinstance(service, _Object):
                self.service(service)
            else:
                self.bad(listed.line, f"item {n} of the services is not an object")

    def service(self, obj: _Object) -> None:
        row = self.row("service", obj)
        service_id = row.cells["id"]
        self.nested(row, "organization_id", obj, "organization", "organization")
        for key, table in _CHILDREN.items():
            for item in self.items(obj, key, row.label):
                self.row(table, item, service_id=service_id)
        for item in self.items(obj, "service_at_locations", row.label):
            link = self.row("service_at_location", item, service_id=service_id)
            location = self.nested(link, "location_id", item, "location", "location")
            if location is not None:
                for address in self.items(item["location"], "addresses", location.label):
                    self.row("address", address, location_id=location.cells["id"])
        for item in self.items(obj, "attributes", row.label):
            link = self.row("attribute", item, link_id=service_id, link_entity="service")
            self.nested(link, "taxonomy_term_id", item, "taxonomy_term", "taxonomy_term")

    def row(self, table: str, obj: _Object, **links: str | None) -> _Row:
        row = _Row(self.file, obj.line, {}, f"{table}: ")
        row.cells = {column: self.cell(obj, column, row) for column in TABLES[table].columns} | links
        self.found.rows[table].append(row)
        return row

    def cell(self, obj: _Object, key: str, row: _Row) -> str | None:
        value = obj.get(key)
        if isinstance(value, bool | _Object | _Array):
            kind = "true or false" if isinstance(value, bool) else "an object" if isinstance(value, dict) else "a list"
            self.bad(obj.line, f"{row.label}{key} must be text or a number, not {kind}")
            row.invalid.add(key)
            return None
        return None if value is None else str(value).strip() or None

    def items(self, obj: _Object, key: str, label: str) -> list[_Object]:
        listed = obj.get(key)
        if listed is None:
            return []
        if not isinstance(listed, _Array):
            self.bad(obj.line, f"{label}{key} must be a list")
            return []
        for n, item in enumerate(listed, 1):
            if not isinstance(item, _Object):
                self.bad(listed.line, f"{label}item {n} of {key} is not an object")
        return [item for item in listed if isinstance(item, _Object)]

    def nested(self, row: _Row, column: str, parent: _Object, key: str, table: str) -> _Row | None:
        """The row of the object nested under `key` when this is its first appearance; its id goes in `column`."""
        child = parent.get(key)
        if child is None:
            return None
        if not isinstance(child, _Object):
            self.bad(parent.line, f"{row.label}{key} must be an object")
            return None
        child_id = child.get("id")
        child_id = str(child_id).strip() if isinstance(child_id, str | int) else None
        if row.cells[column] is None:
            row.cells[column] = child_id
        elif child_id and child_id != row.cells[column]:
            self.bad(parent.line,
                     f"{row.label}{column} {row.cells[column]!r} is not the id of its {key} ({child_id!r})")
        if child_id is not None:
            first = self.first.setdefault((table, child_id), child)
            if first is not child:
                if first != child:
                    self.bad(child.line, f"{table} {child_id!r} is not the same as on line {first.line}")
                return None
        return self.row(table, child)


def _assemble(found: _Found) -> Directory:
    """Every row checked, then the directory built from rows that all passed (an empty one if any did not)."""
    parsed: dict[str, list[tuple[_Row, dict[str, Any]]]] = {}
    for name, table in TABLES.items():
        parsed[name] = []
        lines: dict[str, int] = {}
        for row in found.rows[name]:
            if name == "attribute" and (row.cells.get("link_entity") or "service").lower() != "service":
                continue
            values = _parse(row, table, found)
            key = values["id"]
            if key is not None and key in lines:
                found.bad(row.file, row.line, f"{row.label}id {key!r} is already used on line {lines[key]}")
                continue
            if key is not None:
                lines[key] = row.line
            parsed[name].append((row, values))
    ids = {name: {values["id"] for _, values in rows} for name, rows in parsed.items()}
    for name, table in TABLES.items():
        for row, values in parsed[name]:
            for column, target in table.links.items():
                ref = values[column]
                if ref is not None and target not in found.broken and ref not in ids[target]:
                    found.bad(row.file, row.line, f"{row.label}{column} {ref!r} names no {target.replace('_', ' ')}")
    if found.problems:
        return Directory()
    return _build({name: [values for _, values in rows] for name, rows in parsed.items()})


def _parse(row: _Row, table: _Table, found: _Found) -> dict[str, Any]:
    values: dict[str, Any] = {}
    well_formed = True
    for column in table.columns:
        text, kind = row.cells.get(column), table.fields.get(column, TEXT)
        values[column] = None
        if text is None:
            if column in table.required and column not in row.invalid:
                found.bad(row.file, row.line, f"{row.label}no {column} (required)")
            continue
        if unfit := _NOT_TEXT.search(text):
            found.bad(row.file, row.line, f"{row.label}{column} holds the character U+{ord(unfit.group()):04X}, "
                                          "which is not text (a database cannot store it)")
            well_formed = False
            continue
        if len(text) > table.lengths.get(column, len(text)):
            found.bad(row.file, row.line, f"{row.label}{column} is {len(text)} characters long; at most "
                                          f"{table.lengths[column]}")
            well_formed = False
        try:
            values[column] = kind.parse(text)
        except (ValueError, ArithmeticError):
            found.bad(row.file, row.line, f"{row.label}{column} {text!r} is not {kind.expected}")
            well_formed = False
    if well_formed and table.check is not None:
        for message in table.check(values):
            found.bad(row.file, row.line, f"{row.label}{message}")
    return values


_T = TypeVar("_T")


def _make(cls: Callable[..., _T], table: str, values: Mapping[str, Any], **nested: Any) -> _T:
    return cls(**{name: values[name] for name in TABLES[table].fields}, **nested)


def _grouped(rows: list[dict[str, Any]], column: str,
             build: Callable[[dict[str, Any]], Any]) -> dict[str, tuple[Any, ...]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for values in rows:
        if values[column] is not None:
            groups[values[column]].append(build(values))
    return {key: tuple(items) for key, items in groups.items()}


def _build(rows: dict[str, list[dict[str, Any]]]) -> Directory:
    terms = {v["id"]: _make(TaxonomyTerm, "taxonomy_term", v) for v in rows["taxonomy_term"]}
    addresses = _grouped(rows["address"], "location_id", lambda v: _make(Address, "address", v))
    locations = {v["id"]: _make(Location, "location", v, addresses=addresses.get(v["id"], ()))
                 for v in rows["location"]}
    nested = {key: _grouped(rows[table], "service_id", partial(_make, _CLASSES[table], table))
              for key, table in _CHILDREN.items()}
    nested["locations"] = _grouped(rows["service_at_location"], "service_id", lambda v: locations[v["location_id"]])
    nested["attributes"] = _grouped(rows["attribute"], "link_id",
                                    lambda v: Attribute(v["id"], terms[v["taxonomy_term_id"]], v["value"]))
    return Directory(
        tuple(_make(Organization, "organization", v) for v in rows["organization"]),
        tuple(_make(Service, "service", v, **{key: groups.get(v["id"], ()) for key, groups in nested.items()})
              for v in rows["service"]))


# -- writing -------------------------------------------------------------------------------------------------

def write_package(directory: Directory, folder: Path) -> list[Path]:
    """One CSV per HSDS table and the datapackage.json that describes them; returns the paths written,
    datapackage.json first."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = _table_rows(directory)
    written = []
    for name, table in TABLES.items():
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(table.columns)
            writer.writerows([_cell(values[column], table.fields.get(column, TEXT)) for column in table.columns]
                             for values in rows[name])
        written.append(path)
    index = folder / "datapackage.json"
    package = {"name": "release-services", "profile": "tabular-data-package",
               "resources": [_resource(name, table) for name, table in TABLES.items()]}
    index.write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [index, *written]


def write_json(directory: Directory, path: Path) -> None:
    """The services as HSDS JSON, each with its organization and the rest nested. An organization that runs no
    service has no place in this shape and is left out; read back, organizations come in the order services
    first name them."""
    organizations = {o.id: o for o in directory.organizations}
    services = [_service_json(s, organizations.get(s.organization_id)) for s in directory.services]
    path.write_text(json.dumps(services, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


DETAILS = (*_CHILDREN, "service_at_locations", "attributes")
"""The keys of `details_of`: a service's nested HSDS lists."""


def details_of(service: Service) -> dict[str, Any]:
    """A service's nested objects (phones, schedules, languages, ..., locations, attributes) as HSDS JSON, to keep
    beside its own fields in one JSON column; `with_details` reads them back."""
    whole = _service_json(service, None)
    return {key: whole[key] for key in DETAILS}


def with_details(service: Service, details: Mapping[str, Any]) -> Service:
    """`service` with the nested objects of `details` (as `details_of` gives them), checked as a read checks them;
    HsdsError (file `details`) when they are not."""
    document = _lined({"id": service.id, "organization_id": service.organization_id, "name": service.name or "-",
                       "status": "active"} | {key: details[key] for key in DETAILS if key in details})
    found = _Found(broken={"organization"})
    _Flattener("details", found).service(document)
    directory = _assemble(found)
    if found.problems:
        raise HsdsError(found.problems)
    (checked,) = directory.services
    return replace(service, **{key: getattr(checked, key) for key in (*_CHILDREN, "locations", "attributes")})


def _lined(value: Any) -> Any:
    """Plain JSON values (from a database column) as the reader's objects, at line 0: no line to name."""
    if isinstance(value, Mapping):
        found = _Object(0)
        found.update({str(key): _lined(item) for key, item in value.items()})
        return found
    if isinstance(value, list | tuple):
        items = _Array(0)
        items.extend(_lined(item) for item in value)
        return items
    return value


def _sal_id(service: Service, location: Location, n: int) -> str:
    """A service_at_location id that stays the same each time the same directory is written."""
    return str(uuid.uuid5(_SAL_NAMESPACE, f"{service.id}\n{location.id}\n{n}"))


def _table_rows(directory: Directory) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}

    def add(table: str, obj: Any, **links: Any) -> None:
        rows[table].append({c: links[c] if c in links else getattr(obj, c) for c in TABLES[table].columns})

    locations: dict[str, Location] = {}
    terms: dict[str, TaxonomyTerm] = {}
    for organization in directory.organizations:
        add("organization", organization)
    for service in directory.services:
        add("service", service)
        for key, table in _CHILDREN.items():
            for child in getattr(service, key):
                add(table, child, service_id=service.id)
        for n, location in enumerate(service.locations):
            locations.setdefault(location.id, location)
            add("service_at_location", None, id=_sal_id(service, location, n), service_id=service.id,
                location_id=location.id)
        for attribute in service.attributes:
            terms.setdefault(attribute.taxonomy_term.id, attribute.taxonomy_term)
            add("attribute", attribute, link_id=service.id, link_entity="service",
                taxonomy_term_id=attribute.taxonomy_term.id)
    for location in locations.values():
        add("location", location)
        for address in location.addresses:
            add("address", address, location_id=location.id)
    for term in terms.values():
        add("taxonomy_term", term)
    return rows


def _resource(name: str, table: _Table) -> dict[str, Any]:
    fields = [{"name": column, "type": table.fields.get(column, TEXT).type}
              | ({"constraints": {"required": True}} if column in table.required else {})
              for column in table.columns]
    foreign = [{"fields": column, "reference": {"resource": target, "fields": "id"}}
               for column, target in table.links.items()]
    return {"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv",
            "mediatype": "text/csv", "encoding": "utf-8",
            "schema": {"fields": fields, "primaryKey": "id", "foreignKeys": foreign}}


_FORMULA = frozenset("=+-@\t\r")
"""How a spreadsheet knows a formula (=HYPERLINK(...) sends what it names away, =cmd|... runs a program)."""
_QUOTED = _FORMULA | {"'"}
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9 ().\-/]*")
"""A phone number (+32 2 555 01 10) or a negative number, which starts like a formula and does nothing."""


def _quoted(text: str) -> str:
    """Free text as a CSV cell a spreadsheet shows as text: a leading ' (the spreadsheets' own sign) before a
    formula, and before a ' that `_unquoted` would take off, so that what is read back is what was written."""
    if (text[:1] in _FORMULA and not _PLAIN_NUMBER.fullmatch(text)) or (text[:1] == "'" and text[1:2] in _QUOTED):
        return "'" + text
    return text


def _unquoted(text: str, kind: _Kind) -> str:
    return text[1:] if kind in _FREE and text[:1] == "'" and text[1:2] and text[1:2] in _QUOTED else text


def _cell(value: Any, kind: _Kind = TEXT) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and kind in _FREE:
        return _quoted(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _scalars(obj: Any, table: str) -> dict[str, Any]:
    values = {name: getattr(obj, name) for name in TABLES[table].fields}
    return {name: _json_value(value) for name, value in values.items() if value is not None}


def _service_json(service: Service, organization: Organization | None) -> dict[str, Any]:
    out = _scalars(service, "service")
    if organization is not None:
        out["organization"] = _scalars(organization, "organization")
    for key, table in _CHILDREN.items():
        out[key] = [_scalars(child, table) for child in getattr(service, key)]
    out["service_at_locations"] = [
        {"id": _sal_id(service, location, n), "service_id": service.id, "location_id": location.id,
         "location": _scalars(location, "location")
         | {"addresses": [_scalars(address, "address") for address in location.addresses]}}
        for n, location in enumerate(service.locations)]
    out["attributes"] = [
        {"id": a.id, "link_id": service.id, "link_entity": "service", "taxonomy_term_id": a.taxonomy_term.id}
        | ({"value": a.value} if a.value is not None else {})
        | {"taxonomy_term": _scalars(a.taxonomy_term, "taxonomy_term")}
        for a in service.attributes]
    return out
