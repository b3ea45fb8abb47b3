"""An immutable, indexed set of rules: lookup walks the host's labels, never the list of rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

from policies.rules import Rule


@dataclass(frozen=True, slots=True)
class Snapshot:
    rules: tuple[Rule, ...] = ()
    exact: Mapping[str, tuple[Rule, ...]] = field(default_factory=lambda: MappingProxyType({}))
    below: Mapping[str, tuple[Rule, ...]] = field(default_factory=lambda: MappingProxyType({}))
    version: str = ""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    def local(self, now: datetime) -> datetime:
        """Wall-clock time in the facility for an aware (or naive UTC) instant."""
        aware = now if now.tzinfo else now.replace(tzinfo=UTC)
        return aware.astimezone(self.timezone).replace(tzinfo=None)

    @classmethod
    def build(cls, rules: Iterable[Rule], version: str = "", timezone: ZoneInfo | None = None) -> Snapshot:
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
        )

    def matching(self, host: str) -> tuple[Rule, ...]:
        """Rules whose host patterns cover `host` (already canonical): exact first, then each parent domain."""
        found = list(self.exact.get(host, ()))
        labels = host.split(".")
        for i in range(1, len(labels)):
            found.extend(self.below.get(".".join(labels[i:]), ()))
        return tuple(found)
