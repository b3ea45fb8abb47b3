"""Job offers posted by staff: post, change, withdraw, and the offers open to inmates on a day.

An offer is open through its closing day (facility time, included) and until it is withdrawn; after that it leaves
the inmates' list and page by itself, with nothing to sweep: every query asks for the day. Staff keep seeing every
offer, marked closed or withdrawn, and a plan that saved one keeps it, marked so.

A form's problems are collected at once as `OfferError.problems`, one code per field (`missing`, `too-long`,
`not-a-date`, `past`, `unknown`), so the portal names each field's problem in the reader's language.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.resources.models import Contract, Hours, JobOffer
from gatehouse.settings import LANGUAGES

__all__ = ["FIELDS", "LIMITS", "JobFilters", "JobState", "Offer", "OfferError", "all_offers", "change", "get",
           "is_open", "number", "open_offers", "parse_offer", "post", "regions", "state_of", "withdraw"]

FIELDS = ("title", "employer", "region", "city", "contract", "hours", "fair_chance", "description", "how_to_apply",
          "language", "closes_on")
LIMITS = {"title": 255, "employer": 255, "region": 128, "city": 128, "description": 8000, "how_to_apply": 4000}
REQUIRED = ("title", "employer", "closes_on")
_NUMBER = re.compile(r"[0-9]{1,9}")
"""An offer's number: ASCII digits ("²" is a digit to str.isdigit, not to int), fewer than the database's integers
hold (2**31 - 1 on PostgreSQL)."""


class JobState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    """Its closing day has passed."""
    WITHDRAWN = "withdrawn"


class OfferError(InvalidInput):
    """Every problem of an offer's form: field → code."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {code}" for field, code in problems.items()))
        self.problems = dict(problems)


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer's fields as checked, ready to store."""

    title: str
    employer: str
    region: str
    city: str
    contract: str
    hours: str
    fair_chance: bool
    description: str
    how_to_apply: str
    language: str
    closes_on: date


@dataclass(frozen=True, slots=True)
class JobFilters:
    region: str = ""
    contract: str = ""
    hours: str = ""
    fair_chance: bool = False
    """Only employers who hire people with a conviction."""


def _line(value: str) -> str:
    return " ".join(value.split())


def _text(value: str) -> str:
    """Paragraphs kept, trailing spaces and Windows line ends dropped."""
    return "\n".join(line.rstrip() for line in value.replace("\r\n", "\n").strip().split("\n"))


def parse_offer(fields: Mapping[str, str], *, today: date, closes_before: date | None = None) -> Offer:
    """The offer a form describes, or every problem at once. A closing day in the past is refused unless it is
    `closes_before`, the day an edited offer has already (staff may fix a closed offer's text)."""
    problems: dict[str, str] = {}
    values = {name: str(fields.get(name, "")) for name in FIELDS}
    clean: dict[str, Any] = {}
    for name in ("title", "employer", "region", "city"):
        clean[name] = _line(values[name])
    for name in ("description", "how_to_apply"):
        clean[name] = _text(values[name])
    for name, limit in LIMITS.items():
        if len(clean[name]) > limit:
            problems[name] = "too-long"
    for name in ("title", "employer"):
        if not clean[name]:
            problems[name] = "missing"
    clean["contract"] = values["contract"].strip() or Contract.PERMANENT.value
    if clean["contract"] not in {c.value for c in Contract}:
        problems["contract"] = "unknown"
    clean["hours"] = values["hours"].strip() or Hours.FULL_TIME.value
    if clean["hours"] not in {h.value for h in Hours}:
        problems["hours"] = "unknown"
    clean["language"] = values["language"].strip().lower()
    if clean["language"] and clean["language"] not in LANGUAGES:
        problems["language"] = "unknown"
    clean["fair_chance"] = values["fair_chance"].strip().lower() in ("yes", "on", "true", "1")
    closes = values["closes_on"].strip()
    try:
        clean["closes_on"] = date.fromisoformat(closes) if closes else None
    except ValueError:
        problems["closes_on"] = "not-a-date"
    else:
        if clean["closes_on"] is None:
            problems["closes_on"] = "missing"
        elif clean["closes_on"] < today and clean["closes_on"] != closes_before:
            problems["closes_on"] = "past"
    if problems:
        raise OfferError(problems)
    return Offer(**clean)


def _store(row: JobOffer, offer: Offer) -> None:
    for name in FIELDS:
        setattr(row, name, getattr(offer, name))


def post(session: Session, fields: Mapping[str, str], *, by: str, today: date, now: datetime) -> JobOffer:
    offer = parse_offer(fields, today=today)
    row = JobOffer(posted_by=by, posted_at=now, withdrawn_by="")
    _store(row, offer)
    session.add(row)
    session.flush()
    return row


def number(text: str) -> int:
    """The offer number an address or a form gives; NotFound for anything that cannot be one."""
    if not _NUMBER.fullmatch(text.strip()):
        raise NotFound(f"no job offer {text[:20]!r}")
    return int(text.strip())


def get(session: Session, job_id: int) -> JobOffer:
    row = session.get(JobOffer, job_id)
    if row is None:
        raise NotFound(f"no job offer {job_id}")
    return row


def change(session: Session, job_id: int, fields: Mapping[str, str], *, by: str, today: date,
           now: datetime) -> tuple[JobOffer, dict[str, tuple[str, str]]]:
    """The offer changed, and what changed (field → before, after) for the audit record."""
    row = get(session, job_id)
    if row.withdrawn_at is not None:
        raise Conflict(f"job offer {job_id} was withdrawn by {row.withdrawn_by}; post a new one instead")
    offer = parse_offer(fields, today=today, closes_before=row.closes_on)
    changed = {name: (str(getattr(row, name)), str(getattr(offer, name))) for name in FIELDS
               if getattr(row, name) != getattr(offer, name)}
    _store(row, offer)
    session.flush()
    return row, changed


def withdraw(session: Session, job_id: int, *, by: str, now: datetime) -> JobOffer:
    row = get(session, job_id)
    if row.withdrawn_at is not None:
        raise Conflict(f"job offer {job_id} was withdrawn already by {row.withdrawn_by}")
    row.withdrawn_by, row.withdrawn_at = by, now
    session.flush()
    return row


def state_of(row: JobOffer, today: date) -> JobState:
    if row.withdrawn_at is not None:
        return JobState.WITHDRAWN
    return JobState.OPEN if row.closes_on >= today else JobState.CLOSED


def is_open(row: JobOffer, today: date) -> bool:
    return state_of(row, today) is JobState.OPEN


def _open(today: date) -> Any:
    return (JobOffer.closes_on >= today) & JobOffer.withdrawn_at.is_(None)


def open_offers(session: Session, today: date, filters: JobFilters = JobFilters()) -> list[JobOffer]:
    """The offers inmates see on `today`: those closing soonest first."""
    query = select(JobOffer).where(_open(today))
    if filters.region:
        query = query.where(func.lower(JobOffer.region) == filters.region.strip().lower())
    if filters.contract:
        query = query.where(JobOffer.contract == filters.contract)
    if filters.hours:
        query = query.where(JobOffer.hours == filters.hours)
    if filters.fair_chance:
        query = query.where(JobOffer.fair_chance.is_(True))
    return list(session.scalars(query.order_by(JobOffer.closes_on, JobOffer.title, JobOffer.id)))


def regions(session: Session, today: date) -> list[str]:
    """The regions of the open offers, for the inmates' filter."""
    found = session.scalars(select(JobOffer.region).where(_open(today), JobOffer.region != "").distinct())
    return sorted(set(found), key=str.lower)


def all_offers(session: Session) -> list[JobOffer]:
    """Every offer for staff, the newest first."""
    return list(session.scalars(select(JobOffer).order_by(JobOffer.posted_at.desc(), JobOffer.id.desc())))
