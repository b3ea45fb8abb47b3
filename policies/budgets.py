"""Daily budgets of active minutes per quota category: a default profile, group profiles, per-inmate overrides.

A policy file may say, beside its rules:

    quotas:
      default: {general: 60, jobs: 120, learning: unlimited}
      groups:
        school: {general: 90}
      inmates:
        A1234: {general: 30}

Which budget holds for an inmate and a category: the inmate's own override if there is one; otherwise the most
generous of the groups the inmate is in that name the category; otherwise the default profile; otherwise the
category is unlimited (still metered, so the minutes used can be shown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MINUTES_IN_DAY = 24 * 60
UNLIMITED = "unlimited"

Profile = Mapping[str, int | None]
"""Category -> minutes a day; None is unlimited."""


def _empty() -> Mapping[str, Profile]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Budgets:
    default: Profile = field(default_factory=lambda: MappingProxyType({}))
    groups: Mapping[str, Profile] = field(default_factory=_empty)
    inmates: Mapping[str, Profile] = field(default_factory=_empty)

    def budget(self, inmate: str, groups: Iterable[str], category: str) -> int | None:
        """Minutes a day for this inmate in this category; None is unlimited."""
        own = self.inmates.get(inmate)
        if own is not None and category in own:
            return own[category]
        found: list[int | None] = [p[category] for g in groups if (p := self.groups.get(g)) and category in p]
        if found:
            return None if None in found else max(m for m in found if m is not None)
        return self.default.get(category)

    def categories(self, inmate: str, groups: Iterable[str]) -> set[str]:
        """Every category a budget is given for that can apply to this inmate."""
        names = set(self.default) | set(self.inmates.get(inmate, {}))
        for group in groups:
            names |= set(self.groups.get(group, {}))
        return names

    def describe(self) -> str:
        """A stable text form (for the policy's version and the record of a change)."""
        def profile(p: Profile) -> str:
            return ",".join(f"{c}={UNLIMITED if m is None else m}" for c, m in sorted(p.items()))

        parts = [f"default {profile(self.default)}"] if self.default else []
        parts += [f"group {g} {profile(p)}" for g, p in sorted(self.groups.items())]
        parts += [f"inmate {n} {profile(p)}" for n, p in sorted(self.inmates.items())]
        return "; ".join(parts) or "no budgets"


def minutes(text: str) -> int | None:
    """`unlimited` or a whole number of minutes in a day; ValueError says what is wrong."""
    if text.strip().lower() == UNLIMITED:
        return None
    if not text.strip().isdigit() or not 0 <= int(text) <= MINUTES_IN_DAY:
        raise ValueError(f"{text!r} must be a number of minutes from 0 to {MINUTES_IN_DAY}, or {UNLIMITED}")
    return int(text)


def merge(parts: Iterable[Budgets]) -> Budgets:
    """Budgets from several files: each profile may be given in one file only (checked by the caller)."""
    default: dict[str, int | None] = {}
    groups: dict[str, Profile] = {}
    inmates: dict[str, Profile] = {}
    for part in parts:
        default.update(part.default)
        groups.update(part.groups)
        inmates.update(part.inmates)
    return Budgets(MappingProxyType(default), MappingProxyType(groups), MappingProxyType(inmates))
