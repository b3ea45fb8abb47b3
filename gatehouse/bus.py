"""The control bus: how the portal and the CLI tell every gateway node to act on open connections now."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A terminal's binding ended (logout, idle, replaced): its open connections must close."""

    terminal_address: str
    session: str
    reason: str


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A terminal was bound to an inmate: cached identity for that address is stale."""

    terminal_address: str
    session: str


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    source: str


ControlEvent = SessionStarted | SessionEnded | PolicyChanged
Handler = Callable[[ControlEvent], Awaitable[None]]


class ControlBus(Protocol):
    async def publish(self, event: ControlEvent) -> None: ...

    def subscribe(self, handler: Handler) -> None: ...


class InProcessBus:
    """The embedded default: portal and gateway share one process, handlers run before publish returns."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, event: ControlEvent) -> None:
        for handler in self._handlers:
            await handler(event)
