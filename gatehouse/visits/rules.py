"""The pure rules of video visits: visiting hours and their slots, lead time, limits per inmate, visitors,
booth and supervisor capacity, what a legal visit admits, and the call's clock.

No I/O and no clock: the services pass `now`, the facility's hours and the visits already booked, and store or
show what comes out. A check returns every problem at once (a family fixing one thing at a time would book in
five tries), each a frozen dataclass with a stable `code` and the facts a screen needs to say it in any language.

Times: instants are aware datetimes (stored in UTC); hours, days, weeks and months are the facility's wall
clock, so a window of 14:00-16:00 stays 14:00-16:00 across a daylight-saving change.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import ClassVar

from policies.windows import Window

__all__ = ["ApprovedListsFull", "BookingRequest", "BookingRules", "BoothTaken", "CallClock", "CallPhase",
           "ClosedDay", "InmateBusy", "LeadTimeTooShort", "LegalSupervised", "LengthNotOffered", "MonthlyLimit",
           "MonthlyMinutes", "NoContact", "NoVisitors", "NotApproved", "OutsideHours", "Oversight", "Problem",
           "ProblemCode", "Slot", "SupervisionFull", "SupervisorFull", "TooFarAhead", "TooManyVisitors", "Visit",
           "VisitClass", "VisitRuleError", "VisitingHours", "VisitorBusy", "WARNINGS", "WeeklyLimit", "booth_hours",
           "call_clock", "check_approval", "check_booking", "counting_span", "oversight", "slots"]

WARNINGS = (timedelta(minutes=5), timedelta(minutes=1))
"""Before the end, the call tells both sides how long is left, so a goodbye is not cut off mid-sentence."""


class VisitRuleError(ValueError):
    """Arguments the rules cannot work with (a naive datetime, a length of no minutes): the caller is wrong."""


class VisitClass(enum.StrEnum):
    ORDINARY = "ordinary"
    LEGAL = "legal"
    """A lawyer: privileged, so never watched, never recorded, and not counted against the family's visits."""


class ProblemCode(enum.StrEnum):
    LEAD_TIME_TOO_SHORT = "lead-time-too-short"
    TOO_FAR_AHEAD = "too-far-ahead"
    CLOSED_DAY = "closed-day"
    OUTSIDE_HOURS = "outside-hours"
    LENGTH_NOT_OFFERED = "length-not-offered"
    WEEKLY_LIMIT = "weekly-limit"
    MONTHLY_LIMIT = "monthly-limit"
    MONTHLY_MINUTES = "monthly-minutes"
    NO_VISITORS = "no-visitors"
    TOO_MANY_VISITORS = "too-many-visitors"
    NO_CONTACT = "no-contact"
    NOT_APPROVED = "not-approved"
    BOOTH_TAKEN = "booth-taken"
    INMATE_BUSY = "inmate-busy"
    VISITOR_BUSY = "visitor-busy"
    SUPERVISION_FULL = "supervision-full"
    SUPERVISOR_FULL = "supervisor-full"
    LEGAL_SUPERVISED = "legal-supervised"
    APPROVED_LISTS_FULL = "approved-lists-full"


def _aware(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise VisitRuleError(f"{name} must be an aware datetime, not {when.isoformat()}")
    return when


def _minutes(length: timedelta) -> int:
    if length <= timedelta(0) or length % timedelta(minutes=1):
        raise VisitRuleError(f"a visit lasts a whole number of minutes, more than none (not {length})")
    return length // timedelta(minutes=1)


# -- visiting hours and slots ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class VisitingHours:
    """The weekly windows of a unit or a booth, in `zone`, and its closed days.

    Windows are `policies.windows.Window` (`mon-fri 14:00-16:00`), as terminals' opening hours are, so a window
    cannot cross midnight (`Window.parse` refuses it): a visit belongs to one facility day, and two windows
    (`fri 20:00-23:59`, `sat 00:00-01:00`) say the rare night session. No windows means no visits (closed, not
    open at all times as terminals without hours are).
    """

    zone: tzinfo
    windows: tuple[Window, ...]
    closed: frozenset[date] = frozenset()

    @classmethod
    def parse(cls, zone: tzinfo, windows: Iterable[str], closed: Iterable[date] = ()) -> VisitingHours:
        return cls(zone, tuple(Window.parse(w) for w in windows), frozenset(closed))


def booth_hours(unit: VisitingHours, booth: VisitingHours | None) -> VisitingHours:
    """A booth's own windows replace its unit's (a booth shared with the classroom is free less often); closed
    days add, because a day the unit is closed has no staff to open any of its booths."""
    if booth is None:
        return unit
    return VisitingHours(unit.zone, booth.windows, unit.closed | booth.closed)


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    start: datetime
    """UTC."""
    end: datetime


def _instant(wall: datetime, zone: tzinfo) -> datetime | None:
    """The one instant a wall-clock time names; None when it names none (the spring gap) or two (the autumn
    fold): both readings are tried, and they differ exactly then."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        return None
    return first.astimezone(UTC)


def slots(hours: VisitingHours, day: date, length: timedelta) -> tuple[Slot, ...]:
    """The slots of `length` on a facility day, laid out from each window's start; the last one ends at or before
    the window's end (a shorter remainder is not offered).

    On a daylight-saving day a slot whose start or end does not exist or exists twice is not offered, nor one
    whose real length differs from its wall-clock length: the family is told one wall-clock time and it must
    mean one instant, and booths and supervisors are booked in real minutes. Those hours are at night, when no
    facility holds visits, so nothing of use is lost by refusing them.
    """
    _minutes(length)
    if day in hours.closed:
        return ()
    found: set[Slot] = set()
    for window in hours.windows:
        first = window.starts_on(day)
        if first is None:
            continue
        close = datetime.combine(day, window.end)
        wall = first
        while wall + length <= close:
            start, end = _instant(wall, hours.zone), _instant(wall + length, hours.zone)
            if start is not None and end is not None and end - start == length:
                found.add(Slot(start, end))
            wall += length
    return tuple(sorted(found))


# -- facts ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BookingRules:
    """A facility's booking rules; None means no limit of that kind."""

    min_lead: timedelta = timedelta(hours=24)
    """Time for staff to check the visitors and plan supervision before the call."""
    max_ahead: timedelta = timedelta(days=14)
    """Far enough to plan, near enough that a transfer or a release rarely strands a booking."""
    lengths: tuple[timedelta, ...] = (timedelta(minutes=30), timedelta(minutes=60))
    per_week: int | None = None
    per_month: int | None = 2
    minutes_per_month: int | None = 60
    """England and Wales: two 30-minute calls or one of 60 minutes a month."""
    max_visitors: int = 3
    supervisor_watches: int = 4
    """How many visits one supervisor can watch at once."""
    supervised_at_once: int | None = None
    """How many ordinary (watched) visits may run at one instant in the facility: the staff on duty times what
    each can watch. The database holds it too, as that many supervision seats."""

    def __post_init__(self) -> None:
        for name in ("per_week", "per_month", "minutes_per_month"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise VisitRuleError(f"{name} cannot be negative ({value})")
        if self.supervised_at_once is not None and self.supervised_at_once < 1:
            raise VisitRuleError(f"supervised_at_once must be at least 1 ({self.supervised_at_once})")
        if self.max_visitors < 1 or self.supervisor_watches < 1:
            raise VisitRuleError("a visit admits at least one visitor and a supervisor watches at least one visit")
        if not self.lengths or self.min_lead < timedelta(0) or self.max_ahead < self.min_lead:
            raise VisitRuleError("visits need a length, and the furthest start must not come before the earliest")
        for length in self.lengths:
            _minutes(length)


@dataclass(frozen=True, slots=True)
class Visit:
    """A visit already booked (cancelled ones may be passed: they are skipped)."""

    id: str
    inmate: str
    booth: str
    start: datetime
    end: datetime
    visit_class: VisitClass = VisitClass.ORDINARY
    supervisor: str | None = None
    cancelled: bool = False
    visitors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BookingRequest:
    inmate: str
    booth: str
    start: datetime
    length: timedelta
    visitors: tuple[str, ...]
    visit_class: VisitClass = VisitClass.ORDINARY
    supervisor: str | None = None
    """Ordinary visits may be booked before a supervisor is assigned; the assignment is checked when given."""

    @property
    def end(self) -> datetime:
        """In UTC: an aware datetime plus a timedelta is wall-clock arithmetic in its own zone."""
        return self.start.astimezone(UTC) + self.length


# -- problems ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LeadTimeTooShort:
    code: ClassVar[ProblemCode] = ProblemCode.LEAD_TIME_TOO_SHORT
    earliest: datetime
    """The first start that may be booked now."""

    def __str__(self) -> str:
        return f"{self.code}: book a start at {self.earliest.isoformat()} or later"


@dataclass(frozen=True, slots=True)
class TooFarAhead:
    code: ClassVar[ProblemCode] = ProblemCode.TOO_FAR_AHEAD
    latest: datetime

    def __str__(self) -> str:
        return f"{self.code}: book a start at {self.latest.isoformat()} or earlier"


@dataclass(frozen=True, slots=True)
class ClosedDay:
    code: ClassVar[ProblemCode] = ProblemCode.CLOSED_DAY
    day: date

    def __str__(self) -> str:
        return f"{self.code}: no visits on {self.day.isoformat()}"


@dataclass(frozen=True, slots=True)
class OutsideHours:
    """The start is no slot of that length in the booth's hours (outside a window, off the grid, or in a
    daylight-saving hour)."""

    code: ClassVar[ProblemCode] = ProblemCode.OUTSIDE_HOURS
    start: datetime
    minutes: int

    def __str__(self) -> str:
        return f"{self.code}: no {self.minutes}-minute slot starts at {self.start.isoformat()}"


@dataclass(frozen=True, slots=True)
class LengthNotOffered:
    code: ClassVar[ProblemCode] = ProblemCode.LENGTH_NOT_OFFERED
    minutes: int
    offered: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.code}: {self.minutes} minutes; visits last {', '.join(map(str, self.offered))} minutes"


@dataclass(frozen=True, slots=True)
class WeeklyLimit:
    code: ClassVar[ProblemCode] = ProblemCode.WEEKLY_LIMIT
    week: str
    """ISO week in facility time, as `2026-W13`."""
    limit: int
    booked: int

    def __str__(self) -> str:
        return f"{self.code}: {self.booked} of {self.limit} visits already booked in {self.week}"


@dataclass(frozen=True, slots=True)
class MonthlyLimit:
    code: ClassVar[ProblemCode] = ProblemCode.MONTHLY_LIMIT
    month: str
    """Calendar month in facility time, as `2026-03`."""
    limit: int
    booked: int

    def __str__(self) -> str:
        return f"{self.code}: {self.booked} of {self.limit} visits already booked in {self.month}"


@dataclass(frozen=True, slots=True)
class MonthlyMinutes:
    code: ClassVar[ProblemCode] = ProblemCode.MONTHLY_MINUTES
    month: str
    limit: int
    booked: int
    """Minutes already booked in the month."""

    def __str__(self) -> str:
        return f"{self.code}: {self.booked} of {self.limit} minutes already booked in {self.month}"


@dataclass(frozen=True, slots=True)
class NoVisitors:
    code: ClassVar[ProblemCode] = ProblemCode.NO_VISITORS

    def __str__(self) -> str:
        return f"{self.code}: a visit needs a visitor"


@dataclass(frozen=True, slots=True)
class TooManyVisitors:
    code: ClassVar[ProblemCode] = ProblemCode.TOO_MANY_VISITORS
    limit: int
    asked: int

    def __str__(self) -> str:
        return f"{self.code}: {self.asked} visitors, at most {self.limit}"


@dataclass(frozen=True, slots=True)
class NoContact:
    code: ClassVar[ProblemCode] = ProblemCode.NO_CONTACT
    visitor: str

    def __str__(self) -> str:
        return f"{self.code}: visitor {self.visitor} may not contact this inmate"


@dataclass(frozen=True, slots=True)
class NotApproved:
    code: ClassVar[ProblemCode] = ProblemCode.NOT_APPROVED
    visitor: str

    def __str__(self) -> str:
        return f"{self.code}: visitor {self.visitor} is not on the inmate's approved list"


@dataclass(frozen=True, slots=True)
class BoothTaken:
    code: ClassVar[ProblemCode] = ProblemCode.BOOTH_TAKEN
    booth: str
    visit: str
    """The booked visit in the way."""

    def __str__(self) -> str:
        return f"{self.code}: booth {self.booth} holds visit {self.visit} then"


@dataclass(frozen=True, slots=True)
class InmateBusy:
    code: ClassVar[ProblemCode] = ProblemCode.INMATE_BUSY
    visit: str

    def __str__(self) -> str:
        return f"{self.code}: the inmate has visit {self.visit} then"


@dataclass(frozen=True, slots=True)
class VisitorBusy:
    code: ClassVar[ProblemCode] = ProblemCode.VISITOR_BUSY
    visitor: str
    visit: str

    def __str__(self) -> str:
        return f"{self.code}: visitor {self.visitor} is in visit {self.visit} then"


@dataclass(frozen=True, slots=True)
class SupervisionFull:
    code: ClassVar[ProblemCode] = ProblemCode.SUPERVISION_FULL
    limit: int

    def __str__(self) -> str:
        return f"{self.code}: {self.limit} supervised visits already run then, as many as staff can watch"


@dataclass(frozen=True, slots=True)
class SupervisorFull:
    code: ClassVar[ProblemCode] = ProblemCode.SUPERVISOR_FULL
    supervisor: str
    limit: int

    def __str__(self) -> str:
        return f"{self.code}: supervisor {self.supervisor} already watches {self.limit} visits then"


@dataclass(frozen=True, slots=True)
class LegalSupervised:
    code: ClassVar[ProblemCode] = ProblemCode.LEGAL_SUPERVISED
    supervisor: str

    def __str__(self) -> str:
        return f"{self.code}: a legal visit admits no supervisor ({self.supervisor})"


@dataclass(frozen=True, slots=True)
class ApprovedListsFull:
    code: ClassVar[ProblemCode] = ProblemCode.APPROVED_LISTS_FULL
    visitor: str
    limit: int

    def __str__(self) -> str:
        return f"{self.code}: visitor {self.visitor} is already on {self.limit} inmates' lists"


Problem = (LeadTimeTooShort | TooFarAhead | ClosedDay | OutsideHours | LengthNotOffered | WeeklyLimit | MonthlyLimit
           | MonthlyMinutes | NoVisitors | TooManyVisitors | NoContact | NotApproved | BoothTaken | InmateBusy
           | VisitorBusy | SupervisionFull | SupervisorFull | LegalSupervised | ApprovedListsFull)


# -- the checks ----------------------------------------------------------------------------------------------

def _overlaps(visit: Visit, start: datetime, end: datetime) -> bool:
    """Half-open, as PostgreSQL's `tstzrange` '[)': a visit ending at 14:30 leaves the booth free at 14:30."""
    return visit.start < end and start < visit.end


def counting_span(start: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The instants whose visits the limits for a visit at `start` count: its facility month and its ISO week,
    which may reach into the month before or after. The services load the inmate's visits in this span."""
    day = _aware(start, "start").astimezone(zone).date()
    monday = day - timedelta(days=day.weekday())
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    begin, stop = min(monday, first), max(monday + timedelta(days=7), following)
    return (datetime.combine(begin, datetime.min.time(), zone).astimezone(UTC),
            datetime.combine(stop, datetime.min.time(), zone).astimezone(UTC))


def _limits(request: BookingRequest, rules: BookingRules, zone: tzinfo, booked: Sequence[Visit]) -> list[Problem]:
    """Cancelled visits do not count: the call did not happen, and counting it would punish a family for the
    prison's lockdown or a visitor's illness. Legal visits neither count nor are limited: access to a lawyer is
    a right, not part of the family's allowance."""
    if request.visit_class is VisitClass.LEGAL:
        return []
    day = request.start.astimezone(zone).date()
    week = day.isocalendar()[:2]
    mine = [v for v in booked if v.inmate == request.inmate and not v.cancelled
            and v.visit_class is VisitClass.ORDINARY]
    local = [(v, v.start.astimezone(zone).date()) for v in mine]
    in_week = [v for v, d in local if d.isocalendar()[:2] == week]
    in_month = [v for v, d in local if (d.year, d.month) == (day.year, day.month)]
    month = f"{day.year:04d}-{day.month:02d}"
    problems: list[Problem] = []
    if rules.per_week is not None and len(in_week) + 1 > rules.per_week:
        problems.append(WeeklyLimit(f"{week[0]:04d}-W{week[1]:02d}", rules.per_week, len(in_week)))
    if rules.per_month is not None and len(in_month) + 1 > rules.per_month:
        problems.append(MonthlyLimit(month, rules.per_month, len(in_month)))
    minutes = sum((v.end - v.start) // timedelta(minutes=1) for v in in_month)
    if rules.minutes_per_month is not None and minutes + _minutes(request.length) > rules.minutes_per_month:
        problems.append(MonthlyMinutes(month, rules.minutes_per_month, minutes))
    return problems


def _visitors(request: BookingRequest, rules: BookingRules, approved: Collection[str],
              no_contact: Collection[str]) -> list[Problem]:
    """A no-contact order wins over an approval: it is a court's or the governor's protection of a victim, and
    an approved list kept by visit staff, or an approval older than the order, must never undo it."""
    visitors = tuple(dict.fromkeys(request.visitors))
    problems: list[Problem] = []
    if not visitors:
        problems.append(NoVisitors())
    elif len(visitors) > rules.max_visitors:
        problems.append(TooManyVisitors(rules.max_visitors, len(visitors)))
    for visitor in visitors:
        if visitor in no_contact:
            problems.append(NoContact(visitor))
        elif visitor not in approved:
            problems.append(NotApproved(visitor))
    return problems


def _most_at_once(visits: Sequence[Visit], start: datetime, end: datetime) -> int:
    """The most of `visits` running at one instant within [start, end)."""
    edges = sorted([(max(v.start, start), 1) for v in visits] + [(min(v.end, end), -1) for v in visits])
    running = most = 0
    for _, step in edges:  # at equal instants an end (-1) sorts before a start: back to back is not at once
        running += step
        most = max(most, running)
    return most


def _capacity(request: BookingRequest, rules: BookingRules, booked: Sequence[Visit]) -> list[Problem]:
    live = [v for v in booked if not v.cancelled and _overlaps(v, request.start, request.end)]
    problems: list[Problem] = [BoothTaken(request.booth, v.id) for v in live if v.booth == request.booth]
    problems += [InmateBusy(v.id) for v in live if v.inmate == request.inmate and v.booth != request.booth]
    problems += [VisitorBusy(who, v.id) for v in live for who in dict.fromkeys(request.visitors)
                 if who in v.visitors]
    watched = [v for v in live if v.visit_class is VisitClass.ORDINARY]
    if (request.visit_class is VisitClass.ORDINARY and rules.supervised_at_once is not None
            and _most_at_once(watched, request.start, request.end) >= rules.supervised_at_once):
        problems.append(SupervisionFull(rules.supervised_at_once))
    if request.supervisor is not None:
        if request.visit_class is VisitClass.LEGAL:
            problems.append(LegalSupervised(request.supervisor))
        else:
            watched = [v for v in live if v.supervisor == request.supervisor]
            if _most_at_once(watched, request.start, request.end) >= rules.supervisor_watches:
                problems.append(SupervisorFull(request.supervisor, rules.supervisor_watches))
    return problems


def check_booking(request: BookingRequest, *, now: datetime, rules: BookingRules, hours: VisitingHours,
                  booked: Sequence[Visit], approved: Collection[str], no_contact: Collection[str]) -> list[Problem]:
    """Every problem with booking `request`; empty when it may be booked.

    `hours` are the booth's (`booth_hours`); `booked` holds the visits that may be in the way: the inmate's in
    `counting_span`, and any in the same booth or with the same supervisor around the request (more is harmless);
    `approved` is the inmate's approved list and `no_contact` the visitors an order keeps from this inmate. The
    database's exclusion constraint still has the last word under concurrency; this is the clear message first.
    """
    # In UTC, because aware datetimes of one zone add and compare by the wall clock: `now + 24 h` would be an
    # hour off on a change day, and the two 02:30 of an autumn night would be equal.
    now = _aware(now, "now").astimezone(UTC)
    request = replace(request, start=_aware(request.start, "the start").astimezone(UTC))
    booked = [replace(v, start=_aware(v.start, "a visit's start").astimezone(UTC),
                      end=_aware(v.end, "a visit's end").astimezone(UTC)) for v in booked]
    minutes = _minutes(request.length)
    problems: list[Problem] = []
    if request.start < now + rules.min_lead:
        problems.append(LeadTimeTooShort(now + rules.min_lead))
    elif request.start > now + rules.max_ahead:
        problems.append(TooFarAhead(now + rules.max_ahead))
    day = request.start.astimezone(hours.zone).date()
    if request.length not in rules.lengths:
        problems.append(LengthNotOffered(minutes, tuple(_minutes(n) for n in rules.lengths)))
    elif day in hours.closed:
        problems.append(ClosedDay(day))
    elif request.start not in {s.start for s in slots(hours, day, request.length)}:
        problems.append(OutsideHours(request.start.astimezone(UTC), minutes))
    problems += _limits(request, rules, hours.zone, booked)
    problems += _visitors(request, rules, approved, no_contact)
    problems += _capacity(request, rules, booked)
    return problems


def check_approval(visitor: str, inmate: str, *, on_lists_of: Collection[str], no_contact: bool,
                   max_inmates_per_visitor: int) -> list[Problem]:
    """Problems with putting `visitor` on `inmate`'s approved list; `on_lists_of` are the inmates whose lists
    the visitor is on already (approving again is no new list). The cap keeps one outside person from becoming
    the go-between of many inmates; a no-contact order refuses the approval outright."""
    if max_inmates_per_visitor < 1:
        raise VisitRuleError(f"a visitor may be on at least one list, not {max_inmates_per_visitor}")
    problems: list[Problem] = [NoContact(visitor)] if no_contact else []
    others = set(on_lists_of) - {inmate}
    if inmate not in on_lists_of and len(others) >= max_inmates_per_visitor:
        problems.append(ApprovedListsFull(visitor, max_inmates_per_visitor))
    return problems


# -- visit classes and the call ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Oversight:
    supervisor_may_join: bool
    recording: bool


def oversight(visit_class: VisitClass, *, record: bool) -> Oversight:
    """Whether a supervisor may join and whether the call is recorded (`record` is the facility's choice for
    ordinary visits). A legal visit gets neither whatever is asked: lawyer and client speak in confidence."""
    if visit_class is VisitClass.LEGAL:
        return Oversight(supervisor_may_join=False, recording=False)
    return Oversight(supervisor_may_join=True, recording=record)


class CallPhase(enum.StrEnum):
    NOT_OPEN = "not-open"
    WAITING_ROOM = "waiting-room"
    """Before the start, so both sides can test camera and sound without eating into the call."""
    OPEN = "open"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallClock:
    phase: CallPhase
    opens: datetime
    """When the waiting room opens."""
    ends: datetime
    left: timedelta
    """Until the end; zero once ended."""
    warning: timedelta | None
    """The last of `WARNINGS` reached while open (5 then 1 minutes), for the call to show once each."""


def call_clock(start: datetime, length: timedelta, now: datetime, *,
               waiting_room: timedelta = timedelta(minutes=10)) -> CallClock:
    """Where a call stands at `now`. The end is the booked end whoever joins late: the booth, the supervisor and
    the next visit are booked to it, and the relay's credentials expire at it."""
    start = _aware(start, "the start").astimezone(UTC)
    _aware(now, "now")
    _minutes(length)
    if waiting_room < timedelta(0):
        raise VisitRuleError(f"the waiting room cannot open after the start ({waiting_room})")
    end, opens = start + length, start - waiting_room
    left = max(end - now, timedelta(0))
    if now < opens:
        phase = CallPhase.NOT_OPEN
    elif now < start:
        phase = CallPhase.WAITING_ROOM
    elif now < end:
        phase = CallPhase.OPEN
    else:
        phase = CallPhase.ENDED
    due = [w for w in WARNINGS if left <= w] if phase is CallPhase.OPEN else []
    return CallClock(phase, opens, end, left, min(due) if due else None)
