"""Proposals: a rule to add, or a curated rule to change or remove, that becomes policy only when a second staff
member with the right role approves it. The server decides it all here, for the portal and the CLI alike.

Four eyes: the approver is never the proposer (whatever roles one person holds), and holds the role the
proposal needs: `security` for anything `curation.security_approves` names (for everyone, a group or a course's
learners, passthrough, methods other than GET and HEAD, WebSocket, ports other than 80 and 443), else education
or security. Twenty approvals at the same moment give one rule: the approval is one conditional update of the
proposal's row (`pending` to `approved`), which exactly one transaction wins.

A proposal's rule is checked by the same parser as the policy files, so what is approved is what the gateway
loads; the errors are given per form field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gatehouse.audit import Tag
from gatehouse.bus import ControlEvent, PolicyChanged
from gatehouse.control import append_event
from gatehouse.curation.models import AccessRequest, Proposal, ProposalKind, ProposalStatus, RequestStatus
from gatehouse.db.models import PolicyRule, StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from policies.rules import SAFE_METHODS, Rule, parse_policy

TRIGGERS = {
    "everyone": "it is for everyone",
    "group": "it is for a group",
    "course": "it is for a course's learners",
    "passthrough": "it is passthrough (not inspected)",
    "methods": "it allows methods other than GET and HEAD",
    "websocket": "it allows WebSocket",
    "ports": "it allows ports other than 80 and 443",
}
"""What can make a proposal need security staff's approval (`curation.security_approves`), and how it is said."""
SCOPES = ("inmate", "group", "course", "everyone")
MODES = ("inspect", "passthrough")
DEFAULT_PORTS = frozenset({80, 443})
FIELD_OF_KEY = {"allow": "hosts", "paths": "paths", "methods": "methods", "mode": "mode", "inmates": "target",
                "groups": "target", "courses": "target", "terminals": "terminals", "windows": "windows",
                "valid_until": "until", "quota": "quota", "websocket": "websocket", "ports": "ports",
                "description": "description"}
"""The form field each rule key comes from, so a parser error lands beside the field that caused it."""


class Refused(Exception):
    """An approval or decision that the four-eyes rule or the proposal's state does not allow."""


@dataclass(slots=True)
class Draft:
    """A rule as staff fill it in: text fields, one per form field (and per CLI option)."""

    hosts: str = ""
    paths: str = ""
    methods: str = "GET HEAD"
    mode: str = "inspect"
    scope: str = "inmate"
    target: str = ""
    """The inmate's number, the group's name or the course's id (empty for everyone)."""
    terminals: str = ""
    windows: str = ""
    until: str = ""
    """Last day (YYYY-MM-DD, facility time, included); empty: `curation.default_days` from today."""
    quota: str = "general"
    websocket: bool = False
    ports: str = ""
    description: str = ""

    @classmethod
    def of(cls, form: Mapping[str, Any]) -> Draft:
        draft = cls()
        for name in cls.__dataclass_fields__:
            if name in form:
                value = form[name]
                setattr(draft, name, bool(value) if name == "websocket" else str(value))
        return draft

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Draft:
        """A rule back into the form (to change a curated rule, or propose again what was sent back)."""
        scope, target = "everyone", ""
        for key, name in (("inmates", "inmate"), ("groups", "group"), ("courses", "course")):
            if spec.get(key):
                scope, target = name, " ".join(spec[key])
        until = str(spec.get("valid_until", ""))
        if until:  # stored as the moment after the last day
            until = (date.fromisoformat(until[:10]) - timedelta(days=1)).isoformat()
        return cls(hosts=" ".join(spec.get("allow", [])), paths=" ".join(spec.get("paths", [])),
                   methods=" ".join(spec.get("methods", sorted(SAFE_METHODS))), mode=spec.get("mode", "inspect"),
                   scope=scope, target=target, terminals=" ".join(spec.get("terminals", [])),
                   windows="\n".join(spec.get("windows", [])), until=until, quota=spec.get("quota", "general"),
                   websocket=bool(spec.get("websocket", False)),
                   ports=" ".join(str(p) for p in spec.get("ports", [])), description=spec.get("description", ""))


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text.strip()) if w]


def spec_of(draft: Draft, *, today: date, default_days: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The rule as a policy file writes it, and the problems by form field (empty when it is a valid rule)."""
    errors: dict[str, str] = {}
    spec: dict[str, Any] = {"allow": [h.lower() for h in _words(draft.hosts)]}
    if not spec["allow"]:
        errors["hosts"] = "give at least one host (e.g. jobs.example.org)"
    if paths := _words(draft.paths):
        spec["paths"] = paths
    methods = sorted({m.upper() for m in _words(draft.methods)}) or sorted(SAFE_METHODS)
    if set(methods) != SAFE_METHODS:
        spec["methods"] = methods
    if draft.mode not in MODES:
        errors["mode"] = f"choose {' or '.join(MODES)}"
    elif draft.mode != "inspect":
        spec["mode"] = draft.mode
    targets = _words(draft.target)
    if draft.scope not in SCOPES:
        errors["scope"] = f"choose one of {', '.join(SCOPES)}"
    elif draft.scope == "everyone":
        if targets:
            errors["target"] = "leave empty for everyone"
    elif not targets:
        errors["target"] = {"inmate": "give the inmate's number", "group": "give the group's name",
                            "course": "give the course's id"}[draft.scope]
    else:
        spec[{"inmate": "inmates", "group": "groups", "course": "courses"}[draft.scope]] = targets
    if terminals := _words(draft.terminals):
        spec["terminals"] = terminals
    if windows := [line.strip() for line in draft.windows.splitlines() if line.strip()]:
        spec["windows"] = windows
    until = draft.until.strip()
    if until.lower() in ("never", "none"):
        pass  # no end: allowed, and shown as such to the approver
    else:
        try:
            last = date.fromisoformat(until) if until else today + timedelta(days=default_days - 1)
        except ValueError:
            errors["until"] = f"{until!r} is not a date (YYYY-MM-DD), or 'never'"
        else:
            if last < today:
                errors["until"] = f"{last.isoformat()} has passed; give today or a later day"
            spec["valid_until"] = (last + timedelta(days=1)).isoformat()  # the last day is included
    if draft.quota.strip() and draft.quota.strip() != "general":
        spec["quota"] = draft.quota.strip()
    if draft.websocket:
        spec["websocket"] = True
    if ports := _words(draft.ports):
        try:
            spec["ports"] = sorted({int(p) for p in ports})
        except ValueError:
            errors["ports"] = "give port numbers (e.g. 443 8443)"
    if draft.description.strip():
        spec["description"] = " ".join(draft.description.split())[:200]
    if not errors:
        errors.update(check(spec))
    return spec, errors


def check(spec: Mapping[str, Any], rule_id: str = "proposal") -> dict[str, str]:
    """The policy parser's verdict on one rule, by form field: the rule is written one key to a line, so the
    line of an error names its key."""
    text = yaml.safe_dump({"rules": [dict(spec, id=rule_id)]}, sort_keys=False, default_flow_style=False)
    key_at: dict[int, str] = {}
    key = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if match := re.match(r"^(?:- |  )([a-z_]+):", line):
            key = match.group(1)
        key_at[number] = key
    errors: dict[str, str] = {}
    for error in parse_policy(text, "proposal").errors:
        if error.message.startswith("warning:"):
            continue
        errors.setdefault(FIELD_OF_KEY.get(key_at.get(error.line, ""), "hosts"), error.message)
    return errors


def rule_of(spec: Mapping[str, Any], rule_id: str, source: str = "database") -> Rule:
    result = parse_policy(yaml.safe_dump({"rules": [dict(spec, id=rule_id)]}), source)
    if result.errors or not result.rules:
        raise InvalidInput("; ".join(str(e) for e in result.errors) or "not a rule")
    return result.rules[0]


def needs(spec: Mapping[str, Any], triggers: Iterable[str]) -> tuple[str, list[str]]:
    """Which role approves it (security, or education for a narrow rule) and why."""
    said = set(triggers)
    scoped = any(spec.get(k) for k in ("inmates", "groups", "courses"))
    checks = {
        "everyone": not scoped,
        "group": bool(spec.get("groups")),
        "course": bool(spec.get("courses")),
        "passthrough": spec.get("mode") == "passthrough",
        "methods": bool(set(spec.get("methods", SAFE_METHODS)) - SAFE_METHODS),
        "websocket": bool(spec.get("websocket")),
        "ports": bool(set(spec.get("ports", DEFAULT_PORTS)) - DEFAULT_PORTS),
    }
    why = [TRIGGERS[name] for name, hit in checks.items() if hit and name in said]
    return (StaffRole.SECURITY.value, why) if why else (StaffRole.EDUCATION.value, [])


def approver(kind: ProposalKind, spec: Mapping[str, Any], before: Mapping[str, Any] | None,
             triggers: Iterable[str]) -> tuple[str, list[str]]:
    """Who approves a proposal of this kind, and why: a removal only narrows (a second pair of eyes of either
    role); a change is judged on what the rule becomes and on what it was."""
    said = tuple(triggers)
    if kind is ProposalKind.REMOVE:
        return needs({"inmates": ["-"]}, said)
    role, why = needs(spec, said)
    if kind is ProposalKind.EDIT and before is not None:
        was_role, was_why = needs(before, said)
        if was_role == StaffRole.SECURITY.value:
            role, why = was_role, sorted(set(why) | set(was_why))
    return role, why


def parse_triggers(value: Any) -> tuple[str, ...]:
    """`curation.security_approves`: names from TRIGGERS, or `all`."""
    words = _words(value) if isinstance(value, str) else [str(v) for v in value]
    if "all" in words:
        return tuple(TRIGGERS)
    unknown = [w for w in words if w not in TRIGGERS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not one of {', '.join(TRIGGERS)} (or all)")
    return tuple(w for w in TRIGGERS if w in words)


# -- proposing ------------------------------------------------------------------------------------------------------

def _slug(host: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", host.lower().lstrip("*.")).strip("-")[:40] or "site"


def curated(session: Session, rule_id: str) -> PolicyRule:
    row = session.scalar(select(PolicyRule).where(PolicyRule.rule_id == rule_id, PolicyRule.enabled))
    if row is None:
        raise NotFound(f"no curated rule {rule_id!r} (a rule in a policy file is changed in its file)")
    return row


def _waiting(session: Session, rule_id: str) -> Proposal | None:
    return session.scalar(select(Proposal).where(Proposal.rule_id == rule_id,
                                                 Proposal.status == ProposalStatus.PENDING.value))


def propose(session: Session, *, spec: dict[str, Any], by: str, now: datetime, triggers: Iterable[str],
            note: str = "", request_id: int | None = None, kind: ProposalKind = ProposalKind.ADD,
            rule_id: str = "", taken: Iterable[str] = ()) -> Proposal:
    """A proposal waiting for approval. `taken`: rule ids of the policy files, which a new rule may not reuse."""
    if kind is not ProposalKind.REMOVE and (errors := check(spec)):
        raise InvalidInput("; ".join(f"{k}: {v}" for k, v in errors.items()))
    request = None
    if request_id is not None:
        request = session.get(AccessRequest, request_id)
        if request is None:
            raise NotFound(f"no request {request_id}")
        if request.status != RequestStatus.OPEN.value:
            raise Conflict(f"request {request_id} is {request.status}; only an open request gets a proposal")
    before = None
    if kind is ProposalKind.ADD:
        rule_id = ""
    else:
        before = dict(curated(session, rule_id).spec)
        if (other := _waiting(session, rule_id)) is not None:
            raise Conflict(f"proposal {other.id} for {rule_id} waits for approval already; decide it first")
        if kind is ProposalKind.REMOVE:
            spec = before
        elif spec == before:
            raise InvalidInput(f"nothing changed in {rule_id}")
    role, why = approver(kind, spec, before, triggers)
    row = Proposal(kind=kind.value, rule_id=rule_id or "pending", spec=spec, before=before, note=note.strip()[:1000],
                   request=request, needs=role, why_needs="; ".join(why), status=ProposalStatus.PENDING.value,
                   proposed_by=by, proposed_at=now)
    session.add(row)
    session.flush()
    if kind is ProposalKind.ADD:
        row.rule_id = f"site-{_slug(spec['allow'][0])}-{row.id}"
        if row.rule_id in set(taken):
            raise Conflict(f"rule id {row.rule_id} is used in a policy file")
    if request is not None:
        request.status = RequestStatus.PROPOSED.value
    return row


def get(session: Session, proposal_id: int) -> Proposal:
    row = session.get(Proposal, proposal_id)
    if row is None:
        raise NotFound(f"no proposal {proposal_id}")
    return row


def pending(session: Session) -> list[Proposal]:
    return list(session.scalars(select(Proposal).where(Proposal.status == ProposalStatus.PENDING.value)
                                .order_by(Proposal.proposed_at, Proposal.id)))


def may_approve(proposal: Proposal, by: str, roles: Iterable[str]) -> str:
    """Why `by` may not approve it ("" when they may)."""
    held = set(roles)
    if proposal.status != ProposalStatus.PENDING.value:
        return f"proposal {proposal.id} is {proposal.status} already"
    if proposal.proposed_by == by:
        return f"{by} proposed it; a second staff member must approve it (four eyes)"
    if proposal.needs == StaffRole.SECURITY.value and StaffRole.SECURITY.value not in held:
        return f"it needs security staff's approval ({proposal.why_needs})"
    if not held & {StaffRole.EDUCATION.value, StaffRole.SECURITY.value}:
        return "only education or security staff approve proposals"
    return ""


@dataclass(slots=True)
class Decided:
    """What a decision did, for the audit record: the rule before and after (None where there is none)."""

    proposal: Proposal
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    request: AccessRequest | None = None
    events: list[ControlEvent] = field(default_factory=list)
    """To publish on the bus after the commit (each is in `control_events` already, for nodes without Redis)."""

    def records(self) -> list[tuple[Tag, str, str]]:
        """(tag, decision, reason) of the audit records this decision makes: the decision, and for an approval
        the rule's change with its before and after as a policy file writes them."""
        p = self.proposal
        said = f"proposal {p.id} ({p.kind} {p.rule_id}) by {p.proposed_by}"
        tag = {ProposalStatus.APPROVED.value: Tag.CURATION_PROPOSAL_APPROVED,
               ProposalStatus.REFUSED.value: Tag.CURATION_PROPOSAL_REFUSED,
               ProposalStatus.RETURNED.value: Tag.CURATION_PROPOSAL_RETURNED}[p.status]
        out = [(tag, "allow" if tag is Tag.CURATION_PROPOSAL_APPROVED else "deny",
                said + (f": {p.answer}" if p.answer else ""))]
        if p.status == ProposalStatus.APPROVED.value:
            change = {"add": Tag.CURATION_RULE_ADDED, "edit": Tag.CURATION_RULE_CHANGED,
                      "remove": Tag.CURATION_RULE_REMOVED}[p.kind]
            out.append((change, "allow", f"{p.rule_id}: before {one_line(self.before)}; after {one_line(self.after)}; "
                                         f"proposed by {p.proposed_by}, approved by {p.decided_by}"))
        return out


def one_line(spec: Mapping[str, Any] | None) -> str:
    """A rule as one line of flow-style YAML (`-` for none), for the audit record."""
    if spec is None:
        return "-"
    return yaml.safe_dump(dict(spec), default_flow_style=True, sort_keys=True, width=10_000).strip()


def _claim(session: Session, proposal: Proposal, status: ProposalStatus, by: str, now: datetime,
           answer: str = "", *, second_eyes: bool = True) -> None:
    """Move the proposal out of `pending` in one conditional update: of concurrent deciders, one wins. With
    `second_eyes` the update itself also refuses the proposer."""
    where = [Proposal.id == proposal.id, Proposal.status == ProposalStatus.PENDING.value]
    if second_eyes:
        where.append(Proposal.proposed_by != by)
    won = session.execute(update(Proposal).where(*where)
                          .values(status=status.value, decided_by=by, decided_at=now, answer=answer)
                          .execution_options(synchronize_session=False))
    session.refresh(proposal)
    if getattr(won, "rowcount", 0) != 1:
        raise Refused(f"proposal {proposal.id} is {proposal.status} already"
                      + (f" (by {proposal.decided_by})" if proposal.decided_by else ""))


def approve(session: Session, proposal_id: int, *, by: str, roles: Iterable[str], now: datetime) -> Decided:
    proposal = get(session, proposal_id)
    if why := may_approve(proposal, by, roles):
        raise Refused(why)
    _claim(session, proposal, ProposalStatus.APPROVED, by, now)
    done = Decided(proposal, before=proposal.before, request=proposal.request)
    if proposal.kind == ProposalKind.ADD.value:
        session.add(PolicyRule(rule_id=proposal.rule_id, spec=dict(proposal.spec), enabled=True,
                               created_by=proposal.proposed_by, created_at=now, approved_by=by, approved_at=now,
                               proposal_id=proposal.id))
        done.after = dict(proposal.spec)
    else:
        row = curated(session, proposal.rule_id)
        if proposal.kind == ProposalKind.EDIT.value:
            row.spec, row.approved_by, row.approved_at, row.proposal_id = dict(proposal.spec), by, now, proposal.id
            done.after = dict(proposal.spec)
        else:
            row.enabled, row.removed_by, row.removed_at = False, by, now
    if proposal.request is not None and proposal.request.status == RequestStatus.PROPOSED.value:
        proposal.request.status = RequestStatus.GRANTED.value
        proposal.request.decided_at, proposal.request.decided_by = now, by
    changed = PolicyChanged(f"curation: {proposal.kind} {proposal.rule_id}")
    append_event(session, changed, now)
    done.events.append(changed)
    session.flush()
    return done


def _answer(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("reason: say why; the proposer reads it")
    return reason[:1000]


def refuse(session: Session, proposal_id: int, *, reason: str, by: str, roles: Iterable[str], now: datetime,
           back: bool = False) -> Decided:
    """Refuse it, or (`back`) send it back to be changed; its request waits for education staff again."""
    proposal = get(session, proposal_id)
    answer = _answer(reason)
    if proposal.proposed_by == by and back:
        raise Refused(f"{by} proposed it; sending back is for the second pair of eyes")
    if proposal.proposed_by != by and (why := may_approve(proposal, by, roles)):
        raise Refused(why)  # the proposer may take their own proposal back (refuse it), never approve it
    _claim(session, proposal, ProposalStatus.RETURNED if back else ProposalStatus.REFUSED, by, now, answer,
           second_eyes=False)
    if proposal.request is not None and proposal.request.status == RequestStatus.PROPOSED.value:
        proposal.request.status = RequestStatus.OPEN.value
    return Decided(proposal, before=proposal.before, request=proposal.request)
