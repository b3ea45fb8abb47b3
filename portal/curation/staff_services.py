"""The staff side of curation: what each screen shows and what its buttons do, each in one transaction.

The rules are `gatehouse.curation`'s (asking, proposals, ruleset, preview); this module turns their rows into
plain values a template prints, records what staff did in the audit log under their name, and announces an
approved change so every gateway applies it within a second. Four eyes is the domain's to decide: a refusal
comes back as `Denied` (403, recorded) or, when someone else decided first, `Late` (409, who decided).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.audit import Tag
from gatehouse.curation import asking, proposals, ruleset
from gatehouse.curation.models import AccessRequest, PageCheck, Proposal, ProposalKind, ProposalStatus
from gatehouse.curation.preview import Preview, fetch_preview, trust_for
from gatehouse.errors import Conflict, NotFound
from gatehouse.kernel import Kernel
from gatehouse.settings import resolve_table
from policies.rules import KNOWN_METHODS, Rule
from policies.snapshot import Snapshot
from portal.curation.services import change, note, publish, read

DRAFT_RULE = "proposed-rule"
"""The id a new rule has in the policy "after", before its proposal gives it its own."""
SCOPES = ("everyone", "inmate", "group", "course", "visit")
SOURCES = ("file", "curated")


# -- requests ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Asked:
    id: int
    number: str
    name: str
    url: str
    host: str
    purpose: str
    reason: str
    asked_at: datetime
    status: str
    answer: str
    decided_by: str


def _asked(row: AccessRequest) -> Asked:
    return Asked(row.id, row.inmate.number, row.inmate.name, row.url, row.host, row.purpose, row.reason,
                 row.created_at, row.status, row.answer, row.decided_by)


async def waiting(kernel: Kernel) -> list[Asked]:
    """Open requests, oldest first."""
    return await read(kernel, lambda s: [_asked(r) for r in asking.queue(s)])


@dataclass(frozen=True, slots=True)
class RequestView:
    request: Asked
    groups: tuple[str, ...]
    courses: tuple[str, ...]
    earlier: tuple[Asked, ...]
    denials: tuple[asking.Denial, ...]
    proposal: int | None
    """The proposal waiting for approval that answers it, if any."""


async def request_view(kernel: Kernel, request_id: int, now: datetime) -> RequestView:
    def work(session: Session) -> RequestView:
        seen = asking.context(session, request_id, now)
        waiting_for = session.scalar(select(Proposal.id).where(Proposal.request_id == request_id,
                                                               Proposal.status == ProposalStatus.PENDING.value))
        return RequestView(_asked(seen.request), seen.groups, seen.courses, tuple(_asked(r) for r in seen.earlier),
                           seen.denials, waiting_for)
    return await read(kernel, work)


async def preview(kernel: Kernel, url: str, *, by: str) -> Preview:
    """The page as the server sees it through the gateway's upstream checks and the policy in force (never
    fetched by the reviewer's browser), recorded."""
    settings = kernel.settings
    seen = await fetch_preview(url, table=resolve_table(settings["proxy.resolve"]), policy=kernel.policies.snapshot,
                               trust=trust_for(settings))
    outcome = seen.error or f"{seen.status} {seen.content_type}; flags: {', '.join(sorted(seen.flags)) or 'none'}"
    await note(kernel, Tag.CURATION_PREVIEW_FETCHED, by, f"{url}: {outcome}",
               decision="deny" if seen.error else "allow", host=urlsplit(url).hostname or "")
    return seen


async def refuse_request(kernel: Kernel, request_id: int, *, reason: str, by: str, now: datetime) -> None:
    """InvalidInput without a reason, Conflict when it is decided already."""
    def work(session: Session) -> Asked:
        return _asked(asking.refuse(session, request_id, reason=reason, by=by, now=now))
    done = await change(kernel, work)
    await note(kernel, Tag.CURATION_REQUEST_REFUSED, by, f"request {done.id} of {done.number} for {done.url}: "
                                                         f"{done.answer}", decision="deny", host=done.host)


def today(kernel: Kernel, now: datetime) -> date:
    return kernel.policies.snapshot.local(now).date()


def draft_for(asked: Asked, *, first_day: date, days: int) -> proposals.Draft:
    """The rule a request suggests: its host, its path (none for the whole site), for the one who asked, for
    `days` days."""
    path = urlsplit(asked.url).path
    return proposals.Draft(hosts=asked.host, paths="" if path in ("", "/") else path, scope="inmate",
                           target=asked.number, until=(first_day + timedelta(days=days - 1)).isoformat())


# -- what a proposal changes ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Assessed:
    spec: dict[str, Any]
    errors: dict[str, str]
    impact: ruleset.Impact | None
    role: str
    why: tuple[str, ...]
    line: str
    """The rule as one line, as the audit record and the approver read it."""

    @property
    def digest(self) -> str:
        """What the proposer was shown, so "Propose" saves that rule and not one changed since."""
        return hashlib.sha256(self.line.encode()).hexdigest()[:32]


def approver(spec: Mapping[str, Any], kind: ProposalKind, before: Mapping[str, Any] | None,
             triggers: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """Who must approve and why, as `proposals.propose` will store it."""
    role, why = proposals.approver(kind, spec, before, triggers)
    return role, tuple(why)


async def assess(kernel: Kernel, draft: proposals.Draft, *, url: str, requester: str, now: datetime,
                 kind: ProposalKind = ProposalKind.ADD, rule_id: str = "",
                 before: Mapping[str, Any] | None = None) -> Assessed:
    """The draft checked by the policy parser; when valid, who gains or loses `url` and who must approve."""
    spec, errors = proposals.spec_of(draft, today=today(kernel, now), default_days=kernel.settings[
        "curation.default_days"])
    if errors:
        return Assessed(spec, errors, None, "", (), "")
    policy = kernel.policies.snapshot
    after = ruleset.changed_policy(policy, rule_id or DRAFT_RULE, spec)
    impact = await read(kernel, lambda s: ruleset.impact(s, policy, after, url or ruleset.url_for(spec), now,
                                                         requester=requester))
    role, why = approver(spec, kind, before, kernel.settings["curation.security_approves"])
    return Assessed(spec, {}, impact, role, why, proposals.one_line(spec))


@dataclass(frozen=True, slots=True)
class Made:
    id: int
    rule_id: str


async def make_proposal(kernel: Kernel, spec: dict[str, Any], *, by: str, now: datetime, why: str = "",
                        request_id: int | None = None, kind: ProposalKind = ProposalKind.ADD,
                        rule_id: str = "") -> Made:
    """Save it to wait for a second pair of eyes; InvalidInput, Conflict or NotFound say why not."""
    policy = kernel.policies.snapshot
    taken = {r.id for r in policy.rules if r.source != "database"}

    def work(session: Session) -> tuple[Made, str, str]:
        row = proposals.propose(session, spec=spec, by=by, now=now, triggers=kernel.settings[
            "curation.security_approves"], note=why, request_id=request_id, kind=kind, rule_id=rule_id, taken=taken)
        return Made(row.id, row.rule_id), proposals.one_line(row.spec), str(row.spec.get("allow", [""])[0])
    made, line, host = await change(kernel, work)
    await note(kernel, Tag.CURATION_PROPOSAL_MADE, by, f"proposal {made.id} ({kind.value} {made.rule_id}): {line}",
               host=host)
    return made


# -- proposals --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Scope:
    kind: str
    """everyone, inmate, group, course or visit."""
    targets: tuple[str, ...] = ()


def scope_of_spec(spec: Mapping[str, Any]) -> Scope:
    for key, kind in (("inmates", "inmate"), ("groups", "group"), ("courses", "course")):
        if spec.get(key):
            return Scope(kind, tuple(spec[key]))
    return Scope("visit") if spec.get("visit") else Scope("everyone")


@dataclass(frozen=True, slots=True)
class ProposalView:
    id: int
    kind: str
    rule_id: str
    spec: dict[str, Any]
    before: dict[str, Any] | None
    line: str
    before_line: str
    scope: Scope
    note: str
    needs: str
    why: tuple[str, ...]
    status: str
    proposed_by: str
    proposed_at: datetime
    decided_by: str
    decided_at: datetime | None
    answer: str
    request: Asked | None

    @property
    def last_day(self) -> str:
        """The last day the rule applies (`valid_until` is the moment after it), "" when it has no end."""
        rule = self.before if self.kind == ProposalKind.REMOVE.value and self.before else self.spec
        until = str(rule.get("valid_until", ""))
        return (date.fromisoformat(until[:10]) - timedelta(days=1)).isoformat() if until else ""

    def may_approve(self, by: str, roles: Iterable[str]) -> bool:
        return proposals.may_approve(self._row(), by, roles) == ""

    def may_refuse(self, by: str, roles: Iterable[str]) -> bool:
        """The proposer may take it back; anyone who may approve it may refuse it."""
        return self.status == ProposalStatus.PENDING.value and (by == self.proposed_by
                                                                or self.may_approve(by, roles))

    def _row(self) -> Proposal:
        return Proposal(id=self.id, status=self.status, proposed_by=self.proposed_by, needs=self.needs,
                        why_needs="; ".join(self.why))


def _view(row: Proposal) -> ProposalView:
    shown = row.before if row.kind == ProposalKind.REMOVE.value and row.before is not None else row.spec
    return ProposalView(row.id, row.kind, row.rule_id, dict(row.spec), dict(row.before) if row.before else None,
                        proposals.one_line(row.spec) if row.kind != ProposalKind.REMOVE.value else "-",
                        proposals.one_line(row.before), scope_of_spec(shown), row.note, row.needs,
                        tuple(w for w in row.why_needs.split("; ") if w), row.status, row.proposed_by,
                        row.proposed_at, row.decided_by, row.decided_at, row.answer,
                        _asked(row.request) if row.request is not None else None)


async def pending(kernel: Kernel) -> list[ProposalView]:
    return await read(kernel, lambda s: [_view(p) for p in proposals.pending(s)])


async def sent_back(kernel: Kernel, username: str, limit: int = 20) -> list[ProposalView]:
    """The proposals of `username` that a second pair of eyes sent back to be changed, newest first."""
    def work(session: Session) -> list[ProposalView]:
        rows = session.scalars(select(Proposal).where(Proposal.status == ProposalStatus.RETURNED.value,
                                                      Proposal.proposed_by == username)
                               .order_by(Proposal.decided_at.desc(), Proposal.id.desc()).limit(limit))
        return [_view(row) for row in rows]
    return await read(kernel, work)


async def returned_draft(kernel: Kernel, proposal_id: int, *, request_id: int | None = None,
                         rule_id: str = "") -> tuple[proposals.Draft, str] | None:
    """The form of a proposal that was sent back, to change and propose again (for the same request or rule)."""
    def work(session: Session) -> tuple[proposals.Draft, str] | None:
        row = session.get(Proposal, proposal_id)
        if row is None or row.status != ProposalStatus.RETURNED.value or row.kind == ProposalKind.REMOVE.value:
            return None
        if (request_id is not None and row.request_id != request_id) or (rule_id and row.rule_id != rule_id):
            return None
        return proposals.Draft.from_spec(row.spec), row.note
    return await read(kernel, work)


@dataclass(frozen=True, slots=True)
class ProposalPage:
    proposal: ProposalView
    impact: ruleset.Impact | None
    """What approving it would change now (only while it waits)."""


async def proposal_page(kernel: Kernel, proposal_id: int, now: datetime) -> ProposalPage:
    policy = kernel.policies.snapshot

    def work(session: Session) -> ProposalPage:
        row = proposals.get(session, proposal_id)
        shown = _view(row)
        if row.status != ProposalStatus.PENDING.value:
            return ProposalPage(shown, None)
        url = ruleset.url_for(shown.before or shown.spec if row.kind == ProposalKind.REMOVE.value else shown.spec,
                              shown.request.url if shown.request else "")
        impact = ruleset.impact(session, policy, ruleset.after_proposal(policy, row), url, now,
                                requester=shown.request.number if shown.request else "")
        return ProposalPage(shown, impact)
    return await read(kernel, work)


class Denied(Exception):
    """The four-eyes rule (or the role it needs) does not let this staff member decide it: 403, recorded."""


class Late(Exception):
    """Someone decided it first: 409."""

    def __init__(self, status: str, by: str) -> None:
        super().__init__(f"{status} by {by}")
        self.status, self.by = status, by


def _state(session: Session, proposal_id: int) -> tuple[str, str]:
    row = proposals.get(session, proposal_id)
    return row.status, row.decided_by


async def decide(kernel: Kernel, proposal_id: int, *, action: str, by: str, roles: Iterable[str], now: datetime,
                 reason: str = "") -> ProposalView:
    """Approve, refuse or send back (`action`: approve, refuse, return); record each change it made and announce
    it. InvalidInput without a reason where one is needed."""
    held = tuple(roles)

    def work(session: Session) -> tuple[ProposalView, list[tuple[Tag, str, str]], list[Any]]:
        if action == "approve":
            done = proposals.approve(session, proposal_id, by=by, roles=held, now=now)
        else:
            done = proposals.refuse(session, proposal_id, reason=reason, by=by, roles=held, now=now,
                                    back=action == "return")
        return _view(done.proposal), done.records(), list(done.events)
    try:
        shown, records, events = await change(kernel, work)
    except proposals.Refused as exc:
        state = await read(kernel, lambda s: _state(s, proposal_id))
        if state[0] != ProposalStatus.PENDING.value:
            raise Late(*state) from None
        await note(kernel, Tag.CURATION_PROPOSAL_DENIED, by, f"proposal {proposal_id}: {action} not allowed: {exc}",
                   decision="deny")
        raise Denied(str(exc)) from None
    host = str((shown.before or shown.spec).get("allow", [""])[0])
    for tag, decision, said in records:
        await note(kernel, tag, by, said, decision=decision, host=host)
    await publish(kernel, events)
    return shown


# -- rules in force ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Flag:
    id: int
    rule_id: str
    url: str
    checked_at: datetime
    drift: tuple[str, ...]


def _flags(session: Session) -> list[Flag]:
    """Each rule's latest look at its page, where that look found a change nobody cleared yet (clearing it makes
    it the page as approved, which the next look is compared with)."""
    latest = select(func.max(PageCheck.id)).group_by(PageCheck.rule_id).scalar_subquery()
    rows = session.scalars(select(PageCheck).where(PageCheck.id.in_(latest), PageCheck.flagged,
                                                   PageCheck.cleared_at.is_(None))
                           .order_by(PageCheck.checked_at.desc(), PageCheck.id.desc()))
    return [Flag(r.id, r.rule_id, r.url, r.checked_at, tuple(str(line) for line in r.drift)) for r in rows]


async def flags(kernel: Kernel) -> list[Flag]:
    """Pages of approved rules that changed in a way to look at, not yet cleared by security staff."""
    return await read(kernel, _flags)


async def clear_flag(kernel: Kernel, check_id: int, *, by: str, now: datetime) -> None:
    def work(session: Session) -> tuple[str, str]:
        row = session.get(PageCheck, check_id)
        if row is None or not row.flagged:
            raise NotFound(f"no flagged page check {check_id}")
        if row.cleared_at is not None:
            raise Conflict(f"page check {check_id} was cleared by {row.cleared_by} already")
        row.cleared_by, row.cleared_at = by, now
        return row.rule_id, row.url
    rule_id, url = await change(kernel, work)
    await note(kernel, Tag.CURATION_PAGE_CLEARED, by, f"{rule_id}: the change of {url} was looked at and cleared",
               host=urlsplit(url).hostname or "")


@dataclass(frozen=True, slots=True)
class Listed:
    id: str
    effect: str
    hosts: tuple[str, ...]
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    ports: tuple[int, ...]
    mode: str
    websocket: bool
    scopes: tuple[Scope, ...]
    terminals: tuple[str, ...]
    windows: tuple[str, ...]
    ends: datetime | None
    ending_soon: bool
    quota: str
    description: str
    source: str
    """file or curated."""
    where: str
    """For a file rule, its file and line."""
    proposed_by: str = ""
    approved_by: str = ""
    approved_at: datetime | None = None
    proposal_id: int | None = None
    waiting: int | None = None
    """A proposal to change or remove it that waits for approval."""
    flags: tuple[Flag, ...] = ()

    @property
    def last_day(self) -> str:
        """The last day it applies (it ends at the start of the next), facility time."""
        if self.ends is None:
            return ""
        last = self.ends - timedelta(days=1) if self.ends.time() == datetime.min.time() else self.ends
        return last.date().isoformat()


def _scopes(rule: Rule) -> tuple[Scope, ...]:
    found = [Scope(kind, tuple(sorted(targets))) for kind, targets in (
        ("inmate", rule.inmates), ("group", rule.groups), ("course", rule.courses)) if targets]
    if rule.visit:
        found.append(Scope("visit"))
    return tuple(found) or (Scope("everyone"),)


def _methods(rule: Rule) -> tuple[str, ...]:
    """The methods a rule names; none for a deny rule that refuses every method."""
    return () if rule.methods >= KNOWN_METHODS else tuple(sorted(rule.methods))


def _where(rule: Rule, folder: Path) -> str:
    path = Path(rule.source)
    try:
        shown = str(path.relative_to(folder))
    except ValueError:
        shown = rule.source
    return f"{shown}:{rule.line}"


@dataclass(frozen=True, slots=True)
class Filters:
    text: str = ""
    scope: str = ""
    source: str = ""
    ending: bool = False

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        scope, source = query.get("scope", ""), query.get("source", "")
        return cls(" ".join(query.get("q", "").split()).lower()[:200], scope if scope in SCOPES else "",
                   source if source in SOURCES else "", query.get("ending", "") == "1")

    def keeps(self, row: Listed) -> bool:
        if self.text and not (self.text in row.id.lower() or any(self.text in h for h in row.hosts)):
            return False
        if self.scope and self.scope not in {s.kind for s in row.scopes}:
            return False
        if self.source and self.source != row.source:
            return False
        return not self.ending or row.ending_soon


def _listed(session: Session, policy: Snapshot, now: datetime, ending_days: int, folder: Path) -> list[Listed]:
    waiting_for = {p.rule_id: p.id for p in proposals.pending(session)}
    flagged: dict[str, list[Flag]] = {}
    for flag in _flags(session):
        flagged.setdefault(flag.rule_id, []).append(flag)
    out = []
    for item in ruleset.listing(session, policy, now, ending_days):
        rule, row = item.rule, item.curated
        out.append(Listed(
            rule.id, rule.effect.value, tuple(str(h) for h in rule.hosts), rule.paths, _methods(rule),
            tuple(sorted(rule.ports)), rule.mode.value, rule.websocket, _scopes(rule), tuple(sorted(rule.terminals)),
            tuple(w.text for w in rule.windows), item.ends, item.ending_soon, rule.quota, rule.description,
            "curated" if rule.source == "database" else "file", "" if rule.source == "database" else
            _where(rule, folder), row.created_by if row else "", row.approved_by if row else "",
            row.approved_at if row else None, row.proposal_id if row else None, waiting_for.get(rule.id),
            tuple(flagged.get(rule.id, ()))))
    return out


async def rules(kernel: Kernel, now: datetime) -> list[Listed]:
    """Every rule in force, in the snapshot's order, with where it comes from."""
    policy, settings = kernel.policies.snapshot, kernel.settings
    return await read(kernel, lambda s: _listed(s, policy, now, settings["curation.ending_days"],
                                                settings.policy_dir))


@dataclass(frozen=True, slots=True)
class CuratedRule:
    rule_id: str
    spec: dict[str, Any]
    waiting: int | None


async def curated_rule(kernel: Kernel, rule_id: str) -> CuratedRule:
    """NotFound for a rule that is not curated (a file's rule is changed in its file)."""
    def work(session: Session) -> CuratedRule:
        row = proposals.curated(session, rule_id)
        other = session.scalar(select(Proposal.id).where(Proposal.rule_id == rule_id,
                                                         Proposal.status == ProposalStatus.PENDING.value))
        return CuratedRule(row.rule_id, dict(row.spec), other)
    return await read(kernel, work)
