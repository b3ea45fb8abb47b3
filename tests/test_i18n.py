"""Catalogues match what the sources mark, keep every placeholder and plural form; languages, times and zones.

The completeness test extracts messages in process with the same mapping (`babel.cfg`) as `pybabel extract`, so a
new or changed string fails here until every catalogue has it (README.md, "Languages").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

try:
    from babel.messages.frontend import parse_mapping_cfg
except ImportError:  # Babel < 2.16 has it under its older name only
    from babel.messages.frontend import parse_mapping as parse_mapping_cfg

from gatehouse.settings import LANGUAGES
from portal import i18n
from tests.helpers import CELL, OTHER_INMATE, OTHER_PIN, Platform, csrf_from

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = [language for language in LANGUAGES if language != "en"]
BRUSSELS = ZoneInfo("Europe/Brussels")
MessageId = str | tuple[str, ...]
Key = tuple[str | None, MessageId]
"""(context, msgid), the msgid a (singular, plural) pair for ngettext: what makes two entries the same."""

PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")


@pytest.fixture(autouse=True)
def back_to_english() -> Iterator[None]:
    yield
    i18n.activate("en")


@cache
def extracted() -> dict[Key, str]:
    """Every message the portal's sources mark, with the first place it is marked (`file:line`)."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg, "babel.cfg")
    found: dict[Key, str] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            ROOT, method_map, options_map, keywords=DEFAULT_KEYWORDS):
        found.setdefault((context, message), f"{filename}:{lineno}")
    return found


@cache
def catalogue(language: str) -> Catalog:
    with (i18n.TRANSLATIONS / f"{language}.po").open("rb") as po:
        return read_po(po, locale=language, abort_invalid=True)


def _keys(catalog: Catalog) -> set[Key]:
    return {(message.context, message.id) for message in catalog if message.id}


def _show(key: Key) -> str:
    context, msgid = key
    text = " | ".join(msgid) if isinstance(msgid, tuple) else msgid
    return f"[{context}] {text!r}" if context else repr(text)


def test_extraction_finds_the_portals_messages() -> None:
    """Guards the mapping itself: Python, a shared template, a domain's template and a plural all extracted."""
    found = extracted()
    assert (None, "Wrong inmate number or PIN.") in found
    assert (None, "Skip to content") in found
    assert (None, "Welcome, %(name)s") in found
    assert (None, ("You have %(num)d recovery code left.", "You have %(num)d recovery codes left.")) in found
    assert any(place.startswith("portal/staff/templates/") for place in found.values())


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalogue_has_exactly_the_extracted_messages(language: str) -> None:
    found = extracted()
    have = _keys(catalogue(language))
    missing = sorted(set(found) - have, key=str)
    stale = sorted(have - set(found), key=str)
    report = [f"{language}.po is out of step with the sources; update it (README.md, \"Languages\")."]
    if missing:
        report.append(f"missing from {language}.po ({len(missing)}):")
        report += [f"  {_show(key)}  ({found[key]})" for key in missing]
    if stale:
        report.append(f"stale in {language}.po, no longer in the sources ({len(stale)}):")
        report += [f"  {_show(key)}" for key in stale]
    assert not missing and not stale, "\n".join(report)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(language: str) -> None:
    catalog = catalogue(language)
    assert not catalog.fuzzy, f"{language}.po: the header is marked fuzzy"
    empty, fuzzy = [], []
    for message in catalog:
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(forms):
            empty.append(_show((message.context, message.id)))
        if message.fuzzy:
            fuzzy.append(_show((message.context, message.id)))
    assert not empty, f"{language}.po: untranslated ({len(empty)}):\n  " + "\n  ".join(empty)
    assert not fuzzy, f"{language}.po: fuzzy, to review and unmark ({len(fuzzy)}):\n  " + "\n  ".join(fuzzy)


@pytest.mark.parametrize("language", TRANSLATED)
def test_plural_forms_are_the_languages_own(language: str) -> None:
    catalog = catalogue(language)
    expected = get_plural(language)
    assert catalog.plural_forms == expected.plural_forms, f"{language}.po: Plural-Forms header"
    wrong = [_show((m.context, m.id)) for m in catalog
             if isinstance(m.id, tuple) and (not isinstance(m.string, tuple) or len(m.string) != expected.num_plurals)]
    assert not wrong, f"{language}.po: entries without {expected.num_plurals} plural forms: {wrong}"


def _placeholders(text: str) -> Counter[str]:
    return Counter(PLACEHOLDER.findall(text))


@pytest.mark.parametrize("language", TRANSLATED)
def test_placeholders_are_kept(language: str) -> None:
    """`%(name)s` renamed, dropped or added would raise or show raw at render time; `%%` counts too."""
    wrong = []
    for message in catalogue(language):
        if not message.id:
            continue
        source = message.id[-1] if isinstance(message.id, tuple) else message.id
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        for index, form in enumerate(forms):
            if form and _placeholders(form) != _placeholders(source):  # an empty one fails the test above
                wrong.append(f"  {_show((message.context, message.id))} form {index}: {form!r}")
    assert not wrong, f"{language}.po: placeholders differ from the msgid:\n" + "\n".join(wrong)


def test_sources_use_the_same_placeholders_in_singular_and_plural() -> None:
    """Otherwise a language whose singular form also covers 0 (French) could not show the number."""
    wrong = [_show(key) for key in extracted()
             if isinstance(key[1], tuple) and _placeholders(key[1][0]) != _placeholders(key[1][1])]
    assert not wrong, wrong


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Log in"), ("nl", "Aanmelden"), ("fr", "Se connecter"), ("de", "Anmelden")])
def test_gettext_speaks_the_active_language(language: str, expected: str) -> None:
    i18n.activate(language)
    assert i18n.current() == language
    assert i18n.gettext("Log in") == expected
    assert i18n.gettext("A message nobody marked") == "A message nobody marked"


@pytest.mark.parametrize(("language", "zero", "one", "two"), [
    ("en", "You have 0 recovery codes left.", "You have 1 recovery code left.", "You have 2 recovery codes left."),
    ("nl", "U hebt nog 0 herstelcodes.", "U hebt nog 1 herstelcode.", "U hebt nog 2 herstelcodes."),
    ("fr", "Il vous reste 0 code de récupération.", "Il vous reste 1 code de récupération.",
     "Il vous reste 2 codes de récupération."),
    ("de", "Sie haben noch 0 Wiederherstellungscodes.", "Sie haben noch 1 Wiederherstellungscode.",
     "Sie haben noch 2 Wiederherstellungscodes."),
])
def test_ngettext_chooses_the_languages_plural_form(language: str, zero: str, one: str, two: str) -> None:
    i18n.activate(language)
    shown = [i18n.ngettext("You have %(num)d recovery code left.", "You have %(num)d recovery codes left.", n)
             % {"num": n} for n in (0, 1, 2)]
    assert shown == [zero, one, two]


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "<h1>Welcome, Jan &lt;b&gt;</h1>"), ("nl", "<h1>Welkom, Jan &lt;b&gt;</h1>"),
    ("fr", "<h1>Bienvenue, Jan &lt;b&gt;</h1>"), ("de", "<h1>Willkommen, Jan &lt;b&gt;</h1>")])
def test_templates_translate_then_fill_and_escape_placeholders(language: str, expected: str) -> None:
    """As the portal sets up Jinja: i18n extension, newstyle gettext, autoescape."""
    env = jinja2.Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    i18n.activate(language)
    assert env.from_string('<h1>{{ _("Welcome, %(name)s", name=who) }}</h1>').render(who="Jan <b>") == expected


def test_an_unsupported_language_falls_back_to_english() -> None:
    i18n.activate("es")
    assert i18n.current() == "en"
    assert i18n.gettext("Log in") == "Log in"


@pytest.mark.parametrize(("header", "expected"), [
    ("nl-BE,nl;q=0.9,fr;q=0.8,en;q=0.5", "nl"),
    ("fr-BE", "fr"),
    ("de-BE, fr;q=0.9", "de"),
    ("en;q=0.4, fr;q=0.8, nl;q=0.6", "fr"),  # by q-value, not by order
    ("nl;q=0.5, de;q=0.5", "nl"),  # equal q: the first listed
    ("es, it;q=0.9, fr;q=0.1", "fr"),  # unsupported ones skipped, however preferred
    ("NL-be", "nl"),  # tags are case-insensitive
    ("fr;q=0, nl;q=0.2", "nl"),  # q=0 means "not this one"
    ("fr;q=zero, de;q=0.3", "de"),  # a malformed q counts as 0
    ("es, it", "en"),  # nothing supported: the default
    ("*", "en"),
    ("", "en"),
])
def test_negotiate_picks_by_quality_and_falls_back(header: str, expected: str) -> None:
    assert i18n.negotiate(header, "en") == expected


def test_negotiate_falls_back_to_the_facilitys_default() -> None:
    assert i18n.negotiate("es, it", "nl") == "nl"
    assert i18n.negotiate("", "fr") == "fr"


# Europe/Brussels in 2026: summer time from 29 March 01:00 UTC, winter time from 25 October 01:00 UTC.
@pytest.mark.parametrize(("stored", "local"), [
    (datetime(2026, 3, 29, 0, 30), ("29", "01:30 +01:00")),  # before the spring change
    (datetime(2026, 3, 29, 1, 30), ("29", "03:30 +02:00")),  # an hour later by the clock on the wall: two
    (datetime(2026, 10, 25, 0, 30), ("25", "02:30 +02:00")),  # before the autumn change
    (datetime(2026, 10, 25, 1, 30), ("25", "02:30 +01:00")),  # the same wall time again, an hour later
])
@pytest.mark.parametrize(("language", "months"), [
    ("en", {3: "March", 10: "October"}), ("nl", {3: "maart", 10: "oktober"}),
    ("fr", {3: "mars", 10: "octobre"}), ("de", {3: "März", 10: "Oktober"})])
def test_format_datetime_shows_facility_time_across_dst(stored: datetime, local: tuple[str, str], language: str,
                                                        months: dict[int, str]) -> None:
    i18n.activate(language)
    day, time_and_offset = local
    expected = f"{day} {months[stored.month]} 2026 {time_and_offset}"
    assert i18n.format_datetime(stored, BRUSSELS, "d MMMM y HH:mm xxx") == expected
    assert i18n.format_datetime(stored.replace(tzinfo=UTC), BRUSSELS, "d MMMM y HH:mm xxx") == expected


@pytest.mark.parametrize(("language", "spring", "autumn"), [
    ("en", "29 Mar 2026, 03:30:00", "25 Oct 2026, 02:30:00"),  # English as written in Belgium (en_BE)
    ("nl", "29 mrt 2026, 03:30:00", "25 okt 2026, 02:30:00"),
    ("fr", "29 mars 2026, 03:30:00", "25 oct. 2026, 02:30:00"),
    ("de", "29.03.2026, 03:30:00", "25.10.2026, 02:30:00"),
])
def test_default_forms_are_the_languages_in_the_facilitys_country(language: str, spring: str, autumn: str) -> None:
    i18n.activate(language)
    assert i18n.format_datetime(datetime(2026, 3, 29, 1, 30), BRUSSELS) == spring
    assert i18n.format_datetime(datetime(2026, 10, 25, 1, 30), BRUSSELS) == autumn


@pytest.mark.parametrize(("language", "before", "after"), [
    ("en", "01:30", "03:30"), ("nl", "01:30", "03:30"), ("fr", "01:30", "03:30"),
    ("de", "01:30", "03:30")])
def test_format_time_crosses_the_spring_change(language: str, before: str, after: str) -> None:
    i18n.activate(language)
    assert i18n.format_time(datetime(2026, 3, 29, 0, 30), BRUSSELS) == before
    assert i18n.format_time(datetime(2026, 3, 29, 1, 30), BRUSSELS) == after


async def test_the_portal_speaks_the_browsers_language_then_the_inmates(platform: Platform) -> None:
    """Before login the browser's Accept-Language (refusals included); after login the inmate's own language."""
    dutch = {"Accept-Language": "nl-BE,nl;q=0.9,en;q=0.5"}
    async with platform.client(CELL) as client:
        async with client.get(f"{platform.portal}/login", headers=dutch) as page:
            body = await page.text()
        assert '<html lang="nl">' in body and "Gedetineerdennummer" in body
        async with client.post(f"{platform.portal}/login", headers=dutch, data={
                "inmate_number": OTHER_INMATE, "pin": "0000", "csrf_token": csrf_from(body)}) as resp:
            assert resp.status == 403
            assert "Gedetineerdennummer of pincode is fout. Nog 4 pogingen." in await resp.text()
        await platform.login(client, OTHER_INMATE, OTHER_PIN)
        async with client.get(f"{platform.portal}/home", headers=dutch) as page:
            body = await page.text()
    assert '<html lang="fr">' in body and "Bienvenue, Marie Dubois" in body
    assert "cell-1 (cellule)" in body
