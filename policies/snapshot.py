"""An immutable, indexed set of rules: lookup walks the host's labels, never the list of rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

from policies.budgets import Budgets
from policies.hours import OpeningHours
from policies.rules import Rule

MEMO_MAX = 65_536


@dataclass(frozen=True, slots=True)
class Snapshot:
    rules: tuple[Rule, ...] = ()
    exact: Mapping[str, tuple[Rule, ...]] = field(default_factory=lambda: MappingProxyType({}))
    below: Mapping[str, tuple[Rule, ...]] = field(default_factory=lambda: MappingProxyType({}))
    version: str = ""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    hours: OpeningHours = field(default_factory=OpeningHours)
    budgets: Budgets = field(default_factory=Budgets)
    _memo: dict[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False, repr=False)

    def local(self, now: datetime) -> datetime:
        """Wall-clock time in the facility for an aware (or naive UTC) instant."""
        aware = now if now.tzinfo else now.replace(tzinfo=UTC)
        return aware.astimezone(self.timezone).replace(tzinfo=None)

    @classmethod
    def build(cls, rules: Iterable[Rule], version: str = "", timezone: ZoneInfo | None = None,
              hours: OpeningHours | None = None, budgets: Budgets | None = None) -> Snapshot:
        exact: dict[str, list[Rule]] = {}
        below: dict[str, list[Rule]] = {}
        ordered = tuple(rules)
        for rule in ordered:
            for pattern in rule.hosts:
                index = below if pattern.wildcard else exact
                bucket = index.setdefault(pattern.host, [])
                if rule not in bucket:
                    bucket.append(rule)
        return cls(
            ordered,
            MappingProxyType({k: tuple(v) for k, v in exact.items()}),
            MappingProxyType({k: tuple(v) for k, v in below.items()}),
            version,
            timezone or ZoneInfo("UTC"),
            hours=hours or OpeningHours(),
            budgets=budgets or Budgets(),
        )

    def matching(self, host: str) -> tuple[Rule, ...]:
        """Rules whose host patterns cover `host` (already canonical): exact first, then each parent domain.

        Answers are remembered per snapshot (a new policy is a new snapshot, so they never go stale)."""
        if (known := self._memo.get(host)) is not None:
            return known
        found = list(self.exact.get(host, ()))
        dot = host.find(".")
        while dot >= 0:
            parent = host[dot + 1:]
            if parent in self.below:
                found.extend(self.below[parent])
            dot = host.find(".", dot + 1)
        if len(self._memo) >= MEMO_MAX:
            self._memo.clear()
        self._memo[host] = result = tuple(found)
        return result
