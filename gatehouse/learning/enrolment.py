"""Enrolment: who takes which course, from when until when, and the events that open and close its sites.

Each change writes the enrolment and appends its `EnrolmentChanged` event to `control_events` in the caller's
transaction (as live control does), so every gateway node applies it within half a second with or without
Redis; the caller publishes `Outcome.events` on the bus for the nodes that listen. The gateway itself reads the
dates (`grants.active_courses`), so an end date closes the sites at that instant even before `sweep_ended` notices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gatehouse.bus import ControlEvent, EnrolmentChanged
from gatehouse.control import append_event
from gatehouse.db.models import Inmate, InmateGroup, InmateStatus
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.inmates import find_inmate
from gatehouse.learning import catalog
from gatehouse.learning.models import OPEN_STATUSES, Course, Enrolment, EnrolmentStatus, Exclusion

S = EnrolmentStatus


@dataclass(slots=True)
class Outcome:
    events: list[ControlEvent] = field(default_factory=list)
    summary: str = ""
    enrolments: list[Enrolment] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(inmate number, why) for a group enrolment."""


@dataclass(frozen=True, slots=True)
class Eligibility:
    ok: bool
    reasons: list[str]


def day_start(text: str, zone: ZoneInfo, what: str, *, after: bool = False) -> datetime:
    """The first instant (naive UTC) of a local day given as YYYY-MM-DD, or with `after` of the day after it
    (an end date "until 31 December" includes that day)."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{what}: {text!r} is not a date; write YYYY-MM-DD") from None
    day += timedelta(days=1) if after else timedelta()
    return datetime.combine(day, time(), zone).astimezone(UTC).replace(tzinfo=None)


def _flush(session: Session, taken: str) -> None:
    """Write now; two enrolments of one inmate in one course at the same moment meet the database's unique index,
    and the second is refused like one made after the first."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(taken) from None


def _emit(session: Session, outcome: Outcome, event: ControlEvent, now: datetime) -> None:
    outcome.events.append(event)
    append_event(session, event, now)


def _course(session: Session, slug: str) -> Course:
    course = session.scalar(select(Course).where(Course.slug == slug.strip().lower()))
    if course is None:
        raise NotFound(f"no course {slug!r}; `gatehouse course list` shows them")
    return course


def _reason(reason: str, what: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput(f"give a reason: {what}")
    return reason[:1000]


def _dates(starts_at: datetime, ends_at: datetime | None, now: datetime) -> None:
    if ends_at is not None and ends_at <= starts_at:
        raise InvalidInput("the end date must be after the start date")
    if ends_at is not None and ends_at <= now:
        raise InvalidInput("the end date has passed already")


def _check(session: Session, course: Course, inmate: Inmate) -> list[str]:
    reasons = []
    if inmate.status != InmateStatus.ACTIVE.value:
        reasons.append(f"inmate {inmate.number} is {inmate.status}")
    if course.eligible_groups and not set(course.eligible_groups) & set(inmate.group_names):
        reasons.append(f"the course is open to the groups {', '.join(course.eligible_groups)} only")
    excluded = session.get(Exclusion, (course.id, inmate.id))
    if excluded is not None:
        reasons.append(f"excluded from this course: {excluded.reason}")
    return reasons


def eligibility(session: Session, course_slug: str, inmate_number: str) -> Eligibility:
    reasons = _check(session, _course(session, course_slug), find_inmate(session, inmate_number))
    return Eligibility(not reasons, reasons)


def _open(session: Session, course: Course, inmate: Inmate) -> Enrolment | None:
    return session.scalar(select(Enrolment).where(Enrolment.course_id == course.id,
                                                  Enrolment.inmate_id == inmate.id,
                                                  Enrolment.status.in_(OPEN_STATUSES)))


def _activate(session: Session, outcome: Outcome, course: Course, inmate: Inmate, *, by: str, now: datetime,
              starts_at: datetime | None, ends_at: datetime | None, row: Enrolment | None = None) -> Enrolment:
    version = catalog.published(session, course.slug)
    starts = starts_at or now
    _dates(starts, ends_at, now)
    if row is None:
        row = Enrolment(course=course, inmate=inmate, created_at=now, created_by=by, requested_at=None)
        session.add(row)
    row.status, row.version_id, row.starts_at, row.ends_at = S.ACTIVE.value, version.id, starts, ends_at
    row.decided_at, row.decided_by = now, by
    _flush(session, f"{inmate.number} is enrolled in {course.slug} already")
    outcome.enrolments.append(row)
    _emit(session, outcome, EnrolmentChanged(inmate.number, course.slug, True), now)
    return row


def enrol(session: Session, *, course: str, inmate: str, by: str, now: datetime, starts_at: datetime | None = None,
          ends_at: datetime | None = None) -> Outcome:
    row, person = _course(session, course), find_inmate(session, inmate)
    if reasons := _check(session, row, person):
        raise Conflict(f"{person.number} cannot take {row.slug}: " + "; ".join(reasons))
    existing = _open(session, row, person)
    if existing is not None and existing.status == S.ACTIVE.value:
        raise Conflict(f"{person.number} is enrolled in {row.slug} already")
    outcome = Outcome()
    _activate(session, outcome, row, person, by=by, now=now, starts_at=starts_at, ends_at=ends_at, row=existing)
    outcome.summary = f"{person.number} enrolled in {row.slug}"
    return outcome


def enrol_group(session: Session, *, course: str, group: str, by: str, now: datetime,
                starts_at: datetime | None = None, ends_at: datetime | None = None) -> Outcome:
    row = _course(session, course)
    members = list(session.scalars(select(Inmate).join(InmateGroup).where(InmateGroup.name == group.strip().lower())
                                   .order_by(Inmate.number)))
    if not members:
        raise NotFound(f"nobody is in the group {group!r}")
    outcome = Outcome()
    for person in members:
        existing = _open(session, row, person)
        if existing is not None and existing.status == S.ACTIVE.value:
            outcome.skipped.append((person.number, "enrolled already"))
        elif reasons := _check(session, row, person):
            outcome.skipped.append((person.number, "; ".join(reasons)))
        else:
            _activate(session, outcome, row, person, by=by, now=now, starts_at=starts_at, ends_at=ends_at,
                      row=existing)
    outcome.summary = (f"group {group}: {len(outcome.enrolments)} enrolled in {row.slug}, "
                       f"{len(outcome.skipped)} not")
    return outcome


def _close(session: Session, outcome: Outcome, row: Enrolment, status: EnrolmentStatus, now: datetime,
           reason: str = "") -> None:
    row.status, row.closed_at, row.reason = status.value, now, reason or row.reason
    if status is S.COMPLETED:
        row.completed_at = now
    _emit(session, outcome, EnrolmentChanged(row.inmate.number, row.course.slug, False), now)


def withdraw(session: Session, *, course: str, inmate: str, reason: str, by: str, now: datetime) -> Outcome:
    row, person = _course(session, course), find_inmate(session, inmate)
    existing = _open(session, row, person)
    if existing is None or existing.status != S.ACTIVE.value:
        raise Conflict(f"{person.number} is not enrolled in {row.slug}")
    outcome = Outcome(enrolments=[existing])
    existing.decided_by = by
    _close(session, outcome, existing, S.WITHDRAWN, now, _reason(reason, "why the inmate leaves the course"))
    outcome.summary = f"{person.number} withdrawn from {row.slug}"
    return outcome


def request_enrolment(session: Session, *, course: str, inmate: str, now: datetime) -> Enrolment:
    row, person = _course(session, course), find_inmate(session, inmate)
    catalog.published(session, row.slug)
    if reasons := _check(session, row, person):
        raise Conflict(f"{person.number} cannot take {row.slug}: " + "; ".join(reasons))
    if _open(session, row, person) is not None:
        raise Conflict(f"{person.number} has asked for or is enrolled in {row.slug} already")
    asked = Enrolment(course=row, inmate=person, status=S.REQUESTED.value, starts_at=now, requested_at=now,
                      created_at=now, created_by=person.number)
    session.add(asked)
    _flush(session, f"{person.number} has asked for or is enrolled in {row.slug} already")
    return asked


def _request(session: Session, enrolment_id: int) -> Enrolment:
    row = session.get(Enrolment, enrolment_id)
    if row is None or row.status != S.REQUESTED.value:
        raise NotFound(f"no open request {enrolment_id}")
    return row


def accept(session: Session, enrolment_id: int, *, by: str, now: datetime) -> Outcome:
    row = _request(session, enrolment_id)
    if reasons := _check(session, row.course, row.inmate):
        raise Conflict(f"{row.inmate.number} cannot take {row.course.slug}: " + "; ".join(reasons))
    outcome = Outcome()
    _activate(session, outcome, row.course, row.inmate, by=by, now=now, starts_at=None, ends_at=row.ends_at,
              row=row)
    outcome.summary = f"{row.inmate.number} enrolled in {row.course.slug} at their request"
    return outcome


def refuse(session: Session, enrolment_id: int, *, reason: str, by: str, now: datetime) -> Outcome:
    row = _request(session, enrolment_id)
    row.status, row.reason = S.REFUSED.value, _reason(reason, "it is shown to the inmate")
    row.decided_at, row.decided_by = now, by
    return Outcome(enrolments=[row], summary=f"request of {row.inmate.number} for {row.course.slug} refused")


def complete(session: Session, enrolment: Enrolment, now: datetime) -> Outcome:
    if enrolment.status != S.ACTIVE.value:
        raise Conflict(f"enrolment {enrolment.id} is {enrolment.status}, not active")
    outcome = Outcome(enrolments=[enrolment])
    _close(session, outcome, enrolment, S.COMPLETED, now)
    outcome.summary = f"{enrolment.inmate.number} completed {enrolment.course.slug}"
    return outcome


def close_all(session: Session, inmate: Inmate, status: EnrolmentStatus, reason: str, now: datetime) -> Outcome:
    """Every open enrolment of the inmate ends (`ended` at release, `transferred` at a transfer): their courses'
    sites close and requests waiting for an answer are dropped."""
    outcome = Outcome()
    for row in session.scalars(select(Enrolment).where(Enrolment.inmate_id == inmate.id,
                                                       Enrolment.status.in_(OPEN_STATUSES))):
        outcome.enrolments.append(row)
        if row.status == S.REQUESTED.value:
            row.status, row.reason, row.closed_at = status.value, reason, now
        else:
            _close(session, outcome, row, status, now, reason)
    outcome.summary = f"{len(outcome.enrolments)} enrolments of {inmate.number} closed: {reason}"
    return outcome


def sweep_ended(session: Session, now: datetime) -> Outcome:
    """Enrolments whose end date passed become `ended` (the gateway stopped opening their sites at that date).
    Portals on several nodes may sweep at once: a row another is sweeping is skipped, not closed twice."""
    outcome = Outcome()
    rows = session.scalars(select(Enrolment).where(Enrolment.status == S.ACTIVE.value,
                                                   Enrolment.ends_at.is_not(None), Enrolment.ends_at <= now)
                           .with_for_update(skip_locked=True, of=Enrolment))
    for row in rows:
        outcome.enrolments.append(row)
        _close(session, outcome, row, S.ENDED, now, "the end date passed")
    outcome.summary = f"{len(outcome.enrolments)} enrolments ended"
    return outcome


def enrolments_of(session: Session, inmate_number: str) -> list[Enrolment]:
    person = find_inmate(session, inmate_number)
    return list(session.scalars(select(Enrolment).where(Enrolment.inmate_id == person.id)
                                .order_by(Enrolment.created_at.desc())))


def requests(session: Session) -> list[Enrolment]:
    return list(session.scalars(select(Enrolment).where(Enrolment.status == S.REQUESTED.value)
                                .order_by(Enrolment.requested_at)))


def enrolments_in(session: Session, course_slug: str) -> list[Enrolment]:
    course = _course(session, course_slug)
    return list(session.scalars(select(Enrolment).where(Enrolment.course_id == course.id)
                                .order_by(Enrolment.created_at)))


def exclude(session: Session, *, course: str, inmate: str, reason: str, by: str, now: datetime) -> Exclusion:
    row, person = _course(session, course), find_inmate(session, inmate)
    if session.get(Exclusion, (row.id, person.id)) is not None:
        raise Conflict(f"{person.number} is excluded from {row.slug} already")
    excluded = Exclusion(course_id=row.id, inmate_id=person.id, reason=_reason(reason, "it is shown to staff"),
                         created_at=now, created_by=by)
    session.add(excluded)
    return excluded


def include(session: Session, *, course: str, inmate: str) -> None:
    row, person = _course(session, course), find_inmate(session, inmate)
    excluded = session.get(Exclusion, (row.id, person.id))
    if excluded is None:
        raise Conflict(f"{person.number} is not excluded from {row.slug}")
    session.delete(excluded)


def set_eligible_groups(session: Session, *, course: str, groups: list[str]) -> Course:
    row = _course(session, course)
    row.eligible_groups = sorted({g.strip().lower() for g in groups if g.strip()})
    return row


def exclusions(session: Session, course: str) -> list[Exclusion]:
    row = _course(session, course)
    return list(session.scalars(select(Exclusion).where(Exclusion.course_id == row.id)))
