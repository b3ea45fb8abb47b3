"""The call's signalling hub: who is in which visit's room, what they may say to whom, and the clock that ends it.

Media go browser to browser (through the facility's relay); the server only relays the WebRTC offers, answers and
ICE candidates between members of one room. That is enough to own the call: the hub decides who is let in and
when (the booked times, `call_clock`), relays nothing before the start, tells both sides at 5 and 1 minutes, and
at the end tells everyone and closes every socket, so no page can set up or repair a connection after it.

Supervision is silent by construction, not by the goodwill of a page: the peers a family or an inmate is told of
never include a supervisor, a supervisor's messages carry an opaque token instead of their name, every SDP a
supervisor sends must only receive, and the answer to it must only send. A legal visit admits no supervisor at
all, whatever the ticket was issued for. The transport (aiohttp's WebSocket in `portal.visits.signal`) is not
imported here: a member is a `send` and a `close` callable, so the hub is tested and benchmarked without sockets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gatehouse.visits.rules import WARNINGS, CallPhase, VisitRuleError, call_clock

__all__ = ["BadMessage", "CallEvent", "Hub", "JoinRefused", "Member", "Role", "Ticket", "WAITING_ROOM",
           "directions"]

log = logging.getLogger(__name__)

WAITING_ROOM = timedelta(minutes=10)
"""How long before the start a page may connect, to test camera and sound; nothing is relayed until the start."""
MAX_SLEEP_S = 1.0
"""The clock task wakes at least this often: the wall clock it reads may be stepped (NTP) while it sleeps."""
BURST, BURST_WINDOW_S = 200, 10.0
"""Messages a member may send per window: ICE trickle for a few peers is tens; a flood toward an inmate is not."""
MAX_REASON = 500


class Role(enum.StrEnum):
    INMATE = "inmate"
    VISITOR = "visitor"
    SUPERVISOR = "supervisor"


SIDES = {Role.INMATE: "inmate", Role.VISITOR: "visitors"}
"""The sides a supervisor can mute: the inmate, or all the visitors at once."""


class CallEvent(enum.StrEnum):
    """What the hub reports to `on_event`, for the audit log (the portal maps each to a tag)."""

    JOIN = "join"
    LEAVE = "leave"
    WATCH = "watch"
    """A supervisor joined."""
    MUTE = "mute"
    UNMUTE = "unmute"
    END = "end"
    REFUSED = "refused"
    """A join, or a message, the hub would not take."""


EventSink = Callable[[CallEvent, str, str, Mapping[str, str]], Awaitable[None]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Ticket:
    """Who may join which visit, as the portal resolved it from a session: what the hub needs and trusts."""

    visit_id: str
    participant: str
    """Stable per person and visit, as `inmate:A1001`, `visitor:7`, `staff:sam`: a second socket replaces the first."""
    role: Role
    name: str
    """Shown to the others (never for a supervisor)."""
    start: datetime
    end: datetime
    legal: bool = False
    ice_servers: Sequence[Mapping[str, Any]] = ()
    """RTCIceServer entries for this participant (relay credentials expiring at `end`), passed on in the welcome."""
    relay_only: bool = False

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            when: datetime = getattr(self, name)
            if when.tzinfo is None or when.utcoffset() is None:
                raise ValueError(f"the {name} of visit {self.visit_id} must be an aware datetime")
        length = self.end - self.start
        if length <= timedelta(0) or length % timedelta(minutes=1):
            raise ValueError(f"visit {self.visit_id} must last a whole number of minutes, not {length}")
        if not self.participant:
            raise ValueError("a ticket names its participant")

    @property
    def side(self) -> str | None:
        return SIDES.get(self.role)


class JoinRefused(Exception):
    """The hub will not let this ticket in; `code` is stable for pages to say why in their language."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BadMessage(ValueError):
    """A message no page of ours sends: the socket should be closed with `close_code` (RFC 6455, 7.4.1)."""

    def __init__(self, message: str, close_code: int = 1003) -> None:
        super().__init__(message)
        self.close_code = close_code


_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})


def directions(sdp: str) -> list[str]:
    """The direction of each media section of `sdp` (RFC 8866 6.7): its own attribute, else the session's, else
    `sendrecv`. A data channel (`m=application`) counts as `sendrecv`: it can carry anything both ways."""
    session: str | None = None
    found: list[tuple[str, str | None]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            found.append((line[2:].split(" ", 1)[0], None))
        elif line.startswith("a=") and line[2:].strip() in _DIRECTIONS:
            if found:
                found[-1] = (found[-1][0], line[2:].strip())
            else:
                session = line[2:].strip()
    return ["sendrecv" if kind == "application" else own or session or "sendrecv" for kind, own in found]


def _only(sdp: object, allowed: frozenset[str]) -> bool:
    return isinstance(sdp, str) and all(d in allowed for d in directions(sdp))


_RECEIVE_ONLY = frozenset({"recvonly", "inactive"})
_SEND_ONLY = frozenset({"sendonly", "inactive"})

_REFUSALS = {
    "not-open": "the waiting room opens 10 minutes before the start",
    "ended": "the visit's time is over",
    "ended-by-staff": "staff ended this visit",
    "legal-no-supervisor": "a legal visit admits no supervisor",
    "mismatch": "the ticket's times or class differ from the room's",
}


@dataclass(eq=False)
class _Room:
    visit_id: str
    start: datetime
    end: datetime
    legal: bool
    members: dict[str, Member] = field(default_factory=dict)
    """By participant, in the order they joined (a replaced member's successor moves to the end)."""
    silent: dict[str, Member] = field(default_factory=dict)
    """Supervisors by their opaque token: the only name the others' pages ever see of them."""
    open: bool = False
    warned: set[timedelta] = field(default_factory=set)
    muted: set[str] = field(default_factory=set)
    ended: bool = False
    task: asyncio.Task[None] | None = None

    def others(self, member: Member) -> list[Member]:
        return [m for m in self.members.values() if m is not member and m.introduced]


class Member:
    """One participant's socket in a room. Made by `Hub.join`; the transport calls `receive` with each JSON
    object the page sends and `leave` once when the socket closes."""

    def __init__(self, hub: Hub, room: _Room, ticket: Ticket, send: Send, close: Close | None) -> None:
        self.ticket = ticket
        self._hub, self._room, self._send_to, self._close = hub, room, send, close
        self.token = f"silent-{secrets.token_urlsafe(12)}" if ticket.role is Role.SUPERVISOR else ""
        self.introduced = False
        """Told of its peers (and they of it): from the start, or from its join if later."""
        self.gone = False
        self._left = False
        self._window = (0.0, 0)

    @property
    def participant(self) -> str:
        return self.ticket.participant

    @property
    def role(self) -> Role:
        return self.ticket.role

    @property
    def silent(self) -> bool:
        return self.ticket.role is Role.SUPERVISOR

    def describe(self) -> dict[str, Any]:
        return {"id": self.participant, "name": self.ticket.name, "side": self.ticket.side}

    async def send(self, message: dict[str, Any]) -> None:
        """A socket that broke is left to its own receive loop to notice; the others go on."""
        if self.gone:
            return
        try:
            await self._send_to(message)
        except ConnectionError:
            self.gone = True

    async def close(self) -> None:
        self.gone = True
        if self._close is not None:
            await self._close()

    def _count(self) -> None:
        started, count = self._window
        now = time.monotonic()
        if now - started > BURST_WINDOW_S:
            started, count = now, 0
        self._window = (started, count + 1)
        if count + 1 > BURST:
            raise BadMessage(f"more than {BURST} messages in {BURST_WINDOW_S:g} s", close_code=1008)

    async def receive(self, message: Mapping[str, Any]) -> None:
        """Relay an `offer`, `answer` or `ice` to `message["to"]`, or act on a supervisor's `mute` or `end`.

        Raises BadMessage for a shape no page sends; refuses (drops and reports) what a page could send but this
        member may not: a supervisor's SDP that would send, an answer to a supervisor that would receive."""
        self._count()
        kind = message.get("type")
        if kind in ("mute", "end"):
            await self._command(kind, message)
            return
        if kind not in ("offer", "answer", "ice"):
            raise BadMessage(f"unknown message type {kind!r}")
        to = message.get("to")
        if not isinstance(to, str):
            raise BadMessage("a relayed message names its recipient in 'to'")
        if kind == "ice":
            payload: dict[str, Any] = {"candidate": message.get("candidate")}
            if not (payload["candidate"] is None or isinstance(payload["candidate"], dict)):
                raise BadMessage("'candidate' is an RTCIceCandidateInit object or null")
        else:
            sdp = message.get("sdp")
            if not isinstance(sdp, str):
                raise BadMessage("an offer or answer carries its SDP in 'sdp'")
            payload = {"sdp": sdp}
        room = self._room
        if room.ended or self.gone or not self.introduced:
            return  # nothing is relayed before the start, after the end, or from a replaced socket
        if self.silent:
            target = room.members.get(to)
            if target is None or target.silent or not target.introduced:
                return
            if kind == "answer":
                await self._refuse("supervisor-answer", to)
                return
            if kind == "offer" and not _only(payload["sdp"], _RECEIVE_ONLY):
                await self._refuse("supervisor-would-send", to)
                return
            await target.send({"type": kind, "from": self.token, "silent": True, **payload})
            return
        watcher = room.silent.get(to)
        if watcher is not None:
            if watcher.gone or not watcher.introduced:
                return
            if kind == "offer":
                await self._refuse("offer-to-silent", "")
                return
            if kind == "answer" and not _only(payload["sdp"], _SEND_ONLY):
                await self._refuse("answer-would-receive", "")
                return
            await watcher.send({"type": kind, "from": self.participant, **payload})
            return
        target = room.members.get(to)
        if target is None or target is self or target.silent or not target.introduced:
            return  # gone, never here, or another room's: dropped
        await target.send({"type": kind, "from": self.participant, **payload})

    async def _refuse(self, code: str, to: str) -> None:
        await self._hub._emit(CallEvent.REFUSED, self._room.visit_id, self.participant,
                              {"code": code, "to": to} if to else {"code": code})

    async def _command(self, kind: str, message: Mapping[str, Any]) -> None:
        if not self.silent:
            await self._refuse(f"{kind}-not-staff", "")
            return
        if kind == "mute":
            side, muted = message.get("side"), message.get("muted")
            if side not in SIDES.values() or not isinstance(muted, bool):
                raise BadMessage("mute names a side ('inmate' or 'visitors') and 'muted' true or false")
            await self._hub.mute(self._room.visit_id, str(side), muted, by=self.participant)
            return
        reason = message.get("reason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise BadMessage(f"end gives a reason of 1 to {MAX_REASON} characters")
        await self._hub.end(self._room.visit_id, reason.strip(), by=self.participant)

    async def leave(self) -> None:
        """Once, when the socket closed: the others drop their connection to it; recorded."""
        if self._left:
            return
        self._left = True
        room = self._room
        if room.members.get(self.participant) is self:
            del room.members[self.participant]
            room.silent.pop(self.token, None)
            await self._hub._depart(room, self)
        self.gone = True
        await self._hub._emit(CallEvent.LEAVE, room.visit_id, self.participant, {"role": self.role.value})


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _no_events(event: CallEvent, visit_id: str, participant: str, details: Mapping[str, str]) -> None:
    return None


class Hub:
    """The rooms of one process, by visit id. Every listener that serves calls (the portal and the visitors'
    public site) must be given the same Hub, or an inmate and a family would wait in two rooms.

    `on_event(event, visit_id, participant, details)` is awaited for every join, watch, leave, mute, unmute, end
    and refusal. A join or a watch is recorded before the member is let in (an error there refuses the join);
    an end is recorded after the sockets are closed (an error there must not keep a call running)."""

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow, on_event: EventSink = _no_events,
                 waiting_room: timedelta = WAITING_ROOM, max_sleep_s: float = MAX_SLEEP_S) -> None:
        self._clock, self._emit_to = clock, on_event
        self._waiting_room, self._max_sleep = waiting_room, max_sleep_s
        self._rooms: dict[str, _Room] = {}
        self._stopped: dict[str, str] = {}
        """Visits staff ended, with the reason: they stay ended (a rejoin would undo the supervisor's decision)."""
        self._closed = False

    async def _emit(self, event: CallEvent, visit_id: str, participant: str, details: Mapping[str, str]) -> None:
        await self._emit_to(event, visit_id, participant, details)

    def present(self, visit_id: str) -> tuple[str, ...]:
        """The participants in a visit's room now, supervisors included (for staff screens and tests)."""
        room = self._rooms.get(visit_id)
        return tuple(room.members) if room else ()

    def running(self) -> tuple[str, ...]:
        return tuple(self._rooms)

    def _refusal(self, ticket: Ticket) -> str | None:
        room = self._rooms.get(ticket.visit_id)
        if ticket.role is Role.SUPERVISOR and (ticket.legal or (room is not None and room.legal)):
            return "legal-no-supervisor"
        if ticket.visit_id in self._stopped or self._closed:
            return "ended-by-staff" if ticket.visit_id in self._stopped else "ended"
        if room is not None and (room.start, room.end, room.legal) != (ticket.start, ticket.end, ticket.legal):
            return "mismatch"
        try:
            phase = call_clock(ticket.start, ticket.end - ticket.start, self._clock(),
                               waiting_room=self._waiting_room).phase
        except VisitRuleError:
            return "mismatch"
        if phase is CallPhase.NOT_OPEN:
            return "not-open"
        if phase is CallPhase.ENDED:
            return "ended"
        return None

    async def _refuse_join(self, ticket: Ticket, code: str) -> JoinRefused:
        await self._emit(CallEvent.REFUSED, ticket.visit_id, ticket.participant,
                         {"code": code, "role": ticket.role.value})
        return JoinRefused(code, _REFUSALS[code])

    async def join(self, ticket: Ticket, send: Send, *, close: Close | None = None) -> Member:
        """Let `ticket` into its visit's room, or raise JoinRefused (recorded). `send` delivers one JSON object
        to the page; `close` closes its socket (at the end, or when a newer socket of the same participant
        replaces it). The member first gets a `welcome`; the peers are in it from the start on."""
        code = self._refusal(ticket)
        if code is not None:
            raise await self._refuse_join(ticket, code)
        supervisor = ticket.role is Role.SUPERVISOR
        await self._emit(CallEvent.WATCH if supervisor else CallEvent.JOIN, ticket.visit_id, ticket.participant,
                         {"role": ticket.role.value})
        code = self._refusal(ticket)  # the room may have ended while the join was recorded
        if code is not None:
            raise await self._refuse_join(ticket, code)
        room = self._rooms.get(ticket.visit_id)
        if room is None:
            room = self._rooms[ticket.visit_id] = _Room(ticket.visit_id, ticket.start, ticket.end, ticket.legal)
            self._start_clock(room)
        member = Member(self, room, ticket, send, close)
        previous = room.members.pop(ticket.participant, None)
        room.members[ticket.participant] = member
        if supervisor:
            room.silent[member.token] = member
        if previous is not None:
            room.silent.pop(previous.token, None)
            await self._depart(room, previous)
            await previous.send({"type": "replaced"})
            await previous.close()
        now = self._clock()
        clock = call_clock(room.start, room.end - room.start, now, waiting_room=self._waiting_room)
        welcome: dict[str, Any] = {
            "type": "welcome", "you": ticket.participant, "role": ticket.role.value,
            "phase": "open" if room.open else "waiting", "starts": _iso(room.start), "ends": _iso(room.end),
            "left_s": round(clock.left.total_seconds(), 1), "late": now > room.start,
            "warning": clock.warning // timedelta(minutes=1) if clock.warning else None,
            "muted": ticket.side in room.muted, "muted_sides": sorted(room.muted),
            "ice_servers": [dict(s) for s in ticket.ice_servers], "relay_only": ticket.relay_only}
        if room.open:
            await self._introduce(room, member, welcome)
        else:
            await member.send(welcome)
        return member

    async def _introduce(self, room: _Room, member: Member, message: dict[str, Any]) -> None:
        """Send `message` with the peers `member` is to call, and tell those peers of it. A newcomer calls those
        already there; a supervisor calls everyone and is announced to no one."""
        others = room.others(member)
        member.introduced = True
        await member.send({**message, "peers": [o.describe() for o in others if not o.silent]})
        if not member.silent:
            for other in others:
                await other.send({"type": "peer-joined", "peer": member.describe()})

    async def _depart(self, room: _Room, member: Member) -> None:
        if not member.introduced or room.ended:
            return
        for other in room.others(member):
            if member.silent:
                if not other.silent:
                    await other.send({"type": "silent-left", "id": member.token})
            else:
                await other.send({"type": "peer-left", "id": member.participant})

    def _start_clock(self, room: _Room) -> None:
        now = self._clock()
        room.open = call_clock(room.start, room.end - room.start, now,
                               waiting_room=self._waiting_room).phase is CallPhase.OPEN
        room.warned = {w for w in WARNINGS if room.end - now <= w}  # a late join's welcome says so: none follows
        room.task = asyncio.create_task(self._keep_time(room), name=f"visit-clock-{room.visit_id}")
        room.task.add_done_callback(_report_crash)

    async def _keep_time(self, room: _Room) -> None:
        """Open the room at the start, warn at 5 and 1 minutes, end at the end: sleeping on the event loop toward
        the next of those instants by the injected clock, never longer than `max_sleep_s`."""
        length = room.end - room.start
        while not room.ended:
            now = self._clock()
            clock = call_clock(room.start, length, now, waiting_room=self._waiting_room)
            if clock.phase is CallPhase.ENDED:
                await self._finish(room, "time", by="", reason="time")
                return
            if clock.phase is CallPhase.OPEN and not room.open:
                room.open = True
                for member in list(room.members.values()):
                    if not member.introduced:
                        await self._introduce(room, member, {"type": "open", "left_s": round(
                            clock.left.total_seconds(), 1)})
            if clock.warning is not None and clock.warning not in room.warned:
                room.warned |= {w for w in WARNINGS if w >= clock.warning}
                warning = {"type": "warning", "minutes_left": clock.warning // timedelta(minutes=1),
                           "left_s": round(clock.left.total_seconds(), 1)}
                await asyncio.gather(*(m.send(warning) for m in list(room.members.values())))
            deadlines = [room.end] + [room.end - w for w in WARNINGS if w not in room.warned]
            if not room.open:
                deadlines.append(room.start)
            due = min(d for d in deadlines if d > now) if any(d > now for d in deadlines) else now
            await asyncio.sleep(min(max((due - now).total_seconds(), 0.01), self._max_sleep))

    async def _finish(self, room: _Room, by_kind: str, *, by: str, reason: str) -> int:
        """Tell every member the visit ended and why, close their sockets, then record it."""
        if room.ended:
            return 0
        room.ended = True
        if self._rooms.get(room.visit_id) is room:
            del self._rooms[room.visit_id]
        if room.task is not None and room.task is not asyncio.current_task():
            room.task.cancel()
        members = list(room.members.values())
        message = {"type": "ended", "reason": reason, "by": by_kind}

        async def end(member: Member) -> None:
            await member.send(message)
            await member.close()

        await asyncio.gather(*(end(m) for m in members))
        await self._emit(CallEvent.END, room.visit_id, by, {"reason": reason, "by": by_kind})
        return len(members)

    async def end(self, visit_id: str, reason: str, by: str) -> int:
        """End a visit now (a supervisor, a lockdown): every member is told `reason` and closed, and the visit
        stays ended in this process even if nobody was in it yet. Returns how many sockets were closed."""
        self._stopped[visit_id] = reason
        room = self._rooms.get(visit_id)
        if room is None:
            await self._emit(CallEvent.END, visit_id, by, {"reason": reason, "by": "staff"})
            return 0
        return await self._finish(room, "staff", by=by, reason=reason)

    async def mute(self, visit_id: str, side: str, muted: bool, by: str) -> int:
        """Mute or unmute a side ("inmate" or "visitors"): its pages stop sending sound, the others are told (and
        stop playing it). A side stays muted for a page that reconnects. Returns how many pages were told."""
        if side not in SIDES.values():
            raise ValueError(f"a side is 'inmate' or 'visitors', not {side!r}")
        room = self._rooms.get(visit_id)
        if room is None or room.ended or (side in room.muted) == muted:
            return 0
        if muted:
            room.muted.add(side)
        else:
            room.muted.discard(side)
        members = list(room.members.values())
        await asyncio.gather(*(m.send({"type": "muted", "muted": muted}) if m.ticket.side == side
                               else m.send({"type": "side-muted", "side": side, "muted": muted}) for m in members))
        await self._emit(CallEvent.MUTE if muted else CallEvent.UNMUTE, visit_id, by, {"side": side})
        return len(members)

    async def close(self) -> None:
        """On shutdown: every room is ended (reason `shutdown`, not a staff end: the pages may join again once
        the portal is back) and no join is taken after. Safe to call more than once."""
        self._closed = True
        results = await asyncio.gather(*(self._finish(room, "shutdown", by="", reason="shutdown")
                                         for room in list(self._rooms.values())), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("a visit's end at shutdown was not recorded", exc_info=result)


def _report_crash(task: asyncio.Task[None]) -> None:
    """A clock task that failed (its end could not be recorded) is logged, not left to a garbage collector."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the clock of a visit failed", exc_info=task.exception())
