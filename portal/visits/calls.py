"""The call, served: one hub per process for the portal and the visitors' listener, the ticket of each person
from their session and the booked visit, every event of the hub in the audit log, and rooms that end when the
visit's row says so (a lockdown or a cancellation made by any process, the CLI included).

Who may join is decided from the database on every page and socket: the inmate of the visit from a booth (the
booth's own terminal when it names one, else any terminal of kind `booth`), a verified visitor who is a guest of
it, a supervisor for an ordinary visit only. The times come from the row; the hub owns the clock from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import TerminalKind
from gatehouse.errors import Conflict, NotFound
from gatehouse.kernel import Kernel
from gatehouse.settings import Settings
from gatehouse.visits import booking, relay
from gatehouse.visits.models import Visit, VisitStatus
from gatehouse.visits.room import CallEvent, Hub, Role, Ticket
from gatehouse.visits.rules import VisitClass
from portal.auth.services import record
from portal.visits.signal import Resolver, websocket_handler

__all__ = ["CALL_POLICY", "Calls", "ENDING_ROUND_S", "TAGS", "calls_of", "ticket", "use_calls"]

log = logging.getLogger(__name__)

ENDING_ROUND_S = 2.0
"""How often the rooms running here are compared with their rows: a lockdown reaches a call within this."""
CALL_POLICY = "camera=(self), microphone=(self), geolocation=()"
"""The call pages' Permissions-Policy: the portal's pages forbid camera and microphone, these need them."""
TAGS = {CallEvent.JOIN: Tag.VISITS_CALL_JOINED, CallEvent.LEAVE: Tag.VISITS_CALL_LEFT,
        CallEvent.WATCH: Tag.VISITS_CALL_WATCHED, CallEvent.MUTE: Tag.VISITS_CALL_MUTED,
        CallEvent.UNMUTE: Tag.VISITS_CALL_UNMUTED, CallEvent.END: Tag.VISITS_CALL_ENDED,
        CallEvent.REFUSED: Tag.VISITS_CALL_REFUSED}


@dataclass(slots=True)
class Calls:
    """The hub of this process and the round that ends its rooms from the database; shared by every listener."""

    kernel: Kernel
    hub: Hub = field(init=False)
    _users: int = 0
    _round: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        minutes = self.kernel.settings["visits.waiting_room_minutes"]
        self.hub = Hub(on_event=self._on_event, waiting_room=timedelta(minutes=minutes))

    async def _on_event(self, event: CallEvent, visit_id: str, participant: str, details: Mapping[str, str]) -> None:
        """Recorded before a join is let in (a failing audit log refuses it). A supervisor's end is also written
        to the visit's row, so the family reads the reason on their page and no other process reopens it."""
        if event is CallEvent.END and details.get("by") == "staff" and participant.startswith("staff:"):
            await asyncio.to_thread(self._end_row, visit_id, participant, details.get("reason", ""))
        said = " ".join(f"{key}={value}" for key, value in sorted(details.items()))
        await record(self.kernel, AuditEvent(TAGS[event], "portal", actor=participant,
                                             reason=f"visit:{visit_id} {said}".strip()))

    def _end_row(self, visit_id: str, by: str, reason: str) -> None:
        with contextlib.suppress(Conflict, NotFound, ValueError), self.kernel.factory.begin() as session:
            booking.end(session, int(visit_id), by=by, reason=reason or "ended by staff", now=utcnow())

    def _stopped(self, visit_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Of the rooms running, those whose visit is no longer approved: reason and who closed it."""
        ids = [int(v) for v in visit_ids if v.isdigit()]
        with self.kernel.factory() as session:
            rows = {str(v.id): v for v in session.scalars(select(Visit).where(Visit.id.in_(ids)))}
        stopped = {}
        for visit_id in visit_ids:
            row = rows.get(visit_id)
            if row is None:
                stopped[visit_id] = ("cancelled", "")
            elif row.status != VisitStatus.APPROVED.value:
                reason = row.close_reason or row.status
                stopped[visit_id] = ("lockdown" if reason.startswith("lockdown:") else reason, row.closed_by)
        return stopped

    async def end_stopped(self) -> int:
        """One round: end each running room whose visit was cancelled or ended elsewhere. Returns how many."""
        running = list(self.hub.running())
        if not running:
            return 0
        stopped = await asyncio.to_thread(self._stopped, running)
        for visit_id, (reason, by) in stopped.items():
            await self.hub.end(visit_id, reason, by=by or "portal")
        return len(stopped)

    async def _rounds(self) -> None:
        while True:
            await asyncio.sleep(ENDING_ROUND_S)
            try:
                await self.end_stopped()
            except Exception:  # a database that is down for a round must not stop the next ones
                log.exception("visits: the round that ends cancelled calls failed; trying again")

    async def serving(self, app: web.Application) -> AsyncIterator[None]:
        """For `cleanup_ctx` of each listener sharing these calls: one round while any runs, every call ended
        (its pages told) when the last stops."""
        self._users += 1
        if self._round is None:
            self._round = asyncio.create_task(self._rounds())
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0:
                if self._round is not None:
                    self._round.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._round
                    self._round = None
                await self.hub.close()


CALLS = web.AppKey("visits_calls", Calls)


def use_calls(app: web.Application, calls: Calls) -> None:
    app[CALLS] = calls
    app.cleanup_ctx.append(calls.serving)


def calls_of(request: web.Request) -> Calls:
    calls: Calls = request.app[CALLS]
    return calls


def legal(visit: Visit) -> bool:
    return visit.visit_class == VisitClass.LEGAL.value


def _ice(settings: Settings, visit: Visit, who: str, role: Role) -> tuple[list[dict[str, Any]], bool]:
    """The relay's servers with credentials that die at the visit's end; none when no relay is set (the demo on
    one machine calls directly). The inmate's side then uses relay candidates only."""
    urls, secret = settings["visits.turn_urls"], settings["visits.turn_secret"]
    if not urls or not secret:
        return [], False
    name = f"v{visit.id}-{who.replace(':', '-')}"
    creds = relay.turn_credentials(secret.encode(), name, booking.aware(visit.ends_at))
    return [dict(s) for s in relay.ice_servers(urls, creds)], role is Role.INMATE


def ticket(settings: Settings, visit: Visit, role: Role, participant: str, name: str) -> Ticket:
    servers, relay_only = _ice(settings, visit, participant, role)
    return Ticket(visit_id=str(visit.id), participant=participant, role=role, name=name,
                  start=booking.aware(visit.starts_at), end=booking.aware(visit.ends_at), legal=legal(visit),
                  ice_servers=servers, relay_only=relay_only)


def inmate_may_join(visit: Visit, terminal: str, kind: str) -> bool:
    """From the booth's own terminal when it names one, else from any terminal of kind `booth`."""
    if visit.booth.terminal:
        return terminal == visit.booth.terminal
    return kind == TerminalKind.BOOTH.value


async def socket(request: web.Request, resolve: Resolver) -> web.StreamResponse:
    """The call's WebSocket on this listener, over the shared hub."""
    return await websocket_handler(calls_of(request).hub, resolve)(request)


def call_context(t: Ticket, ws: str, zone: str) -> dict[str, Any]:
    """What visits/_call.html takes."""
    return {"ws": ws, "role": t.role.value, "ice_servers": [dict(s) for s in t.ice_servers],
            "relay_only": t.relay_only, "starts": t.start.isoformat(), "ends": t.end.isoformat(), "zone": zone,
            "legal": t.legal}
