"""Who is behind a client address: terminal, then open session, then inmate. Cached briefly, dropped on events.

A lookup failure (database down) is an error the caller turns into a denial: identity fails closed. The one
exception is an identity looked up successfully within the last `grace` seconds: during a short database
outage, sessions already open carry on (their records wait in the audit segments); logins and logouts need
the database and cannot happen meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.bus import ControlEvent, EnrolmentChanged, LanguageChanged
from gatehouse.db.engine import utcnow
from gatehouse.sessions import ActiveSession, SessionPolicy, identify

log = logging.getLogger(__name__)
CACHE_S = 1.0
TOUCH_EVERY_S = 30.0


@dataclass(frozen=True, slots=True)
class Identity:
    address: str
    terminal: str = ""
    terminal_kind: str = ""
    session: ActiveSession | None = None
    block: tuple[str, str] = ("", "")
    """Why nobody may use this terminal now (code, text): switched off, or a lockdown; empty when nothing."""

    @property
    def known_terminal(self) -> bool:
        return bool(self.terminal)


class ControlUnavailable(Exception):
    """This node cannot hear the control bus: a suspension or lockdown could be missed, so nobody is let through."""


class IdentityResolver:
    def __init__(self, factory: sessionmaker[Session], policy: SessionPolicy, grace: float = 0.0,
                 link: Callable[[], bool] | None = None) -> None:
        self._factory = factory
        self._link = link
        self._policy = policy
        self._grace = grace
        self._failing = False
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._touched: dict[str, float] = {}

    async def resolve(self, address: str) -> Identity:
        if self._link is not None and not self._link():
            raise ControlUnavailable("the gateway cannot hear the control bus; access is paused until it can")
        now = time.monotonic()
        hit = self._cache.get(address)
        if hit and now - hit[0] < CACHE_S:
            return hit[1]
        touch = now - self._touched.get(address, 0.0) > TOUCH_EVERY_S
        try:
            terminal, active, block = await asyncio.to_thread(identify, self._factory, self._policy, address,
                                                              utcnow(), touch=touch)
        except SQLAlchemyError:
            if hit and now - hit[0] < self._grace:
                if not self._failing:
                    log.error("identity: the database is unreachable; identities looked up in the last %.0f s "
                              "stay in force, others are refused", self._grace)
                    self._failing = True
                return hit[1]
            raise
        if self._failing:
            log.warning("identity: the database answers again")
            self._failing = False
        if touch and active:
            self._touched[address] = now
        identity = Identity(address, terminal.name if terminal else "", terminal.kind if terminal else "", active,
                            block)
        self._cache[address] = (now, identity)
        return identity

    @property
    def language(self) -> str:
        """The facility's language: a block page's when nobody is logged in and the browser names none we have."""
        return self._policy.language

    async def on_event(self, event: ControlEvent) -> None:
        """A language chosen in the portal: the next block page at that terminal is in it, on open connections too
        (they take the language from the session looked up at each decision). An enrolment opened or closed: that
        inmate's courses are read again at the next decision."""
        if isinstance(event, LanguageChanged):
            self.forget(event.terminal_address)
        elif isinstance(event, EnrolmentChanged):  # the course's sites open or close at once, not in a second
            for address, (_at, identity) in list(self._cache.items()):
                if identity.session is not None and identity.session.inmate_number == event.inmate:
                    self.forget(address)

    def forget(self, address: str) -> None:
        self._cache.pop(address, None)
        self._touched.pop(address, None)

    def forget_all(self) -> None:
        """After the control bus was lost: whatever happened meanwhile is read from the database again."""
        self._cache.clear()
