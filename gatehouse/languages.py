"""Which of the platform's languages a reader gets, and how dates are written for them: one answer for the
portal and the gateway's block pages, so a browser reads both in the same language and the same forms."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.core import get_global

from gatehouse.settings import LANGUAGES


def negotiate(accept_language: str, default: str) -> str:
    """The first supported language in an Accept-Language header, by q-value (RFC 9110 12.5.4)."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else default


@cache
def regional(language: str, zone: ZoneInfo | None) -> Locale:
    """The language as it is written in the facility's country, found from its time zone (CLDR): English in
    Europe/Brussels is en_BE ("Monday, 30 November 2026, 08:30"), not en_US. A language without a form for that
    country keeps its own, except English, which falls back to en_GB: day before month, a 24-hour clock."""
    territory = get_global("zone_territories").get(zone.key) if zone is not None else None
    if territory:
        try:
            return Locale.parse(f"{language}_{territory}")
        except (UnknownLocaleError, ValueError):
            pass
    return Locale.parse("en_GB" if language == "en" else language)
