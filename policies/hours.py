"""Opening hours of terminals by kind, and closed days, in the facility's wall-clock time.

A policy file may say, beside its rules:

    hours:
      cell: [mon-sun 07:00-22:00]
      classroom: [mon-fri 08:30-12:00, mon-fri 13:00-16:00]
    closed: [2026-12-25, 2027-01-01]

A kind not named in `hours` is open at all times (except on closed days); a closed day closes every kind.
Times are local, so a window holds its wall-clock hours across a daylight-saving change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType

from policies.windows import Window, next_start

LOOKAHEAD_DAYS = 15
"""How far ahead the next opening is looked for; beyond that a block page says only that it is closed."""


@dataclass(frozen=True, slots=True)
class OpeningHours:
    kinds: Mapping[str, tuple[Window, ...]] = field(default_factory=lambda: MappingProxyType({}))
    closed: frozenset[date] = frozenset()

    @property
    def restricts(self) -> bool:
        return bool(self.kinds or self.closed)

    def is_open(self, kind: str, local: datetime) -> bool:
        """`local` is the facility's wall-clock time."""
        if local.date() in self.closed:
            return False
        windows = self.kinds.get(kind)
        return windows is None or any(w.contains(local) for w in windows)

    def next_opening(self, kind: str, local: datetime) -> datetime | None:
        """The first wall-clock moment after `local` at which a terminal of this kind opens, if within reach."""
        windows = self.kinds.get(kind)
        if windows is not None:
            return next_start(windows, local, LOOKAHEAD_DAYS, self.closed)
        for offset in range(1, LOOKAHEAD_DAYS):  # open all day, except on closed days
            day = local.date() + timedelta(days=offset)
            if day not in self.closed:
                return datetime.combine(day, datetime.min.time())
        return None

    def describe(self) -> str:
        """A stable text form (for the policy's version)."""
        kinds = "; ".join(f"{k}: {', '.join(w.text for w in ws)}" for k, ws in sorted(self.kinds.items()))
        closed = ", ".join(sorted(d.isoformat() for d in self.closed))
        return (kinds or "open at any time") + (f"; closed {closed}" if closed else "")


def merge(parts: list[OpeningHours]) -> OpeningHours:
    """Hours from several files: each kind may be given in one file only (checked by the caller); closed days add."""
    kinds: dict[str, tuple[Window, ...]] = {}
    closed: set[date] = set()
    for part in parts:
        kinds.update(part.kinds)
        closed |= part.closed
    return OpeningHours(MappingProxyType(kinds), frozenset(closed))
