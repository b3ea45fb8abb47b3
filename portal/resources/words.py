"""Stored directory values in the reader's words: categories, places, languages and countries by name, "checked 3
weeks ago", an HSDS schedule's iCalendar fields as days and hours, ages and costs. Pure: the reader's language
(`portal.i18n`) is the only context.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_timedelta, get_day_names
from babel.lists import format_list
from babel.numbers import format_currency

from portal import i18n
from portal.i18n import N_, _, ngettext

CATEGORIES = {"employment": N_("Jobs and work"), "housing": N_("Housing"), "benefits": N_("Benefits"),
              "id-documents": N_("ID documents"), "health": N_("Health"), "addiction": N_("Addiction"),
              "debt": N_("Debt"), "legal": N_("Legal aid"), "family": N_("Family"),
              "education": N_("Education and training")}
"""The directory's categories (`hsds.CATEGORIES`) as a reader names them."""
PHONE_TYPES = {"voice": N_("Phone"), "text": N_("Text message"), "fax": N_("Fax"), "cell": N_("Mobile"),
               "video": N_("Video call"), "pager": N_("Pager"), "textphone": N_("Textphone")}
NTH = {1: N_("the first %(day)s"), 2: N_("the second %(day)s"), 3: N_("the third %(day)s"),
       4: N_("the fourth %(day)s"), 5: N_("the fifth %(day)s"), -1: N_("the last %(day)s")}
"""A weekday of the month, as RFC 5545 writes it (`1TU`, `-1FR`)."""
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


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
