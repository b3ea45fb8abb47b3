"""Policy sources (YAML files in `<data-dir>/policies/`, rules in the database) compiled into one snapshot.

A reload that finds any error keeps the snapshot in force and reports every error; the swap is one
assignment, so a reader sees the old snapshot or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.db.models import PolicyRule
from policies import budgets as budget_profiles
from policies.budgets import Budgets
from policies.hours import OpeningHours, merge
from policies.rules import ParseResult, PolicyError, Rule, parse_policy
from policies.snapshot import Snapshot

log = logging.getLogger(__name__)


DORMANT_KEYS = {
    "visit": "video visits do not exist yet, so no inmate is ever in one and this rule never applies",
}
"""Rule keys that parse but that nothing fills today; `policy check` warns about each until its domain exists
(then its entry goes). A rule scoped only to courses is otherwise accepted in silence and quietly never matches."""


def dormant(result: ParseResult) -> list[PolicyError]:
    """A warning for each use of a key in DORMANT_KEYS, at the key's own line (`visit: false` is no use)."""
    warnings = []
    for rule in result.rules:
        used = {"visit": rule.visit}
        lines = result.key_lines.get(rule.id, {})
        for key, why in DORMANT_KEYS.items():
            if used.get(key):
                warnings.append(PolicyError(rule.source, lines.get(key, rule.line),
                                            f"warning: rule {rule.id!r}: {key}: {why}"))
    return warnings


def policy_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def files_stamp(folder: Path) -> tuple[tuple[str, float], ...]:
    """What a reload would read, by name and modification time: a different stamp means a file changed."""
    stamp = []
    for path in policy_files(folder):
        try:
            stamp.append((str(path), path.stat().st_mtime))
        except OSError:
            continue
    return tuple(stamp)


async def follow_files(folder: Path, changed: Callable[[], Awaitable[None]], every: float) -> None:
    """Call `changed` each time a policy file is added, removed or modified (looked at every `every` seconds)."""
    stamp = files_stamp(folder)
    while True:
        await asyncio.sleep(every)
        if (now := files_stamp(folder)) != stamp:
            stamp = now
            await changed()


def check_files(paths: Iterable[Path]) -> ParseResult:
    """Parse every file; rule ids must be unique across all of them."""
    result = ParseResult()
    owner: dict[str, str] = {}
    hours: list[OpeningHours] = []
    budgets: list[Budgets] = []
    given: dict[str, str] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(PolicyError(str(path), 1, f"cannot read: {exc}"))
            continue
        parsed = parse_policy(text, str(path))
        result.errors += parsed.errors
        for kind, line in parsed.hours_lines.items():
            if kind in given:
                result.errors.append(PolicyError(str(path), line, f"hours for {kind} are given already in "
                                                                  f"{given[kind]}"))
            given[kind] = f"{path}:{line}"
        hours.append(parsed.hours)
        for profile, line in parsed.budgets_lines.items():
            if f"quotas {profile}" in given:
                result.errors.append(PolicyError(str(path), line, f"quotas for {profile} are given already in "
                                                                  f"{given[f'quotas {profile}']}"))
            given[f"quotas {profile}"] = f"{path}:{line}"
        budgets.append(parsed.budgets)
        for rule in parsed.rules:
            if rule.id in owner:
                result.errors.append(PolicyError(str(path), 1, f"rule id {rule.id!r} is used in {owner[rule.id]}"))
                continue
            owner[rule.id] = str(path)
            result.rules.append(rule)
            result.key_lines[rule.id] = parsed.key_lines.get(rule.id, {})
    result.hours = merge(hours)
    result.budgets = budget_profiles.merge(budgets)
    return result


def database_rules(factory: sessionmaker[Session]) -> ParseResult:
    """Rules curated in the portal, stored in the same YAML-shaped form as the files."""
    with factory() as session:
        rows = list(session.scalars(select(PolicyRule).where(PolicyRule.enabled).order_by(PolicyRule.rule_id)))
    text = yaml.safe_dump({"rules": [dict(row.spec, id=row.rule_id) for row in rows]}) if rows else "rules: []\n"
    return parse_policy(text, "database")


class PolicyHolder:
    def __init__(self, folder: Path, factory: sessionmaker[Session] | None = None,
                 timezone: ZoneInfo | None = None) -> None:
        self.folder = folder
        self.factory = factory
        self.timezone = timezone or ZoneInfo("UTC")
        self.snapshot = Snapshot.build((), version="empty")
        self.errors: list[PolicyError] = []

    def load(self) -> bool:
        """Build a new snapshot from all sources; keep the old one if any source has an error."""
        result = check_files(policy_files(self.folder))
        if self.factory is not None:
            from_db = database_rules(self.factory)
            taken = {r.id for r in result.rules}
            result.errors += from_db.errors
            result.errors += [PolicyError("database", 1, f"rule id {r.id!r} is also in a policy file")
                              for r in from_db.rules if r.id in taken]
            result.rules += [r for r in from_db.rules if r.id not in taken]
        self.errors = result.errors
        for warning in dormant(result):
            log.warning("policy: %s", warning)
        if result.errors:
            for error in result.errors:
                log.error("policy not loaded: %s", error)
            return False
        self.snapshot = Snapshot.build(result.rules, version=_version(result.rules, result.hours, result.budgets),
                                       timezone=self.timezone, hours=result.hours, budgets=result.budgets)
        log.info("policy loaded: %d rules, version %s", len(result.rules), self.snapshot.version)
        return True


_WHERE = frozenset({"source", "line"})
"""Where a rule is written, not what it says: moving a rule is not changing it."""


def _shown(value: object) -> str:
    if isinstance(value, frozenset | set):
        return ",".join(sorted(str(v) for v in value)) or "-"
    if isinstance(value, tuple):
        return ",".join(getattr(v, "text", None) or str(v) for v in value) or "-"
    return "-" if value is None or value == "" else str(value)


def _differences(old: Rule, new: Rule) -> list[str]:
    return [f"{f.name} {_shown(getattr(old, f.name))} -> {_shown(getattr(new, f.name))}"
            for f in dataclasses.fields(Rule)
            if f.name not in _WHERE and getattr(old, f.name) != getattr(new, f.name)]


def describe_change(before: Snapshot, after: Snapshot) -> str:
    """What a reload changed, for the audit log: `v1 -> v2; added a; removed b; changed c (methods GET -> POST)`,
    the before and after of every field that changed."""
    old = {r.id: r for r in before.rules}
    new = {r.id: r for r in after.rules}
    parts = [f"{before.version} -> {after.version}"]
    for word, ids in (("added", sorted(new.keys() - old.keys())), ("removed", sorted(old.keys() - new.keys()))):
        if ids:
            parts.append(f"{word} {','.join(ids)}")
    for rule_id in sorted(old.keys() & new.keys()):
        if changes := _differences(old[rule_id], new[rule_id]):
            parts.append(f"changed {rule_id} ({'; '.join(changes)})")
    if before.hours != after.hours:
        parts.append(f"hours {before.hours.describe()} -> {after.hours.describe()}")
    if before.budgets != after.budgets:
        parts.append(f"quotas {before.budgets.describe()} -> {after.budgets.describe()}")
    return "; ".join(parts)


def _version(rules: list[Rule], hours: OpeningHours | None = None, budgets: Budgets | None = None) -> str:
    """The same rules give the same version in every process (sets are sorted, not hash-ordered)."""
    def plain(value: object) -> object:
        if isinstance(value, frozenset | set):
            return sorted(str(v) for v in value)
        return str(value)

    text = json.dumps([dataclasses.asdict(r) for r in rules], default=plain, sort_keys=True)
    if hours is not None and hours.restricts:
        text += hours.describe()
    if budgets is not None and budgets != Budgets():
        text += budgets.describe()
    return hashlib.sha256(text.encode()).hexdigest()[:12]
