"""Roster import: a CSV as an offender management system exports it, all rows or none.

Accepted: comma or semicolon separated, UTF-8 with or without BOM, a header row naming the columns in any
order and case. Columns: number (or inmate_number, offender_id), name (or first_name + last_name), language,
groups (separated by `;` or `|` inside the cell), pin (optional; usually set later with `inmate set-pin`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.db.models import Facility, Inmate
from gatehouse.errors import GatehouseError
from gatehouse.inmates import add_inmate, check_groups, check_language, check_name, check_number, set_groups
from gatehouse.pins import check_pin_format, hash_pin

ALIASES = {
    "number": "number", "inmate_number": "number", "inmate": "number", "offender_id": "number",
    "offender_number": "number", "id": "number",
    "name": "name", "full_name": "name", "first_name": "first_name", "given_name": "first_name",
    "last_name": "last_name", "surname": "last_name", "family_name": "last_name",
    "language": "language", "lang": "language",
    "groups": "groups", "group": "groups",
    "pin": "pin",
}


@dataclass(frozen=True, slots=True)
class RosterRow:
    line: int
    number: str
    name: str
    language: str
    groups: list[str]
    pin: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad line: `code` says what is wrong (number, name, language, groups, pin, cells, duplicate, column,
    no-number-column, no-name-column, empty, no-rows, csv) so a screen can say it in the reader's language;
    `value` is what the line held; `message` is the English text the CLI prints."""

    line: int
    code: str
    message: str
    value: str = ""
    other_line: int = 0


@dataclass(slots=True)
class RosterReport:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """`SOURCE:LINE: message`, as the CLI prints them."""
    problems: list[Problem] = field(default_factory=list)
    added: int = 0
    updated: int = 0

    def bad(self, source: str, line: int, code: str, message: str, value: str = "", other_line: int = 0) -> None:
        self.errors.append(f"{source}:{line}: {message}")
        self.problems.append(Problem(line, code, message, value, other_line))


def _header(names: list[str]) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    """The column of each known field, and the header's problems as (code, message, value)."""
    columns: dict[str, int] = {}
    errors = []
    for index, raw in enumerate(names):
        key = ALIASES.get(raw.strip().lower().replace(" ", "_").replace("-", "_"))
        if key is None:
            continue
        if key in columns:
            errors.append(("column", f"column {raw.strip()!r} given twice", raw.strip()))
        columns[key] = index
    if "number" not in columns:
        errors.append(("no-number-column", "no inmate number column (number, inmate_number or offender_id)", ""))
    if "name" not in columns and not {"first_name", "last_name"} <= set(columns):
        errors.append(("no-name-column", "no name column (name, or first_name and last_name)", ""))
    return columns, errors


def parse_roster(text: str, source: str = "roster") -> RosterReport:
    """Check every row; errors are `SOURCE:LINE: message`, all of them, so one run shows what to fix."""
    report = RosterReport()
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        report.bad(source, 1, "empty", "the file is empty")
        return report
    except csv.Error as exc:
        report.bad(source, 1, "csv", str(exc), str(exc))
        return report
    columns, errors = _header(header)
    for code, message, value in errors:
        report.bad(source, 1, code, message, value)
    if errors:
        return report
    seen: dict[str, int] = {}
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.bad(source, start, "csv", str(exc), str(exc))
            break
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            report.bad(source, start, "cells", f"{len(cells)} cells, the header has {len(header)}",
                       str(len(cells)), len(header))
            continue

        def cell(key: str, cells: list[str] = cells) -> str:
            return cells[columns[key]].strip() if key in columns else ""

        code, raw = "number", cell("number")
        try:
            number = check_number(raw)
            code, raw = "name", cell("name") if "name" in columns else f"{cell('first_name')} {cell('last_name')}"
            name = check_name(raw)
            code, raw = "language", cell("language")
            language = check_language(raw)
            code, raw = "groups", cell("groups")
            groups = check_groups(raw.replace("|", ";").replace(",", ";").split(";"))
            code, raw = "pin", cell("pin")
            pin = check_pin_format(raw) if raw else None
        except GatehouseError as exc:
            report.bad(source, start, code, str(exc), "" if code == "pin" else raw)  # a PIN is never echoed
            continue
        if number in seen:
            report.bad(source, start, "duplicate", f"inmate {number} is on line {seen[number]} already", number,
                       seen[number])
            continue
        seen[number] = start
        report.rows.append(RosterRow(start, number, name, language, groups, pin))
    if not report.rows and not report.errors:
        report.bad(source, 2, "no-rows", "no inmate rows after the header")
    return report


def apply_roster(session: Session, facility: Facility, report: RosterReport,
                 progress: Callable[[int, int], None] | None = None) -> RosterReport:
    """Add new inmates and update known ones, in the caller's transaction; only call when there are no errors."""
    if report.errors:
        raise ValueError("apply_roster called on a roster with errors")
    known = {i.number: i for i in session.scalars(
        select(Inmate).where(Inmate.number.in_([r.number for r in report.rows])))}
    total = len(report.rows)
    for done, row in enumerate(report.rows, 1):
        pin_hash = hash_pin(row.pin) if row.pin else None
        if (inmate := known.get(row.number)) is not None:
            inmate.name, inmate.language = row.name, row.language
            set_groups(inmate, row.groups)
            if pin_hash:
                inmate.pin_hash = pin_hash
            report.updated += 1
        else:
            add_inmate(session, facility, number=row.number, name=row.name, language=row.language,
                       groups=row.groups, pin_hash=pin_hash)
            report.added += 1
        if progress:
            progress(done, total)
    session.flush()
    return report
