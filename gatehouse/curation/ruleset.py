"""Every rule in force, with where it comes from (a file and line, or a proposal and its two people), and what a
proposal would change: which inmates gain or lose a URL, and `policy explain` for it before and after.

The "after" policy is the snapshot in force with the one rule added, replaced or taken out, decided by the same
`decide_url` the gateway runs; nothing is guessed from the rule's text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.curation.models import Proposal, ProposalKind
from gatehouse.curation.proposals import rule_of
from gatehouse.db.models import Inmate, InmateStatus, PolicyRule, TerminalKind
from gatehouse.explain import Explanation, parse_url
from gatehouse.learning.grants import active_courses_of_all
from policies.decision import Subject, decide_url
from policies.rules import Rule
from policies.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Listed:
    rule: Rule
    curated: PolicyRule | None
    """The row of a curated rule (who proposed and approved it); None for a rule from a file."""
    ends: datetime | None
    """Facility time at which it stops applying."""
    ending_soon: bool

    @property
    def where(self) -> str:
        return "curated" if self.curated is not None else f"{self.rule.source}:{self.rule.line}"


def listing(session: Session, policy: Snapshot, now: datetime, ending_days: int = 7) -> list[Listed]:
    """The rules of the snapshot in force, in its order, with the curated rows beside their rules."""
    rows = {r.rule_id: r for r in session.scalars(select(PolicyRule).where(PolicyRule.enabled))}
    local = policy.local(now)
    soon = local + timedelta(days=ending_days)
    out = []
    for rule in policy.rules:
        ends = rule.valid_until
        out.append(Listed(rule, rows.get(rule.id) if rule.source == "database" else None, ends,
                          ends is not None and local < ends <= soon))
    return out


def changed_policy(policy: Snapshot, rule_id: str, spec: dict[str, Any] | None) -> Snapshot:
    """The policy in force with rule `rule_id` set to `spec` (added or replaced), or taken out (None)."""
    rules = [r for r in policy.rules if r.id != rule_id]
    if spec is not None:
        rules.append(rule_of(spec, rule_id))
    return Snapshot.build(rules, version=f"{policy.version}+{rule_id}", timezone=policy.timezone,
                          hours=policy.hours, budgets=policy.budgets)


def after_proposal(policy: Snapshot, proposal: Proposal) -> Snapshot:
    return changed_policy(policy, proposal.rule_id,
                          None if proposal.kind == ProposalKind.REMOVE.value else dict(proposal.spec))


@dataclass(frozen=True, slots=True)
class Impact:
    url: str
    gain: tuple[tuple[str, str], ...]
    """(number, name) of inmates who may open the URL after and not before."""
    lose: tuple[tuple[str, str], ...]
    before: tuple[str, ...]
    """`policy explain` lines for the requester (or the first inmate concerned) before..."""
    after: tuple[str, ...]
    """...and after."""
    inmates: int
    """How many inmates were looked at (every active inmate)."""


def impact(session: Session, before: Snapshot, after: Snapshot, url: str, now: datetime, *,
           requester: str = "") -> Impact:
    """Who gains and who loses `url` (at any kind of terminal, now), and the explanation for one of them."""
    scheme, facts = parse_url(url, "GET")
    kinds = [k.value for k in TerminalKind]
    courses = active_courses_of_all(session, now)
    inmates = list(session.scalars(select(Inmate).where(Inmate.status == InmateStatus.ACTIVE.value)
                                   .order_by(Inmate.number)))
    gain, lose = [], []
    first: Subject | None = None
    for inmate in inmates:
        who = Subject(inmate.number, frozenset(inmate.group_names), "", "", "",
                      courses=courses.get(inmate.id, frozenset()))

        def allowed(policy: Snapshot, who: Subject = who) -> bool:
            return any(decide_url(scheme, facts, replace(who, terminal_kind=k), policy, now=now).final.allowed
                       for k in kinds)
        was, will = allowed(before), allowed(after)
        if will and not was:
            gain.append((inmate.number, inmate.name))
        elif was and not will:
            lose.append((inmate.number, inmate.name))
        if inmate.number == requester or (first is None and not requester and was != will):
            first = who
    lines: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    if first is not None:
        local = before.local(now)
        lines = tuple(  # type: ignore[assignment]
            tuple(Explanation(first, facts, local, decide_url(scheme, facts, first, policy, now=now)).lines())
            for policy in (before, after))
    return Impact(url, tuple(gain), tuple(lose), lines[0], lines[1], len(inmates))


def url_for(spec: dict[str, Any], asked: str = "") -> str:
    """The URL a proposal is shown against: the one asked for, else its first host and path."""
    if asked:
        return asked
    host = str(spec.get("allow", ["example.org"])[0]).lstrip("*.")
    paths = spec.get("paths") or ["/"]
    path = str(paths[0]).rstrip("*") or "/"
    return f"https://{host}{path if path.startswith('/') else '/' + path}"
