"""The pure rules of a release plan: the checklist's steps, when each is due, and what state it is in.

No I/O and no clock: the services pass today's facility day, the release date and the steps already done, and
show what comes out. A step is due a fixed number of days before release, because each takes about that long to
arrange from inside (an identity card must be ordered before a bank will open an account, a landlord or a shelter
answers in weeks); `DUE_SOON_DAYS` before that day it is flagged, after it it is overdue.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["DUE_SOON_DAYS", "STEPS", "STEPS_BY_KEY", "Checked", "PlanRuleError", "Step", "StepState",
           "check_release", "checklist", "days_left", "due_on", "state_of", "step"]

DUE_SOON_DAYS = 14
"""A step due within this many days (its day included) is flagged as due soon."""
FURTHEST_RELEASE_YEARS = 60
"""A release date further away than this is a typing mistake, not a sentence."""


class PlanRuleError(ValueError):
    """An argument the rules cannot work with: a step that does not exist, a release date out of range."""


class StepState(enum.StrEnum):
    DONE = "done"
    OVERDUE = "overdue"
    """Its day has passed (the release day itself may have passed too) and it is not done."""
    DUE_SOON = "due-soon"
    LATER = "later"
    NO_DATE = "no-date"
    """No release date is known yet, so the step has no day."""


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    """Stored as the plan item's `ref`; never changes once inmates have ticked it."""
    days_before: int
    """Due this many days before the release day."""
    category: str
    """The directory category whose services help with it."""
    uses_record: bool = False
    """The learning record (certificates) is what this step gathers."""


STEPS: tuple[Step, ...] = (
    Step("housing", 90, "housing"),
    Step("id-card", 60, "id-documents"),
    Step("bank-account", 45, "debt"),
    Step("benefits", 30, "benefits"),
    Step("health-insurance", 30, "health"),
    Step("transcripts", 14, "education", uses_record=True),
)
"""In the order they fall due (the longest to arrange first)."""
STEPS_BY_KEY = {s.key: s for s in STEPS}


@dataclass(frozen=True, slots=True)
class Checked:
    """One step of one inmate's checklist on one day."""

    step: Step
    due: date | None
    state: StepState
    days_left: int | None
    """Days from today to the due day (negative when overdue); None without a release date."""


def step(key: str) -> Step:
    found = STEPS_BY_KEY.get(key)
    if found is None:
        raise PlanRuleError(f"no step {key!r} in the checklist ({', '.join(STEPS_BY_KEY)})")
    return found


def due_on(one: Step, release: date | None) -> date | None:
    return None if release is None else release - timedelta(days=one.days_before)


def days_left(due: date | None, today: date) -> int | None:
    return None if due is None else (due - today).days


def state_of(one: Step, *, done: bool, today: date, release: date | None) -> StepState:
    """Done wins over any date; without a release date a step has no day; a step due today is due soon."""
    if done:
        return StepState.DONE
    left = days_left(due_on(one, release), today)
    if left is None:
        return StepState.NO_DATE
    if left < 0:
        return StepState.OVERDUE
    return StepState.DUE_SOON if left <= DUE_SOON_DAYS else StepState.LATER


def checklist(done: Collection[str], *, today: date, release: date | None) -> tuple[Checked, ...]:
    """Every step with its day and state; keys in `done` that are no step (any more) are ignored."""
    return tuple(Checked(s, due_on(s, release), state_of(s, done=s.key in done, today=today, release=release),
                         days_left(due_on(s, release), today)) for s in STEPS)


def check_release(day: date | None, today: date) -> date | None:
    """A release date the plan can be anchored to: today or later, and not absurdly far (None clears it)."""
    if day is None:
        return None
    if day < today:
        raise PlanRuleError(f"the release date {day.isoformat()} is in the past")
    if day.year > today.year + FURTHEST_RELEASE_YEARS:
        raise PlanRuleError(f"the release date {day.isoformat()} is more than {FURTHEST_RELEASE_YEARS} years away")
    return day
