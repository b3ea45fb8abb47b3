"""Work the portal does by itself at an interval (alert scans, ending enrolments whose last day passed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from gatehouse.audit import AuditUnavailable

log = logging.getLogger(__name__)


async def repeat(stop: asyncio.Event, seconds: float, work: Callable[[], Awaitable[object]], what: str, *,
                 first_after: float = 0.0) -> None:
    """`work` every `seconds` (the first time after `first_after`) until `stop`; a failure (database, disk, audit
    log) is logged once, tried again at the next interval, and its end is logged too."""
    failing = False
    if first_after > 0:
        try:
            await asyncio.wait_for(stop.wait(), first_after)
        except TimeoutError:
            pass
    while not stop.is_set():
        try:
            await work()
            if failing:
                log.warning("%s works again", what)
            failing = False
        except (SQLAlchemyError, OSError, AuditUnavailable) as exc:
            if not failing:
                log.error("%s failed (%s); retrying every %s s", what, exc, seconds)
            failing = True
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass
