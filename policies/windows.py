"""Weekly windows such as `mon-fri 08:00-17:00`, evaluated in the facility's local time."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"^\s*(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
                   r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[int]
    start: time
    end: time
    text: str

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _SPEC.match(text.lower())
        if not match:
            raise ValueError(f"window {text!r} must look like 'mon-fri 08:00-17:00'")
        days: set[int] = set()
        for part in match.group("days").split(","):
            first, _, last = part.partition("-")
            if first not in DAYS or (last and last not in DAYS):
                raise ValueError(f"window {text!r}: days are {', '.join(DAYS)}")
            a, b = DAYS.index(first), DAYS.index(last or first)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        try:
            start, end = time.fromisoformat(match.group("start")), time.fromisoformat(match.group("end"))
        except ValueError:
            raise ValueError(f"window {text!r}: times are HH:MM from 00:00 to 23:59") from None
        if end <= start:
            raise ValueError(f"window {text!r}: the end must be after the start (split windows across midnight)")
        return cls(frozenset(days), start, end, text.strip())

    def starts_on(self, day: date) -> datetime | None:
        return datetime.combine(day, self.start) if day.weekday() in self.days else None

    def contains(self, local: datetime) -> bool:
        """`local` is a wall-clock time in the facility's zone; the end minute is outside."""
        return local.weekday() in self.days and self.start <= local.time().replace(tzinfo=None) < self.end


def next_start(windows: Iterable[Window], local: datetime, days: int = 8, skip: frozenset[date] = frozenset()
               ) -> datetime | None:
    """The first start of any of the windows after the wall-clock time `local`, within `days` days; days in
    `skip` (closed days) are passed over."""
    windows = tuple(windows)
    for offset in range(days):
        day = local.date() + timedelta(days=offset)
        if day in skip:
            continue
        starts = sorted(s for w in windows if (s := w.starts_on(day)) is not None and s > local)
        if starts:
            return starts[0]
    return None
