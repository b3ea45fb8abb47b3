"""Languages of the portal: gettext catalogues (Babel) for en, nl, fr, de, chosen per request.

English is the source language. Catalogues are `translations/<lang>.po`, compiled in memory at start-up (no
build step, nothing generated to commit). The language of a request lives in a context variable that the
session middleware sets before the handler runs, so `_()` in forms and services and `{{ _() }}` in templates
agree.
"""

from __future__ import annotations

import gettext as stdlib_gettext
import io
from contextvars import ContextVar
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as babel_date
from babel.dates import format_datetime as babel_datetime
from babel.dates import format_time as babel_time
from babel.dates import get_day_names
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from gatehouse.languages import negotiate as negotiate
from gatehouse.languages import regional as regional
from gatehouse.settings import LANGUAGES

TRANSLATIONS = Path(__file__).parent / "translations"
NAMES = {"en": "English", "nl": "Nederlands", "fr": "Français", "de": "Deutsch"}
"""Each language named in itself, as a person looking for their own language expects to read it."""

_current: ContextVar[str] = ContextVar("portal_language", default="en")


@cache
def catalogue(language: str) -> stdlib_gettext.NullTranslations:
    """A language whose catalogue is missing shows English, as gettext does, rather than failing every page."""
    path = TRANSLATIONS / f"{language}.po"
    if language == "en" or not path.exists():
        return stdlib_gettext.NullTranslations()
    with path.open("rb") as po:
        compiled = io.BytesIO()
        write_mo(compiled, read_po(po, locale=language))
    compiled.seek(0)
    return Translations(compiled)


def activate(language: str) -> None:
    _current.set(language if language in LANGUAGES else "en")


def current() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return catalogue(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalogue(_current.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; `_()` translates it where it is shown."""
    return message





def _locale(zone: ZoneInfo | None) -> Locale:
    return regional(_current.get(), zone)


def format_datetime(when: datetime, zone: ZoneInfo, form: str = "medium") -> str:
    """A stored (naive UTC) time as the reader expects it: their language's form, the facility's zone."""
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return babel_datetime(aware, format=form, tzinfo=zone, locale=_locale(zone))


def format_time(when: datetime, zone: ZoneInfo) -> str:
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return babel_time(aware, format="short", tzinfo=zone, locale=_locale(zone))


def format_date(when: datetime, zone: ZoneInfo) -> str:
    """The day a stored time falls on in the facility's zone, in full (a heading in a timeline)."""
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return babel_date(aware.astimezone(zone).date(), format="full", locale=_locale(zone))


def format_day(day: date, zone: ZoneInfo | None = None) -> str:
    """A facility-local day in full; `zone` (the facility's) gives the country's form of the language."""
    return babel_date(day, format="full", locale=_locale(zone))


def format_weekly(days: frozenset[int], start: time, end: time) -> str:
    """`mon-fri 08:30-12:00` as the reader says it: "Monday – Friday, 08:30 – 12:00" in their language."""
    locale = Locale.parse(_current.get())
    names = get_day_names("wide", locale=locale)
    runs: list[tuple[int, int]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day - 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    spans = [names[a] if a == b else f"{names[a]} – {names[b]}" for a, b in runs]
    return f"{', '.join(spans)}, {start:%H:%M} – {end:%H:%M}"
