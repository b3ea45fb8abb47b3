"""What staff do with directory entries: edit them, mark them checked, find the stale ones, and open (or close) an
entry's website to inmates.

An entry's website opens through curation, never beside it: "open" proposes a rule for everyone (GET and HEAD on
the site's host), and "forms" one more that allows POST on the form paths staff name; each becomes policy only
when a second staff member with the role it needs approves it, and reaches every node as any curated rule does.
The entry says which: open, waiting for approval, or closed. Closing proposes the rules' removal the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gatehouse.curation import proposals
from gatehouse.curation.models import Proposal, ProposalKind, ProposalStatus
from gatehouse.db.models import PolicyRule
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.explain import parse_url
from gatehouse.resources.models import Service, Website
from gatehouse.resources.search import reindex
from policies.decision import Subject, decide_url
from policies.hosts import HostError, canonical_host
from policies.snapshot import Snapshot

EDITABLE = ("name", "alternate_name", "description", "url", "email", "status", "application_process",
            "fees_description", "eligibility_description")
"""Fields staff may change in the portal; the rest comes with the feed (and with the next import)."""
STATUSES = ("active", "inactive", "defunct", "temporarily closed")
"""HSDS's service statuses; inmates see active entries only."""
LIMITS = {"name": 255, "alternate_name": 255, "url": 1024, "email": 255}


def get(session: Session, service_id: str) -> Service:
    service = session.get(Service, service_id)
    if service is None:
        raise NotFound(f"no directory entry {service_id!r}")
    return service


def stale(session: Session, today: date, days: int) -> list[Service]:
    """Active entries nobody has checked for `days` days (or ever), the oldest first."""
    since = today - timedelta(days=days)
    return list(session.scalars(
        select(Service).where(Service.status == "active",
                              or_(Service.assured_date.is_(None), Service.assured_date < since))
        .order_by(Service.assured_date.is_not(None), Service.assured_date, Service.name)))


def mark_checked(session: Session, service_id: str, *, by: str, today: date, now: datetime) -> Service:
    service = get(session, service_id)
    service.assured_date, service.assurer_email = today, by
    service.updated_by, service.updated_at = by, now
    return service


def _web_address(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"url: {value!r} is not a web address (https://...)")
    return value


def edit(session: Session, service_id: str, fields: Mapping[str, str], *, by: str,
         now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Change the given fields; returns (before, after) of those that changed. Every bad field is named at once."""
    service = get(session, service_id)
    problems = []
    changes: dict[str, str] = {}
    for name, raw in fields.items():
        if name not in EDITABLE:
            problems.append(f"{name}: not a field staff edit here (it comes with the feed)")
            continue
        value = " ".join(raw.split()) if name in LIMITS else raw.strip()
        if name == "name" and not value:
            problems.append("name: an entry needs a name")
        elif name in LIMITS and len(value) > LIMITS[name]:
            problems.append(f"{name}: at most {LIMITS[name]} characters ({len(value)} given)")
        elif name == "status" and value not in STATUSES:
            problems.append(f"status: choose one of {', '.join(STATUSES)}")
        elif name == "url" and value:
            try:
                _web_address(value)
            except InvalidInput as exc:
                problems.append(str(exc))
        if getattr(service, name) != value:
            changes[name] = value
    if problems:
        raise InvalidInput("; ".join(problems))
    before = {name: getattr(service, name) for name in changes}
    for name, value in changes.items():
        setattr(service, name, value)
    if changes:
        service.updated_by, service.updated_at = by, now
        session.flush()
        reindex(session, [service])
    return before, dict(changes)


def site_host(service: Service) -> str:
    """The host an entry's website is on: its own address, else its organization's."""
    address = service.url or service.organization.website
    if not address:
        raise InvalidInput(f"{service.name} has no website to open (give its url first)")
    try:
        return canonical_host(urlsplit(_web_address(address)).hostname or "")
    except HostError as exc:
        raise InvalidInput(f"url: {address!r}: {exc}") from None


class WebsiteState(enum.StrEnum):
    CLOSED = "closed"
    WAITING = "waiting"
    """A proposal to open it (or to close it) waits for a second pair of eyes."""
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class WebsiteStatus:
    state: WebsiteState
    rules: tuple[str, ...]
    """The curated rules in force for it."""
    waiting: tuple[int, ...]
    """Proposals not decided yet."""


def website_status(session: Session, service: Service) -> WebsiteStatus:
    made = list(session.scalars(select(Proposal).where(Proposal.id.in_(service.website_proposals or [-1]))))
    waiting = tuple(p.id for p in made if p.status == ProposalStatus.PENDING.value)
    rule_ids = {p.rule_id for p in made}
    rules = tuple(sorted(session.scalars(select(PolicyRule.rule_id).where(PolicyRule.rule_id.in_(rule_ids),
                                                                          PolicyRule.enabled))))
    state = WebsiteState.WAITING if waiting else WebsiteState.OPEN if rules else WebsiteState.CLOSED
    return WebsiteStatus(state, rules, waiting)


def _paths(form_paths: Iterable[str]) -> list[str]:
    paths = sorted({p.strip() for p in form_paths if p.strip()})
    for path in paths:
        if not path.startswith("/"):
            raise InvalidInput(f"form_paths: {path!r} must start with / (e.g. /apply)")
    return paths


def propose_website(session: Session, service_id: str, mode: Website, *, form_paths: Sequence[str] = (), by: str,
                    now: datetime, triggers: Iterable[str], taken: Iterable[str] = ()) -> list[Proposal]:
    """Proposals that bring the entry's website to `mode`: rules for everyone, so (by default settings) security
    staff approve them; nothing changes for inmates before they do."""
    service = get(session, service_id)
    status = website_status(session, service)
    if status.waiting:
        raise Conflict(f"proposal {status.waiting[0]} for this website waits for approval already; decide it first")
    triggers = tuple(triggers)
    made: list[Proposal] = []
    in_force = {row.rule_id: row for row in session.scalars(
        select(PolicyRule).where(PolicyRule.rule_id.in_(status.rules or ("",))))}
    note = f"directory entry {service.id}: {service.name}"
    paths = _paths(form_paths) if mode is Website.FORMS else []
    if mode is Website.CLOSED:
        if not in_force:
            raise InvalidInput(f"the website of {service.name} is not open")
        made = [proposals.propose(session, spec=dict(row.spec), by=by, now=now, triggers=triggers, note=note,
                                  kind=ProposalKind.REMOVE, rule_id=rule_id) for rule_id, row in in_force.items()]
    else:
        host = site_host(service)
        if mode is Website.FORMS and not paths:
            raise InvalidInput("form_paths: name the form paths to allow (e.g. /apply), one per line")
        wanted = [{"allow": [host], "description": f"directory: {service.name}"[:200]}]
        if paths:
            wanted.append({"allow": [host], "paths": paths, "methods": ["GET", "HEAD", "POST"],
                           "description": f"directory: forms of {service.name}"[:200]})
        present = [dict(row.spec) for row in in_force.values()]
        for spec in wanted:
            if spec not in present:
                made.append(proposals.propose(session, spec=spec, by=by, now=now, triggers=triggers, note=note,
                                              taken=taken))
        for rule_id, row in in_force.items():
            if dict(row.spec) not in wanted:  # a form rule no longer wanted, or for an address that changed
                made.append(proposals.propose(session, spec=dict(row.spec), by=by, now=now, triggers=triggers,
                                              note=note, kind=ProposalKind.REMOVE, rule_id=rule_id))
        if not made:
            raise InvalidInput(f"the website of {service.name} is {mode.value} already")
    session.flush()
    service.website, service.form_paths = mode.value, paths
    service.website_proposals = [*(service.website_proposals or []), *(p.id for p in made)]
    service.updated_by, service.updated_at = by, now
    return made


def opens_for(policy: Snapshot, who: Subject, url: str, now: datetime) -> bool:
    """Whether the gateway lets this inmate, at this terminal, open `url` now, by the policy in force (a file
    rule, a curated rule or the entry's own): what the entry page says, decided as the gateway decides."""
    try:
        scheme, facts = parse_url(url, "GET")
        return decide_url(scheme, facts, who, policy, now=now).final.allowed
    except (InvalidInput, HostError, ValueError):
        return False
