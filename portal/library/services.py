"""What the library screens share: the shelf read off the event loop, an archive's entries, the reading minutes
and the audit records.

Reading is metered like browsing: each minute in which an inmate opens an article or searches spends one minute
of the inmate's `library` quota category (one bit per minute, as the gateway spends them), so a budget named in
`quotas.yaml` bounds reading and the home page shows the minutes used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from gatehouse.audit import AuditEvent, Tag
from gatehouse.kernel import Kernel
from gatehouse.library import shelf, zim
from gatehouse.library.shelf import Shelved
from gatehouse.quota import local_minute
from gatehouse.sessions import ActiveSession
from portal.auth.services import record
from portal.transactions import change as change
from portal.transactions import read as read

T = TypeVar("T")
CATEGORY = "library"
RESULTS = 20
SHELF_SECONDS = 2.0
"""How long a library's row (who sees it, what is hidden) is reused between articles: a change made in this
portal applies at once (`forget`); one made by another process (`gatehouse library add`) within this time."""
_found: dict[str, tuple[float, Shelved | None]] = {}


def forget() -> None:
    """Staff changed a library: read the shelf again at the next article."""
    _found.clear()


async def visible(kernel: Kernel, groups: Iterable[str] | None) -> list[Shelved]:
    """The libraries this reader sees (None: staff, who see all)."""
    data_dir = kernel.settings.data_dir
    found = await read(kernel, lambda session: shelf.shelf(session, data_dir))
    return [one for one in found if shelf.visible_to(one, groups) and one.file.is_file()]


async def opened(kernel: Kernel, name: str, groups: Iterable[str] | None) -> Shelved | None:
    """One library, when it exists, its file is there and this reader may see it. Its row is reused for
    `SHELF_SECONDS`: an article is a read of the archive, not of the database each time."""
    data_dir = kernel.settings.data_dir
    now = time.monotonic()
    at, found = _found.get(name, (-SHELF_SECONDS, None))
    if now - at >= SHELF_SECONDS:
        found = await read(kernel, lambda session: shelf.find(session, data_dir, name))
        if len(_found) > 1000:
            _found.clear()
        _found[name] = (now, found)
    if found is None or not shelf.visible_to(found, groups) or not found.file.is_file():
        return None
    return found


async def entry(shelved: Shelved, path: str) -> zim.Entry | None:
    return await asyncio.to_thread(zim.entry, shelved.file, path)


async def entry_and(shelved: Shelved, path: str, then: Callable[[zim.Entry], T]) -> tuple[zim.Entry | None, T | None]:
    """The entry, and `then` of it, in one trip to a thread (an article is read and rewritten there)."""
    def both() -> tuple[zim.Entry | None, T | None]:
        found = zim.entry(shelved.file, path)
        return found, (then(found) if found is not None else None)
    return await asyncio.to_thread(both)


async def main_path(shelved: Shelved) -> str:
    return await asyncio.to_thread(zim.main_path, shelved.file)


async def search(shelved: Shelved, query: str) -> tuple[list[zim.Page], list[zim.Page]]:
    return await asyncio.to_thread(shelf.search, shelved, query, RESULTS)


async def spend(kernel: Kernel, active: ActiveSession, now: datetime) -> bool:
    """Spend this minute of reading; False when the day's `library` minutes are used up. The store not answering
    raises `QuotaUnavailable` (the view refuses: metering never fails open)."""
    policy = kernel.policies.snapshot
    who = active.subject
    minute = local_minute(now, policy.timezone)
    budget = policy.budgets.budget(who.inmate, who.groups, CATEGORY)
    mark = await kernel.quota.check_and_mark(who.inmate, CATEGORY, minute.day, minute.index, budget)
    return mark.allowed


async def note(kernel: Kernel, tag: Tag, *, actor: str, terminal: str, address: str, reason: str, path: str = "",
               decision: str = "allow") -> None:
    await record(kernel, AuditEvent(tag, "portal", actor=actor, terminal=terminal, client_addr=address,
                                    method="GET" if path else "", path=path, decision=decision, reason=reason))
