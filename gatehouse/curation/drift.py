"""The second look on drift: the page of each approved, inspected curated rule is fetched again on a schedule and
compared with the page as first seen after its approval; what it can newly do (a form that sends elsewhere, a
login, an upload, a way to send messages) flags the rule for staff, on record.

A site changes after it is approved: in 2014 an allowlisted job site grew a mail feature and inmates mailed out
through it. Inspection decides methods and paths; only a look at the page says what it now invites one to type.

The baseline is the first check after the rule's latest approval that could fetch the page (a change approved
later takes a new one), or the latest check staff cleared after looking at it. A check that cannot fetch the page
is flagged too: nothing was looked at. Which rules are due is decided here, so the portal may ask often.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.curation.models import PageCheck, Proposal
from gatehouse.curation.preview import Preview, drift, fetch_preview, trust_for
from gatehouse.curation.ruleset import url_for
from gatehouse.db.engine import stored
from gatehouse.db.models import PolicyRule
from gatehouse.kernel import Kernel
from gatehouse.settings import resolve_table
from policies.hosts import HostError, canonical_host

log = logging.getLogger(__name__)
ROUND_SECONDS = 300.0
"""How often the portal asks what is due (each rule is fetched every `curation.recheck_hours`)."""
AT_ONCE = 4
"""Pages fetched at the same time in one round."""


@dataclass(frozen=True, slots=True)
class Due:
    rule_id: str
    url: str
    since: datetime
    """When the rule in force was approved (naive UTC): checks before it are of another version of the rule."""


@dataclass(frozen=True, slots=True)
class Checked:
    """What one look found; `drift` empty when nothing of concern (or when this look is the baseline)."""

    rule_id: str
    url: str
    baseline: bool
    drift: tuple[str, ...]
    newly_flagged: bool
    """Flagged now and not by the look before (or for other reasons): this look is recorded in the audit log."""

    @property
    def flagged(self) -> bool:
        return bool(self.drift)


def _covered(url: str, hosts: Sequence[str]) -> bool:
    """Whether the rule's hosts include the URL's host (an edit may have moved the rule off the URL asked for)."""
    try:
        host = canonical_host(urlsplit(url).hostname or "")
    except (HostError, ValueError):
        return False
    return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in hosts)


def page_url(session: Session, row: PolicyRule) -> str:
    """The page a rule is checked at: the URL an inmate asked for (its proposal's request, else that of the first
    proposal of the rule that answered one), if the rule still covers it; else its first host and path."""
    asked = ""
    proposal = session.get(Proposal, row.proposal_id) if row.proposal_id is not None else None
    if proposal is None or proposal.request is None:
        proposal = session.scalar(select(Proposal).where(Proposal.rule_id == row.rule_id,
                                                         Proposal.request_id.is_not(None)).order_by(Proposal.id))
    if proposal is not None and proposal.request is not None and _covered(proposal.request.url,
                                                                          row.spec.get("allow", [])):
        asked = proposal.request.url
    return url_for(dict(row.spec), asked)


def _inspected(spec: dict[str, object]) -> bool:
    return bool(spec.get("allow")) and spec.get("mode", "inspect") == "inspect"


def _ended(spec: dict[str, object], local: datetime) -> bool:
    until = spec.get("valid_until")
    if not until:
        return False
    try:
        ends = datetime.fromisoformat(str(until)).replace(tzinfo=None)
    except ValueError:
        return False
    return local >= ends


def due(session: Session, now: datetime, *, hours: float, local: datetime, in_force: frozenset[str],
        rule_id: str = "") -> list[Due]:
    """The enabled, inspected curated rules in force (in the snapshot's `in_force` ids, and not ended) whose page
    was not looked at since their approval or for `hours`; with `rule_id`, that rule whatever its last look ([]
    when it is not one)."""
    query = select(PolicyRule).where(PolicyRule.enabled).order_by(PolicyRule.id)
    if rule_id:
        query = query.where(PolicyRule.rule_id == rule_id)
    last: dict[str, datetime] = {rule: at for rule, at in session.execute(
        select(PageCheck.rule_id, func.max(PageCheck.checked_at)).group_by(PageCheck.rule_id))}
    out = []
    for row in session.scalars(query):
        if row.rule_id not in in_force or not _inspected(row.spec) or _ended(row.spec, local):
            continue
        since = row.approved_at or row.created_at
        seen = last.get(row.rule_id)
        if not rule_id and seen is not None and seen >= since and seen > now - timedelta(hours=hours):
            continue
        out.append(Due(row.rule_id, page_url(session, row), since))
    return out


def baseline(session: Session, item: Due) -> PageCheck | None:
    """The page as approved: the latest look staff cleared, else the first look that fetched it."""
    looks = list(session.scalars(select(PageCheck).where(PageCheck.rule_id == item.rule_id, PageCheck.url == item.url,
                                                         PageCheck.checked_at >= item.since)
                                 .order_by(PageCheck.id)))
    fetched = [c for c in looks if c.preview.get("url") and not c.preview.get("error")]  # {}: written by hand
    cleared = [c for c in fetched if c.cleared_at is not None]
    return cleared[-1] if cleared else fetched[0] if fetched else None


def store(session: Session, item: Due, preview: Preview, now: datetime,
          fresh_after: datetime | None = None) -> Checked | None:
    """Keep one look; None when the rule was removed or changed meanwhile, or when another process kept a look
    after `fresh_after` (since the rule was found due: two portal processes look once)."""
    row = session.scalar(select(PolicyRule).where(PolicyRule.rule_id == item.rule_id, PolicyRule.enabled))
    if row is None or (row.approved_at or row.created_at) != item.since:
        return None
    if fresh_after is not None and session.scalar(select(PageCheck.id).where(
            PageCheck.rule_id == item.rule_id, PageCheck.checked_at >= max(fresh_after, item.since)).limit(1)):
        return None
    before = baseline(session, item)
    previous = session.scalar(select(PageCheck).where(PageCheck.rule_id == item.rule_id,
                                                      PageCheck.checked_at >= item.since)
                              .order_by(PageCheck.id.desc()).limit(1))
    if before is not None:
        lines = drift(Preview.from_json(before.preview), preview)
    elif preview.error:
        lines = [f"The page could not be looked at: {preview.error}"]
    else:
        lines = []
    newly = bool(lines) and (previous is None or not previous.flagged or previous.cleared_at is not None
                             or sorted(previous.drift) != sorted(lines))
    session.add(PageCheck(rule_id=item.rule_id, url=item.url, checked_at=now, preview=preview.to_json(),
                          drift=lines, flagged=bool(lines)))
    session.flush()
    return Checked(item.rule_id, item.url, before is None and not preview.error, tuple(lines), newly)


async def recheck(kernel: Kernel, now: datetime, *, rule_id: str = "", plane: str = "portal") -> list[Checked]:
    """Look again at the pages due (or at `rule_id`'s now), keep each look, and record each newly flagged rule."""
    now = stored(now)
    policy = kernel.policies.snapshot
    local = policy.local(now)
    hours = float(kernel.settings["curation.recheck_hours"])
    in_force = frozenset(rule.id for rule in policy.rules if rule.source == "database")
    """Only what the gateway enforces, checked with the same policy (a rule naming an internal host exactly may
    reach it), and nothing before the process has loaded the policy."""

    def find() -> list[Due]:
        with kernel.factory() as session:
            return due(session, now, hours=hours, local=local, in_force=in_force, rule_id=rule_id)

    items = await asyncio.to_thread(find)
    if not items:
        return []
    table = resolve_table(kernel.settings["proxy.resolve"])
    trust = trust_for(kernel.settings)
    gate = asyncio.Semaphore(AT_ONCE)

    async def look(item: Due) -> Checked | None:
        async with gate:
            preview = await fetch_preview(item.url, table=table, policy=policy, trust=trust)

        def keep() -> Checked | None:
            with kernel.factory.begin() as session:
                return store(session, item, preview, now, None if rule_id else now - timedelta(hours=hours))

        checked = await asyncio.to_thread(keep)
        if checked is not None and checked.newly_flagged:
            await kernel.record(AuditEvent(Tag.CURATION_PAGE_FLAGGED, plane, actor="curation", decision="deny",
                                             host=urlsplit(item.url).hostname or "",
                                             reason=f"{item.rule_id}: {item.url}: " + " ".join(checked.drift)))
            log.info("curation: the page of %s is flagged: %s", item.rule_id, " ".join(checked.drift))
        return checked

    return [c for c in await asyncio.gather(*(look(item) for item in items)) if c is not None]


async def recheck_due(kernel: Kernel, now: datetime) -> int:
    """The portal's round: how many pages were looked at."""
    return len(await recheck(kernel, now))
