"""The booking rules of video visits as tables of cases: slots across daylight saving, lead time, limits per
inmate at week and month boundaries, visitors and no-contact orders, booth and supervisor capacity, legal
visits, and the call's clock. Pure: no database, no clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from gatehouse.visits import rules
from gatehouse.visits.rules import (
    BookingRequest,
    BookingRules,
    CallPhase,
    Oversight,
    Problem,
    ProblemCode,
    Visit,
    VisitClass,
    VisitingHours,
    VisitRuleError,
    booth_hours,
    call_clock,
    check_approval,
    check_booking,
    counting_span,
    oversight,
    slots,
)
from tests.test_layering import imported_roots

BRUSSELS = ZoneInfo("Europe/Brussels")
HOURS = VisitingHours.parse(BRUSSELS, ["mon-fri 14:00-16:00", "sat-sun 10:00-12:00"], [date(2026, 12, 25)])
NIGHT = VisitingHours.parse(BRUSSELS, ["sun 00:00-04:00", "sun 14:00-16:00"])
"""2026-03-29 and 2026-10-25 are Sundays: Brussels goes from 02:00 to 03:00, and from 03:00 back to 02:00."""
EARLY = VisitingHours.parse(BRUSSELS, ["sun 01:00-05:00"])
NOW = "2026-11-22T12:00"
APPROVED = frozenset({"v1", "v2", "v3", "v4", "lawyer"})
MIN = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def at(local: str) -> datetime:
    """A facility wall-clock time (the first, on the autumn fold)."""
    return datetime.fromisoformat(local).replace(tzinfo=BRUSSELS)


def walls(found: tuple[rules.Slot, ...]) -> list[str]:
    return [s.start.astimezone(BRUSSELS).strftime("%H:%M") for s in found]


def ask(start: str, minutes: int = 30, visitors: tuple[str, ...] = ("v1",), **more: Any) -> BookingRequest:
    fields: dict[str, Any] = {"inmate": "A1", "booth": "b1"} | more
    return BookingRequest(start=at(start), length=timedelta(minutes=minutes), visitors=visitors, **fields)


def visit(key: str, start: str, minutes: int = 30, **more: Any) -> Visit:
    fields: dict[str, Any] = {"inmate": "A1", "booth": "b9"} | more
    begin = at(start).astimezone(UTC)
    return Visit(key, start=begin, end=begin + timedelta(minutes=minutes), **fields)


def codes(request: BookingRequest, *, now: str = NOW, policy: BookingRules | None = None,
          booked: tuple[Visit, ...] = (), no_contact: frozenset[str] = frozenset(),
          hours: VisitingHours = HOURS) -> list[str]:
    problems = check_booking(request, now=at(now), rules=policy or BookingRules(), hours=hours, booked=booked,
                             approved=APPROVED, no_contact=no_contact)
    return [p.code for p in problems]


# -- hours and slots -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("hours", "day", "minutes", "expected"), [
    (HOURS, date(2026, 11, 23), 30, ["14:00", "14:30", "15:00", "15:30"]),  # the last slot ends at the window's end
    (HOURS, date(2026, 11, 23), 60, ["14:00", "15:00"]),
    (HOURS, date(2026, 11, 23), 45, ["14:00", "14:45"]),  # the 15-minute remainder is not offered
    (HOURS, date(2026, 11, 28), 60, ["10:00", "11:00"]),  # Saturday
    (HOURS, date(2026, 12, 25), 30, []),  # a closed day
    (NIGHT, date(2026, 11, 23), 30, []),  # a day without a window
    (NIGHT, date(2026, 3, 29), 60, ["00:00", "03:00", "14:00", "15:00"]),  # 02:00-03:00 does not exist
    (NIGHT, date(2026, 3, 29), 30, ["00:00", "00:30", "01:00", "03:00", "03:30", "14:00", "14:30", "15:00", "15:30"]),
    (NIGHT, date(2026, 10, 25), 60, ["00:00", "03:00", "14:00", "15:00"]),  # 02:00-03:00 happens twice
    (NIGHT, date(2026, 10, 25), 30, ["00:00", "00:30", "01:00", "03:00", "03:30", "14:00", "14:30", "15:00", "15:30"]),
    (NIGHT, date(2026, 11, 1), 60, ["00:00", "01:00", "02:00", "03:00", "14:00", "15:00"]),  # an ordinary Sunday
    # 01:00 and 03:00 both exist once, but between them lie 60 real minutes in March and 180 in October.
    (EARLY, date(2026, 3, 29), 120, ["03:00"]),
    (EARLY, date(2026, 10, 25), 120, ["03:00"]),
    (EARLY, date(2026, 11, 1), 120, ["01:00", "03:00"]),
])
def test_slots_are_laid_from_each_windows_start_in_wall_clock_time(
        hours: VisitingHours, day: date, minutes: int, expected: list[str]) -> None:
    found = slots(hours, day, timedelta(minutes=minutes))
    assert walls(found) == expected
    assert all(s.end - s.start == timedelta(minutes=minutes) and s.start.tzinfo is UTC for s in found)


@pytest.mark.parametrize(("day", "utc"), [
    (date(2026, 3, 28), "2026-03-28T13:00"),  # Saturday before: CET
    (date(2026, 3, 29), "2026-03-29T12:00"),  # CEST from 03:00 that day: 14:00 stays 14:00 on the wall
    (date(2026, 10, 25), "2026-10-25T13:00"),
])
def test_a_window_keeps_its_wall_clock_hours_on_the_change_days(day: date, utc: str) -> None:
    hours = VisitingHours.parse(BRUSSELS, ["mon-sun 14:00-16:00"])
    assert slots(hours, day, timedelta(minutes=60))[0].start == datetime.fromisoformat(utc).replace(tzinfo=UTC)


def test_a_window_across_midnight_is_refused_and_two_windows_say_it() -> None:
    with pytest.raises(ValueError, match="split windows across midnight"):
        VisitingHours.parse(BRUSSELS, ["fri 22:00-01:00"])
    split = VisitingHours.parse(BRUSSELS, ["fri 22:00-23:59", "sat 00:00-01:00"])
    assert walls(slots(split, date(2026, 11, 27), timedelta(minutes=30))) == ["22:00", "22:30", "23:00"]
    assert walls(slots(split, date(2026, 11, 28), timedelta(minutes=30))) == ["00:00", "00:30"]


def test_a_booths_windows_replace_its_units_and_closed_days_add() -> None:
    booth = VisitingHours.parse(BRUSSELS, ["wed 09:00-10:00"], [date(2026, 11, 25)])
    both = booth_hours(HOURS, booth)
    assert [w.text for w in both.windows] == ["wed 09:00-10:00"]
    assert both.closed == {date(2026, 11, 25), date(2026, 12, 25)}
    assert walls(slots(both, date(2026, 12, 2), timedelta(minutes=30))) == ["09:00", "09:30"]
    assert slots(both, date(2026, 11, 25), timedelta(minutes=30)) == ()
    assert booth_hours(HOURS, None) is HOURS


# -- lead time and hours in a booking -------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "start", "minutes", "expected"), [
    ("2026-11-22T14:00", "2026-11-23T14:00", 30, []),  # exactly the lead time
    ("2026-11-22T14:01", "2026-11-23T14:00", 30, ["lead-time-too-short"]),
    ("2026-11-24T12:00", "2026-11-23T14:00", 30, ["lead-time-too-short"]),  # in the past
    ("2026-11-23T14:00", "2026-12-07T14:00", 30, []),  # exactly 14 days ahead
    ("2026-11-23T14:00", "2026-12-07T14:30", 30, ["too-far-ahead"]),
    # The lead time is real hours: Saturday 11:00 CEST to Sunday 10:00 CET is 23 on the wall but 24 real.
    ("2026-10-24T11:00", "2026-10-25T10:00", 30, []),
    ("2026-10-24T11:01", "2026-10-25T10:00", 30, ["lead-time-too-short"]),
    ("2026-11-22T12:00", "2026-11-23T15:30", 30, []),  # the last slot of a window
    ("2026-11-22T12:00", "2026-11-23T15:30", 60, ["outside-hours"]),  # would end after the window
    ("2026-11-22T12:00", "2026-11-23T16:00", 30, ["outside-hours"]),  # the window's end
    ("2026-11-22T12:00", "2026-11-23T14:10", 30, ["outside-hours"]),  # off the grid
    ("2026-11-22T12:00", "2026-11-24T10:00", 30, ["outside-hours"]),  # a weekend window on a Tuesday
    ("2026-11-22T12:00", "2026-11-23T14:00", 45, ["length-not-offered"]),
    ("2026-12-20T12:00", "2026-12-25T14:00", 30, ["closed-day"]),  # closed, not also outside the hours
])
def test_lead_time_and_hours(now: str, start: str, minutes: int, expected: list[str]) -> None:
    assert codes(ask(start, minutes), now=now) == expected


@pytest.mark.parametrize(("start", "expected"), [
    (at("2026-10-25T02:30"), ["outside-hours"]),  # the first 02:30 (CEST)
    (at("2026-10-25T02:30").replace(fold=1), ["outside-hours"]),  # the second (CET)
    (at("2026-10-25T03:00"), []),
    (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), []),  # 03:00 CEST, the first hour after the gap
    (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), ["outside-hours"]),  # 01:30 CET: its end, 02:00, does not exist
])
def test_a_booking_on_a_change_night_must_be_a_slot_that_exists_once(start: datetime, expected: list[str]) -> None:
    request = BookingRequest("A1", "b1", start, timedelta(minutes=30), ("v1",))
    now = start - timedelta(days=2)
    assert [p.code for p in check_booking(request, now=now, rules=BookingRules(), hours=NIGHT, booked=(),
                                          approved=APPROVED, no_contact=frozenset())] == expected


# -- limits per inmate ---------------------------------------------------------------------------------------

WEEKLY = BookingRules(per_week=1, per_month=None, minutes_per_month=None)
MONTHLY = BookingRules(per_week=None, per_month=2, minutes_per_month=None)
MINUTES = BookingRules(per_week=None, per_month=None, minutes_per_month=60)
TWO_A_WEEK = BookingRules(per_week=2, per_month=None, minutes_per_month=None)


@pytest.mark.parametrize(("policy", "booked", "start", "minutes", "expected"), [
    (WEEKLY, (), "2026-11-30T14:00", 30, []),
    (WEEKLY, (visit("x", "2026-11-29T10:00"),), "2026-11-30T14:00", 30, []),  # Sunday, then Monday: two weeks
    (WEEKLY, (visit("x", "2026-11-30T14:00"),), "2026-11-29T10:00", 30, []),
    (WEEKLY, (visit("x", "2026-11-30T14:00"),), "2026-12-01T14:00", 30, ["weekly-limit"]),  # a week over months
    (WEEKLY, (visit("x", "2026-11-30T14:00", cancelled=True),), "2026-12-01T14:00", 30, []),
    (WEEKLY, (visit("x", "2026-11-30T14:00", inmate="A2"),), "2026-12-01T14:00", 30, []),  # another inmate's
    (TWO_A_WEEK, (visit("x", "2026-11-23T14:00"), visit("y", "2026-11-29T10:00")), "2026-11-28T10:00", 30,
     ["weekly-limit"]),
    (TWO_A_WEEK, (visit("x", "2026-11-23T14:00"), visit("y", "2026-11-29T10:00")), "2026-11-30T14:00", 30, []),
    (MONTHLY, (visit("x", "2026-11-02T14:00"), visit("y", "2026-11-03T14:00")), "2026-11-30T14:00", 30,
     ["monthly-limit"]),
    (MONTHLY, (visit("x", "2026-11-02T14:00"), visit("y", "2026-11-03T14:00")), "2026-12-01T14:00", 30, []),
    # A visit at 00:30 on 1 December in Brussels is 23:30 on 30 November in UTC: it counts for December.
    (MONTHLY, (visit("x", "2026-11-02T14:00"), visit("y", "2026-12-01T00:30")), "2026-11-30T14:00", 30, []),
    (MONTHLY, (visit("x", "2026-12-02T14:00"), visit("y", "2026-12-01T00:30")), "2026-12-01T14:00", 30,
     ["monthly-limit"]),
    (MONTHLY, (visit("x", "2026-11-02T14:00", cancelled=True), visit("y", "2026-11-03T14:00")),
     "2026-11-30T14:00", 30, []),
    (MONTHLY, (visit("x", "2026-11-02T14:00", visit_class=VisitClass.LEGAL), visit("y", "2026-11-03T14:00")),
     "2026-11-30T14:00", 30, []),  # a lawyer's visit is not the family's allowance
    (MINUTES, (visit("x", "2026-11-02T14:00", 30),), "2026-11-30T14:00", 30, []),  # two of 30 minutes
    (MINUTES, (visit("x", "2026-11-02T14:00", 30),), "2026-11-30T14:00", 60, ["monthly-minutes"]),
    (MINUTES, (visit("x", "2026-11-02T14:00", 60),), "2026-11-30T14:00", 30, ["monthly-minutes"]),
    (MINUTES, (), "2026-11-30T14:00", 60, []),  # one of 60
    (MINUTES, (visit("x", "2026-11-02T14:00", 60, cancelled=True),), "2026-11-30T14:00", 60, []),
    (BookingRules(), (visit("x", "2026-11-02T14:00", 60),), "2026-11-30T14:00", 30,
     ["monthly-minutes"]),  # the default: England and Wales
    (BookingRules(), (visit("x", "2026-11-02T14:00"), visit("y", "2026-11-03T14:00")), "2026-11-30T14:00", 30,
     ["monthly-limit", "monthly-minutes"]),
])
def test_limits_per_inmate(policy: BookingRules, booked: tuple[Visit, ...], start: str, minutes: int,
                           expected: list[str]) -> None:
    assert codes(ask(start, minutes), policy=policy, booked=booked) == expected


def test_a_legal_visit_is_not_limited() -> None:
    booked = (visit("x", "2026-11-02T14:00", 60), visit("y", "2026-11-30T15:00", 60))
    assert codes(ask("2026-11-30T14:00", 60, visitors=("lawyer",)), policy=BookingRules(per_week=1),
                 booked=booked) == ["weekly-limit", "monthly-limit", "monthly-minutes"]
    assert codes(ask("2026-11-30T14:00", 60, visitors=("lawyer",), visit_class=VisitClass.LEGAL),
                 policy=BookingRules(per_week=1), booked=booked) == []


def test_the_limit_facts_name_the_period_and_the_count() -> None:
    request = ask("2026-12-01T14:00")
    problems = check_booking(request, now=at(NOW), rules=BookingRules(per_week=1), hours=HOURS,
                             booked=(visit("x", "2026-11-30T14:00", 60), visit("y", "2026-12-02T14:00", 60)),
                             approved=APPROVED, no_contact=())
    assert problems == [rules.WeeklyLimit("2026-W49", 1, 2), rules.MonthlyMinutes("2026-12", 60, 60)]
    assert str(problems[0]) == "weekly-limit: 2 of 1 visits already booked in 2026-W49"


@pytest.mark.parametrize(("start", "span"), [
    ("2026-12-01T14:00", ("2026-11-30T00:00", "2027-01-01T00:00")),  # the week begins in November
    ("2026-11-15T10:00", ("2026-11-01T00:00", "2026-12-01T00:00")),  # the week lies inside the month
    ("2026-03-31T14:00", ("2026-03-01T00:00", "2026-04-06T00:00")),  # the week ends in April; DST inside
])
def test_the_counting_span_covers_the_week_and_the_month(start: str, span: tuple[str, str]) -> None:
    assert counting_span(at(start), BRUSSELS) == (at(span[0]).astimezone(UTC), at(span[1]).astimezone(UTC))


# -- visitors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("visitors", "no_contact", "expected"), [
    (("v1",), frozenset(), []),
    (("v1", "v2", "v3"), frozenset(), []),
    ((), frozenset(), ["no-visitors"]),
    (("v1", "v2", "v3", "v4"), frozenset(), ["too-many-visitors"]),
    (("v1", "v1", "v2", "v2"), frozenset(), []),  # a visitor named twice is one visitor
    (("stranger",), frozenset(), ["not-approved"]),
    (("v2",), frozenset({"v2"}), ["no-contact"]),  # the order wins over the approval
    (("stranger",), frozenset({"stranger"}), ["no-contact"]),  # one problem per visitor: the one that wins
    (("v1", "stranger", "v2"), frozenset({"v2"}), ["not-approved", "no-contact"]),
])
def test_visitors(visitors: tuple[str, ...], no_contact: frozenset[str], expected: list[str]) -> None:
    assert codes(ask("2026-11-30T14:00", visitors=visitors), no_contact=no_contact) == expected


def test_the_visitor_problems_name_the_visitor() -> None:
    problems = check_booking(ask("2026-11-30T14:00", visitors=("v1", "x", "v2")), now=at(NOW), rules=BookingRules(),
                             hours=HOURS, booked=(), approved=APPROVED, no_contact={"v2"})
    assert problems == [rules.NotApproved("x"), rules.NoContact("v2")]


@pytest.mark.parametrize(("on_lists_of", "no_contact", "expected"), [
    ((), False, []),
    (("A2", "A3"), False, []),
    (("A2", "A3", "A4"), False, ["approved-lists-full"]),
    (("A1", "A2", "A3"), False, []),  # approving again for one already on the list adds no list
    ((), True, ["no-contact"]),
    (("A2", "A3", "A4"), True, ["no-contact", "approved-lists-full"]),
])
def test_approving_a_visitor(on_lists_of: tuple[str, ...], no_contact: bool, expected: list[str]) -> None:
    found = check_approval("v1", "A1", on_lists_of=on_lists_of, no_contact=no_contact, max_inmates_per_visitor=3)
    assert [p.code for p in found] == expected


# -- capacity ------------------------------------------------------------------------------------------------

SUPERVISED = BookingRules(supervisor_watches=2, per_month=None, minutes_per_month=None)


@pytest.mark.parametrize(("request_", "booked", "expected"), [
    (ask("2026-11-30T14:00"), (visit("x", "2026-11-30T14:00", inmate="A2", booth="b1"),), ["booth-taken"]),
    (ask("2026-11-30T14:00", 60), (visit("x", "2026-11-30T14:30", inmate="A2", booth="b1"),), ["booth-taken"]),
    (ask("2026-11-30T14:30"), (visit("x", "2026-11-30T14:00", inmate="A2", booth="b1"),), []),  # back to back
    (ask("2026-11-30T14:00"), (visit("x", "2026-11-30T14:30", inmate="A2", booth="b1"),), []),
    (ask("2026-11-30T14:00"), (visit("x", "2026-11-30T14:00", inmate="A2", booth="b1", cancelled=True),), []),
    (ask("2026-11-30T14:00"), (visit("x", "2026-11-30T14:00", inmate="A2", booth="b2"),), []),
    (ask("2026-11-30T14:00"), (visit("x", "2026-11-30T14:00", booth="b2"),), ["inmate-busy"]),
    (ask("2026-11-30T14:00", supervisor="s1"),
     (visit("x", "2026-11-30T14:00", inmate="A2", supervisor="s1"),
      visit("y", "2026-11-30T14:00", inmate="A3", supervisor="s1")), ["supervisor-full"]),
    (ask("2026-11-30T14:00", 60, supervisor="s1"),  # two visits, one after the other: one at a time
     (visit("x", "2026-11-30T14:00", inmate="A2", supervisor="s1"),
      visit("y", "2026-11-30T14:30", inmate="A3", supervisor="s1")), []),
    (ask("2026-11-30T14:00", supervisor="s1"),
     (visit("x", "2026-11-30T14:00", inmate="A2", supervisor="s1"),
      visit("y", "2026-11-30T14:00", inmate="A3", supervisor="s1", cancelled=True)), []),
    (ask("2026-11-30T14:00", supervisor="s1"),
     (visit("x", "2026-11-30T14:00", inmate="A2", supervisor="s1"),
      visit("y", "2026-11-30T14:00", inmate="A3", supervisor="s2")), []),
    (ask("2026-11-30T14:00", visitors=("lawyer",), visit_class=VisitClass.LEGAL, supervisor="s1"), (),
     ["legal-supervised"]),
    (ask("2026-11-30T14:00", visitors=("lawyer",), visit_class=VisitClass.LEGAL), (), []),
    # a visitor cannot be in two visits at once (a mother visiting two sons), but may be in one after the other
    (ask("2026-11-30T14:00", visitors=("v1", "v2")), (visit("x", "2026-11-30T14:00", inmate="A2", visitors=("v2",)),),
     ["visitor-busy"]),
    (ask("2026-11-30T14:00", visitors=("v1",)), (visit("x", "2026-11-30T14:30", inmate="A2", visitors=("v1",)),), []),
    (ask("2026-11-30T14:00", visitors=("v1",)),
     (visit("x", "2026-11-30T14:00", inmate="A2", visitors=("v1",), cancelled=True),), []),
])
def test_booth_inmate_and_supervisor_capacity(request_: BookingRequest, booked: tuple[Visit, ...],
                                              expected: list[str]) -> None:
    assert codes(request_, policy=SUPERVISED, booked=booked) == expected


WATCHED = BookingRules(supervised_at_once=2, per_month=None, minutes_per_month=None)


@pytest.mark.parametrize(("request_", "booked", "expected"), [
    (ask("2026-11-30T14:00"),
     (visit("x", "2026-11-30T14:00", inmate="A2"), visit("y", "2026-11-30T14:00", inmate="A3")), ["supervision-full"]),
    # one of the two is legal, so only one is watched
    (ask("2026-11-30T14:00"), (visit("x", "2026-11-30T14:00", inmate="A2"),
                               visit("y", "2026-11-30T14:00", inmate="A3", visit_class=VisitClass.LEGAL)), []),
    # a legal visit needs no watch, whatever runs
    (ask("2026-11-30T14:00", visitors=("lawyer",), visit_class=VisitClass.LEGAL),
     (visit("x", "2026-11-30T14:00", inmate="A2"), visit("y", "2026-11-30T14:00", inmate="A3")), []),
    # one after the other, never two at once
    (ask("2026-11-30T14:00", 60), (visit("x", "2026-11-30T14:00", inmate="A2"),
                                   visit("y", "2026-11-30T14:30", inmate="A3")), []),
])
def test_supervision_seats(request_: BookingRequest, booked: tuple[Visit, ...], expected: list[str]) -> None:
    assert codes(request_, policy=WATCHED, booked=booked) == expected


def test_every_problem_is_returned_at_once_and_each_says_itself() -> None:
    problems = check_booking(
        ask("2026-11-23T14:10", visitors=("v1", "v2", "v3", "x"), supervisor="s1"), now=at("2026-11-23T12:00"),
        rules=BookingRules(per_week=0, supervisor_watches=1), hours=HOURS,
        booked=(visit("y", "2026-11-23T14:00", inmate="A2", booth="b1", supervisor="s1"),),
        approved=APPROVED, no_contact={"v3"})
    assert [p.code for p in problems] == ["lead-time-too-short", "outside-hours", "weekly-limit", "too-many-visitors",
                                          "no-contact", "not-approved", "booth-taken", "supervisor-full"]
    assert problems[0] == rules.LeadTimeTooShort(datetime(2026, 11, 24, 11, 0, tzinfo=UTC))
    assert [str(p).split(":")[0] for p in problems] == [p.code for p in problems]
    assert str(problems[1]) == "outside-hours: no 30-minute slot starts at 2026-11-23T13:10:00+00:00"


def test_every_code_has_one_problem_and_they_are_frozen() -> None:
    kinds = get_args(Problem)
    assert sorted(k.code for k in kinds) == sorted(ProblemCode)
    with pytest.raises(AttributeError):
        rules.NoContact("v1").visitor = "v2"  # type: ignore[misc]


# -- visit classes and the call ------------------------------------------------------------------------------

@pytest.mark.parametrize(("visit_class", "record", "expected"), [
    (VisitClass.ORDINARY, True, Oversight(supervisor_may_join=True, recording=True)),
    (VisitClass.ORDINARY, False, Oversight(supervisor_may_join=True, recording=False)),
    (VisitClass.LEGAL, True, Oversight(supervisor_may_join=False, recording=False)),
    (VisitClass.LEGAL, False, Oversight(supervisor_may_join=False, recording=False)),
])
def test_a_legal_visit_admits_no_supervisor_and_no_recorder(visit_class: VisitClass, record: bool,
                                                            expected: Oversight) -> None:
    assert oversight(visit_class, record=record) == expected


START = at("2026-11-30T14:00")


@pytest.mark.parametrize(("now", "phase", "left", "warning"), [
    (START - 11 * MIN, CallPhase.NOT_OPEN, 41 * MIN, None),
    (START - 10 * MIN, CallPhase.WAITING_ROOM, 40 * MIN, None),  # the waiting room opens 10 minutes before
    (START - SECOND, CallPhase.WAITING_ROOM, 30 * MIN + SECOND, None),
    (START, CallPhase.OPEN, 30 * MIN, None),
    (START + 25 * MIN - SECOND, CallPhase.OPEN, 5 * MIN + SECOND, None),
    (START + 25 * MIN, CallPhase.OPEN, 5 * MIN, 5),
    (START + 29 * MIN - SECOND, CallPhase.OPEN, MIN + SECOND, 5),
    (START + 29 * MIN, CallPhase.OPEN, MIN, 1),  # joined a minute before the end: it still ends at 14:30
    (START + 30 * MIN, CallPhase.ENDED, timedelta(0), None),
    (START + 90 * MIN, CallPhase.ENDED, timedelta(0), None),
])
def test_the_calls_clock(now: datetime, phase: CallPhase, left: timedelta, warning: int | None) -> None:
    clock = call_clock(START, 30 * MIN, now)
    assert (clock.phase, clock.ends) == (phase, at("2026-11-30T14:30"))
    assert clock.left == left
    assert clock.warning == (None if warning is None else warning * MIN)


def test_a_call_on_the_autumn_change_lasts_its_real_minutes() -> None:
    clock = call_clock(at("2026-10-25T01:30"), 60 * MIN, at("2026-10-25T01:30"))
    assert clock.ends == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, not 02:30 CET
    assert clock.left == 60 * MIN


# -- what the rules refuse to work with ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: check_booking(ask("2026-11-30T14:00"), now=datetime(2026, 11, 22, 12), rules=BookingRules(),
                          hours=HOURS, booked=(), approved=APPROVED, no_contact=()),
    lambda: check_booking(ask("2026-11-30T14:00", 0), now=at(NOW), rules=BookingRules(), hours=HOURS, booked=(),
                          approved=APPROVED, no_contact=()),
    lambda: slots(HOURS, date(2026, 11, 30), timedelta(seconds=90)),
    lambda: BookingRules(per_month=-1),
    lambda: BookingRules(max_ahead=timedelta(hours=1)),
    lambda: BookingRules(max_visitors=0),
    lambda: call_clock(START, 30 * MIN, START, waiting_room=-MIN),
    lambda: check_approval("v1", "A1", on_lists_of=(), no_contact=False, max_inmates_per_visitor=0),
])
def test_arguments_the_rules_cannot_work_with_raise(make: Any) -> None:
    with pytest.raises(VisitRuleError):
        make()


def test_the_rules_are_pure() -> None:
    source = Path(rules.__file__)
    assert imported_roots(source) <= {"__future__", "enum", "collections", "dataclasses", "datetime", "typing",
                                      "policies"}
    text = source.read_text(encoding="utf-8")
    assert "now()" not in text and "today()" not in text
