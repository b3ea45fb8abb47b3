"""What both sides of curation in the portal share: one transaction off the event loop, audit records, and the
announcement of a policy change to every gateway node (and to the portal processes, which reload on hearing it).

A portal never loads the policy itself after a change: the gateway in the same process does it on hearing
`PolicyChanged` (and records it, and cuts the tunnels the change no longer allows); a portal running alone
subscribes to the event and reloads (see `portal.app`).
"""

from __future__ import annotations

from collections.abc import Iterable

from gatehouse.audit import AuditEvent, Tag
from gatehouse.bus import ControlEvent
from gatehouse.kernel import Kernel
from portal.auth.services import announce, record
from portal.transactions import change as change  # the domain's screens take both from here
from portal.transactions import read as read


async def note(kernel: Kernel, tag: Tag, actor: str, reason: str, *, decision: str = "allow", terminal: str = "",
               host: str = "") -> None:
    await record(kernel, AuditEvent(tag, "portal", actor=actor, terminal=terminal, decision=decision,
                                    reason=reason, host=host))


async def publish(kernel: Kernel, events: Iterable[ControlEvent]) -> None:
    """Tell every node (each event is in `control_events` already, for nodes that cannot hear the bus)."""
    for event in events:
        await announce(kernel, event)
