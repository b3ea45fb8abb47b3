"""What both sides of curation in the portal share: one transaction off the event loop, audit records, and the
announcement of a policy change to every gateway node (and to the portal processes, which reload on hearing it).

A portal never loads the policy itself after a change: the gateway in the same process does it on hearing
`PolicyChanged` (and records it, and cuts the tunnels the change no longer allows); a portal running alone
subscribes to the event and reloads (see `portal.app`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.bus import ControlEvent
from gatehouse.kernel import Kernel
from portal.auth.services import announce, record

T = TypeVar("T")


async def read(kernel: Kernel, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with kernel.factory() as session:
            return work(session)
    return await asyncio.to_thread(run)


async def change(kernel: Kernel, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with kernel.factory.begin() as session:
            return work(session)
    return await asyncio.to_thread(run)


async def note(kernel: Kernel, tag: Tag, actor: str, reason: str, *, decision: str = "allow", terminal: str = "",
               host: str = "") -> None:
    await record(kernel, AuditEvent(tag, "portal", actor=actor, terminal=terminal, decision=decision,
                                    reason=reason, host=host))


async def publish(kernel: Kernel, events: Iterable[ControlEvent]) -> None:
    """Tell every node (each event is in `control_events` already, for nodes that cannot hear the bus)."""
    for event in events:
        await announce(kernel, event)
