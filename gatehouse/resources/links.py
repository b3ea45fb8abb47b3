"""The directory's link check: each entry's website visited through the gateway's own upstream checks (the same
address rules, pinned connection and trust as the page previews of curation), and marked ok, redirected (to
where) or dead (and why) for staff. `gatehouse resources check-links` runs it now; the portal every
`resources.check_links_hours`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import or_, select

from gatehouse.audit import AuditEvent, Tag
from gatehouse.curation.preview import Preview, fetch_preview, trust_for
from gatehouse.db.engine import stored
from gatehouse.kernel import Kernel
from gatehouse.resources.models import LinkState, Service
from gatehouse.settings import resolve_table

log = logging.getLogger(__name__)
AT_ONCE = 8
ROUND_SECONDS = 600.0
"""How often the portal asks which entries are due."""
READ_BYTES = 65_536
"""Enough to know the page answers; its text is not kept."""


@dataclass(frozen=True, slots=True)
class Link:
    service_id: str
    name: str
    url: str
    state: LinkState
    detail: str


def _same_place(asked: str, reached: str) -> bool:
    """A trailing slash or an added default path is not a move; another host, scheme or path is."""
    a, b = urlsplit(asked), urlsplit(reached)
    return (a.scheme, a.hostname, (a.path or "/").rstrip("/")) == (b.scheme, b.hostname, (b.path or "/").rstrip("/"))


def judged(preview: Preview) -> tuple[LinkState, str]:
    if preview.error:
        return LinkState.DEAD, preview.error
    if preview.status >= 400:
        return LinkState.DEAD, f"the site answers {preview.status}"
    if not _same_place(preview.url, preview.final_url):
        return LinkState.REDIRECTED, f"now at {preview.final_url}"
    return LinkState.OK, ""


async def check_links(kernel: Kernel, now: datetime, *, due_only: bool = False, plane: str = "cli") -> list[Link]:
    """Visit the website of every active entry that has one (with `due_only`, those not visited for
    `resources.check_links_hours`), store what was found, and record one audit event with the counts."""
    now = stored(now)
    hours = float(kernel.settings["resources.check_links_hours"])

    def find() -> list[tuple[str, str, str]]:
        with kernel.factory() as session:
            query = select(Service).where(Service.status == "active", Service.url != "")
            if due_only:
                query = query.where(or_(Service.link_checked_at.is_(None),
                                        Service.link_checked_at <= now - timedelta(hours=hours)))
            return [(s.id, s.name, s.url) for s in session.scalars(query.order_by(Service.id))]

    items = await asyncio.to_thread(find)
    if not items:
        return []
    policy = kernel.policies.snapshot
    table = resolve_table(kernel.settings["proxy.resolve"])
    trust = trust_for(kernel.settings)
    gate = asyncio.Semaphore(AT_ONCE)

    async def visit(service_id: str, name: str, url: str) -> Link:
        async with gate:
            preview = await fetch_preview(url, table=table, policy=policy, trust=trust, max_bytes=READ_BYTES)
        state, detail = judged(preview)
        return Link(service_id, name, url, state, detail)

    links = list(await asyncio.gather(*(visit(*item) for item in items)))

    def keep() -> None:
        with kernel.factory.begin() as session:
            for link in links:
                service = session.get(Service, link.service_id)
                if service is not None and service.url == link.url:  # not edited meanwhile
                    service.link_state, service.link_detail = link.state.value, link.detail[:1000]
                    service.link_checked_at = now

    await asyncio.to_thread(keep)
    counts = Counter(link.state.value for link in links)
    summary = ", ".join(f"{counts[s.value]} {s.value}" for s in LinkState if counts[s.value])
    bad = " ".join(f"{link.service_id}={link.state.value}" for link in links if link.state is not LinkState.OK)
    await kernel.record(AuditEvent(Tag.RESOURCES_LINKS_CHECKED, plane, actor="resources",
                                    reason=f"{summary}{'; ' + bad if bad else ''}"[:2000]))
    log.info("resources: links checked: %s", summary)
    return links


async def check_due(kernel: Kernel, now: datetime) -> int:
    """The portal's round: how many websites were visited."""
    return len(await check_links(kernel, now, due_only=True, plane="portal"))
