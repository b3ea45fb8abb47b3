"""Booking, approving, cancelling and ending visits: the rules' facts read from the database, the rules asked, and
the answer stored with the claims that the database keeps from overlapping.

Two guards, on purpose. `rules.check_booking` says every problem at once in words a family understands; the
claims (see `models`) are what makes a double booking impossible when two requests arrive together, whatever
any check before the insert saw. Bookings for one inmate also queue on the inmate's row (an UPDATE as the
transaction's first statement: a row lock on PostgreSQL, SQLite's one writer lock), so two requests cannot both
pass the monthly limit either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gatehouse.db.engine import stored
from gatehouse.db.models import Inmate
from gatehouse.errors import Conflict, GatehouseError, InvalidInput, NotFound
from gatehouse.settings import Settings
from gatehouse.visits import outbox, rules
from gatehouse.visits.models import (
    LIVE,
    Booth,
    Claim,
    ClosedDay,
    ListEntry,
    ListStatus,
    MailKind,
    NoContactOrder,
    Visit,
    VisitGuest,
    VisitingHours,
    Visitor,
    VisitStatus,
)
from gatehouse.visits.rules import BookingRequest, BookingRules, Problem, VisitClass


class BookingRefused(GatehouseError):
    """The rules (or the database, under a race) refused a booking; `problems` says every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Setup:
    """What booking reads from the settings, read once."""

    rules: BookingRules
    zone: tzinfo
    hours: tuple[str, ...]
    auto_approve: bool
    record: bool
    max_inmates_per_visitor: int
    waiting_room: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Setup:
        def limit(name: str) -> int | None:
            return settings[name] or None

        booking = BookingRules(
            min_lead=timedelta(hours=settings["visits.min_lead_hours"]),
            max_ahead=timedelta(days=settings["visits.max_ahead_days"]),
            lengths=tuple(timedelta(minutes=m) for m in settings["visits.lengths"]),
            per_week=limit("visits.per_week"), per_month=limit("visits.per_month"),
            minutes_per_month=limit("visits.minutes_per_month"), max_visitors=settings["visits.max_visitors"],
            supervised_at_once=settings["visits.supervised_at_once"])
        return cls(booking, ZoneInfo(settings["facility.timezone"]), tuple(settings["visits.hours"]),
                   settings["visits.auto_approve"], settings["visits.record"],
                   settings["visits.max_inmates_per_visitor"],
                   timedelta(minutes=settings["visits.waiting_room_minutes"]))


def aware(moment: datetime) -> datetime:
    """A stored (naive UTC) time as an aware one, for the rules and for people."""
    return moment.replace(tzinfo=UTC)


def visitor_key(visitor_id: int) -> str:
    return f"visitor:{visitor_id}"


# -- the facts -----------------------------------------------------------------------------------------------

def booth_hours(session: Session, booth: Booth, setup: Setup) -> rules.VisitingHours:
    rows = {row.booth_id: row.windows for row in session.scalars(
        select(VisitingHours).where(VisitingHours.unit == booth.unit,
                                    or_(VisitingHours.booth_id.is_(None), VisitingHours.booth_id == booth.id)))}
    closed = session.scalars(select(ClosedDay.day).where(ClosedDay.unit.in_({booth.unit, ""})))
    unit = rules.VisitingHours.parse(setup.zone, rows.get(None, setup.hours), closed)
    own = rules.VisitingHours.parse(setup.zone, rows[booth.id]) if booth.id in rows else None
    return rules.booth_hours(unit, own)


def _as_rule(visit: Visit) -> rules.Visit:
    return rules.Visit(str(visit.id), str(visit.inmate_id), str(visit.booth_id),
                       aware(visit.starts_at), aware(visit.ends_at), VisitClass(visit.visit_class),
                       visit.supervisor or None, visit.status not in LIVE,
                       tuple(visitor_key(g.visitor_id) for g in visit.visitors))


def _in_the_way(session: Session, inmate: Inmate, start: datetime, end: datetime, zone: tzinfo) -> list[rules.Visit]:
    first, last = rules.counting_span(start, zone)
    rows = session.scalars(select(Visit).where(Visit.status.in_(LIVE), or_(
        and_(Visit.inmate_id == inmate.id, Visit.starts_at >= stored(first), Visit.starts_at < stored(last)),
        and_(Visit.starts_at < stored(end), Visit.ends_at > stored(start)))))
    return [_as_rule(v) for v in rows]


def approved_for(session: Session, inmate: Inmate, visit_class: VisitClass) -> set[str]:
    """Who may visit: verified people on the approved list, or for a legal visit, verified lawyers."""
    if visit_class is VisitClass.LEGAL:
        people: Iterable[Visitor] = session.scalars(select(Visitor).where(Visitor.lawyer.is_(True)))
    else:
        people = session.scalars(select(Visitor).join(ListEntry, ListEntry.visitor_id == Visitor.id).where(
            ListEntry.inmate_id == inmate.id, ListEntry.status == ListStatus.APPROVED.value))
    return {visitor_key(v.id) for v in people if v.verified}


def no_contact_for(session: Session, inmate: Inmate) -> set[str]:
    emails = select(NoContactOrder.email).where(NoContactOrder.inmate_id == inmate.id,
                                                NoContactOrder.lifted_at.is_(None))
    return {visitor_key(i) for i in session.scalars(select(Visitor.id).where(Visitor.email.in_(emails)))}


def _lock_inmate(session: Session, number: str) -> Inmate:
    """Queue behind any other booking for this inmate (see the module's docstring), then read the inmate."""
    number = number.strip().upper()
    session.execute(update(Inmate).where(Inmate.number == number).values(number=Inmate.number))
    inmate = session.scalar(select(Inmate).where(Inmate.number == number))
    if inmate is None:
        raise NotFound(f"no inmate with number {number!r}")
    return inmate


def _booths(session: Session, name: str | None) -> list[Booth]:
    query = select(Booth).where(Booth.active.is_(True)).order_by(Booth.name)
    if name is not None:
        query = query.where(Booth.name == name.strip())
    found = list(session.scalars(query))
    if not found:
        raise NotFound(f"no open booth named {name!r}" if name else "no booth is set up for visits")
    return found


# -- booking -------------------------------------------------------------------------------------------------

def book(session: Session, *, inmate: str, visitors: Sequence[int], start: datetime, minutes: int, by: str,
         now: datetime, setup: Setup, booth: str | None = None, visit_class: VisitClass = VisitClass.ORDINARY,
         approve: bool = False) -> Visit:
    """Book a visit in the first booth (or the named one) where every rule holds, or raise `BookingRefused` with
    the problems of the booth that came nearest (so a full booth does not hide the reason that holds for all).
    `approve` is staff booking it themselves; otherwise the visit waits for staff unless `visits.auto_approve`."""
    if start.tzinfo is None:
        raise InvalidInput("a visit's start needs its time zone")
    person = _lock_inmate(session, inmate)
    if minutes <= 0:
        raise InvalidInput(f"a visit lasts some minutes, not {minutes}")
    guests = tuple(dict.fromkeys(visitors))
    keys = tuple(visitor_key(v) for v in guests)
    approved, barred = approved_for(session, person, visit_class), no_contact_for(session, person)
    end = start.astimezone(UTC) + timedelta(minutes=minutes)
    booked = _in_the_way(session, person, start, end, setup.zone)
    fewest: list[Problem] | None = None
    for place in _booths(session, booth):
        ask = BookingRequest(str(person.id), str(place.id), start, timedelta(minutes=minutes), keys, visit_class)
        problems = rules.check_booking(ask, now=now.replace(tzinfo=UTC) if now.tzinfo is None else now,
                                       rules=setup.rules, hours=booth_hours(session, place, setup), booked=booked,
                                       approved=approved, no_contact=barred)
        if not problems:
            return _store(session, person, place, guests, start, end, visit_class, by, now, setup, approve)
        fewest = problems if fewest is None or len(problems) < len(fewest) else fewest
    raise BookingRefused(fewest or ())


def _store(session: Session, person: Inmate, place: Booth, guests: Sequence[int], start: datetime, end: datetime,
           visit_class: VisitClass, by: str, now: datetime, setup: Setup, approve: bool) -> Visit:
    now = stored(now)
    yes = approve or setup.auto_approve
    watched = rules.oversight(visit_class, record=setup.record)
    visit = Visit(inmate_id=person.id, booth=place, starts_at=stored(start), ends_at=stored(end),
                  visit_class=visit_class.value, requested_by=by, requested_at=now, recorded=watched.recording,
                  status=(VisitStatus.APPROVED if yes else VisitStatus.REQUESTED).value,
                  decided_by=by if yes else "", decided_at=now if yes else None,
                  visitors=[VisitGuest(visitor_id=g) for g in guests])
    session.add(visit)
    session.flush()
    things = [f"inmate:{person.id}", f"booth:{place.id}", *(visitor_key(g) for g in guests)]
    try:
        with session.begin_nested():
            session.add_all(Claim(visit_id=visit.id, resource=r, starts_at=visit.starts_at, ends_at=visit.ends_at)
                            for r in things)
    except IntegrityError:
        raise BookingRefused(_race(session, person, place, guests, start, end)) from None
    if watched.supervisor_may_join and setup.rules.supervised_at_once is not None:
        _take_seat(session, visit, setup.rules.supervised_at_once)
    if yes:
        _tell(session, visit, MailKind.INVITATION, now)
    return visit


def _take_seat(session: Session, visit: Visit, seats: int) -> None:
    """One of `seats` supervision seats for the visit's time: the first free one wins, and when two bookings
    reach for the same seat the database gives it to one and the other tries the next."""
    for seat in range(seats):
        try:
            with session.begin_nested():
                session.add(Claim(visit_id=visit.id, resource=f"supervision:{seat}", starts_at=visit.starts_at,
                                  ends_at=visit.ends_at))
            return
        except IntegrityError:
            continue
    raise BookingRefused([rules.SupervisionFull(seats)])


def _race(session: Session, person: Inmate, place: Booth, guests: Sequence[int], start: datetime,
          end: datetime) -> list[Problem]:
    """What was in the way when another booking committed between our check and our claims."""
    rows = session.scalars(select(Claim).where(Claim.active.is_(True), Claim.starts_at < stored(end),
                                               Claim.ends_at > stored(start)))
    taken = {c.resource: str(c.visit_id) for c in rows}
    problems: list[Problem] = []
    if f"booth:{place.id}" in taken:
        problems.append(rules.BoothTaken(place.name, taken[f"booth:{place.id}"]))
    if f"inmate:{person.id}" in taken:
        problems.append(rules.InmateBusy(taken[f"inmate:{person.id}"]))
    problems += [rules.VisitorBusy(visitor_key(g), taken[visitor_key(g)]) for g in guests if visitor_key(g) in taken]
    return problems or [rules.BoothTaken(place.name, "")]


# -- after the booking ---------------------------------------------------------------------------------------

def _tell(session: Session, visit: Visit, kind: MailKind, now: datetime, reason: str = "") -> None:
    for guest in visit.visitors:
        person = guest.visitor or session.get(Visitor, guest.visitor_id)
        if person is not None:
            outbox.queue(session, kind, person.email, now, visitor_id=person.id, visit_id=visit.id,
                         payload={"reason": reason} if reason else None)


def find_visit(session: Session, visit_id: int) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None:
        raise NotFound(f"no visit {visit_id}")
    return visit


def approve(session: Session, visit_id: int, *, by: str, now: datetime) -> Visit:
    visit = find_visit(session, visit_id)
    if visit.status != VisitStatus.REQUESTED.value:
        raise Conflict(f"visit {visit_id} is {visit.status}, not waiting for approval")
    visit.status, visit.decided_by, visit.decided_at = VisitStatus.APPROVED.value, by, stored(now)
    _tell(session, visit, MailKind.INVITATION, stored(now))
    return visit


def _release(session: Session, visit: Visit) -> None:
    session.execute(update(Claim).where(Claim.visit_id == visit.id).values(active=False))


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("give a reason: both sides are told it")
    return reason[:1000]


def refuse(session: Session, visit_id: int, *, by: str, reason: str, now: datetime) -> Visit:
    return _close(session, visit_id, VisitStatus.REFUSED, by=by, reason=reason, now=now,
                  allowed=(VisitStatus.REQUESTED.value,))


def cancel(session: Session, visit_id: int, *, by: str, reason: str, now: datetime) -> Visit:
    """Either side or staff; a visit that has begun is ended instead (see `end`)."""
    visit = find_visit(session, visit_id)
    if visit.status in LIVE and aware(visit.starts_at) <= _aware(now):
        raise Conflict(f"visit {visit_id} has begun: end it instead of cancelling it")
    return _close(session, visit_id, VisitStatus.CANCELLED, by=by, reason=reason, now=now, allowed=LIVE)


def end(session: Session, visit_id: int, *, by: str, reason: str, now: datetime) -> Visit:
    """A supervisor or a lockdown ends a visit that is running: the room closes and both sides see the reason."""
    return _close(session, visit_id, VisitStatus.ENDED, by=by, reason=reason, now=now, allowed=LIVE)


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _close(session: Session, visit_id: int, status: VisitStatus, *, by: str, reason: str, now: datetime,
           allowed: Sequence[str]) -> Visit:
    reason = _reason(reason)
    visit = find_visit(session, visit_id)
    if visit.status not in allowed:
        raise Conflict(f"visit {visit_id} is {visit.status} already")
    if aware(visit.ends_at) <= _aware(now):
        raise Conflict(f"visit {visit_id} is over")
    was_approved = visit.status == VisitStatus.APPROVED.value
    visit.status, visit.closed_by, visit.closed_at, visit.close_reason = status.value, by, stored(now), reason
    visit.sequence += 1
    _release(session, visit)
    if was_approved or status is VisitStatus.REFUSED:
        _tell(session, visit, MailKind.CANCELLED, stored(now), reason)
    return visit


def lockdown(session: Session, unit: str, *, reason: str, by: str, now: datetime,
             ahead: timedelta = timedelta(hours=24)) -> list[Visit]:
    """The visits a lockdown of `unit` ("" for the facility) stops: those running and those starting within
    `ahead`. A running one is ended, a later one cancelled; both sides are told the lockdown's reason."""
    query = select(Visit).join(Booth).where(Visit.status.in_(LIVE), Visit.ends_at > stored(now),
                                            Visit.starts_at < stored(now + ahead))
    if unit:
        query = query.where(Booth.unit == unit)
    stopped = []
    for visit in session.scalars(query.order_by(Visit.starts_at)):
        running = aware(visit.starts_at) <= _aware(now)
        stopped.append(_close(session, visit.id, VisitStatus.ENDED if running else VisitStatus.CANCELLED,
                              by=by, reason=f"lockdown: {reason}", now=now, allowed=LIVE))
    return stopped


def in_visit(session: Session, inmate_id: int, now: datetime) -> Visit | None:
    """The approved visit the inmate is in at `now`, if any: what opens the relay for the visit's time."""
    moment = stored(now)
    return session.scalar(select(Visit).where(Visit.inmate_id == inmate_id,
                                              Visit.status == VisitStatus.APPROVED.value,
                                              Visit.starts_at <= moment, Visit.ends_at > moment))


def day_visits(session: Session, day_start: datetime, day_end: datetime) -> list[Visit]:
    return list(session.scalars(select(Visit).where(Visit.starts_at >= stored(day_start),
                                                    Visit.starts_at < stored(day_end)).order_by(Visit.starts_at)))
