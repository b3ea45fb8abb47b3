"""The control bus: how the portal and the CLI tell every gateway node to act on open connections now.

Events are small frozen dataclasses that travel as JSON objects naming their class in `type`. Decoding is
strict (an unknown type, a missing, extra or mistyped field is a `MalformedEvent`), so a message no node
understands is logged and skipped rather than half applied. Handlers should be idempotent: after an outage a
node reloads state and may then hear an event it already reflects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol, get_args, get_type_hints

from gatehouse.errors import GatehouseError

log = logging.getLogger(__name__)


class BusUnavailable(GatehouseError):
    """The bus could not take an event; the caller refuses the action it was for and says so."""


class MalformedEvent(ValueError):
    """A message on the bus is not an event of this vocabulary."""


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
class LanguageChanged:
    """The inmate at a terminal chose another language: the next block page there must be in it, so cached
    identity for that address is stale (open connections stay open)."""

    terminal_address: str
    session: str
    language: str


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    """Policy files or curated rules changed: every node builds a new snapshot."""

    source: str


@dataclass(frozen=True, slots=True)
class InmateSuspended:
    """Kill switch for one inmate: every open connection of theirs closes and new ones are refused."""

    inmate: str
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class InmateResumed:
    inmate: str
    by: str


@dataclass(frozen=True, slots=True)
class TerminalDisabled:
    """Kill switch for one terminal, whoever is logged in at it."""

    terminal_address: str
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class Lockdown:
    """Every terminal of a unit (or of the whole facility when `unit` is "") stops at once."""

    facility: str
    unit: str
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class LockdownLifted:
    facility: str
    unit: str
    by: str


@dataclass(frozen=True, slots=True)
class GrantChanged:
    """A rule was granted to or withdrawn from one inmate: their cached grants are stale."""

    inmate: str
    rule_id: str
    added: bool


@dataclass(frozen=True, slots=True)
class EnrolmentChanged:
    """An inmate's enrolment in a course opened or closed: the sites rules scope to `courses: [course]` follow."""

    inmate: str
    course: str
    enrolled: bool


ControlEvent = (SessionStarted | SessionEnded | LanguageChanged | PolicyChanged | InmateSuspended | InmateResumed
                | TerminalDisabled | Lockdown | LockdownLifted | GrantChanged | EnrolmentChanged)
Handler = Callable[[ControlEvent], Awaitable[None]]
HealthHandler = Callable[[bool], Awaitable[None]]
"""Called with False when a bus stops hearing events and with True once it hears them again."""

EVENT_TYPES: tuple[type[ControlEvent], ...] = get_args(ControlEvent)
# The class name is the wire name: renaming an event class changes what nodes of other versions understand.
_SCHEMAS: dict[str, tuple[type[ControlEvent], dict[str, type]]] = {
    cls.__name__: (cls, {f.name: get_type_hints(cls)[f.name] for f in fields(cls)}) for cls in EVENT_TYPES}


def encode(event: ControlEvent) -> str:
    return json.dumps({"type": type(event).__name__, **asdict(event)}, separators=(",", ":"), ensure_ascii=False)


def decode(data: str | bytes) -> ControlEvent:
    """The event a message carries; `MalformedEvent` says what is wrong with one that carries none."""
    try:
        body: Any = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise MalformedEvent(f"not a JSON object but {type(body).__name__}")
    if "type" not in body:
        raise MalformedEvent("no type field")
    kind = body.pop("type")
    if not isinstance(kind, str) or kind not in _SCHEMAS:
        raise MalformedEvent(f"unknown event type {kind!r}")
    cls, schema = _SCHEMAS[kind]
    if missing := [name for name in schema if name not in body]:
        raise MalformedEvent(f"{kind} lacks {', '.join(missing)}")
    if extra := sorted(name for name in body if name not in schema):
        raise MalformedEvent(f"{kind} has unknown fields {', '.join(extra)}")
    for name, expected in schema.items():
        if type(body[name]) is not expected:  # exact: a JSON number is no bool, true is no string
            raise MalformedEvent(f"{kind}.{name} must be {expected.__name__}, not {type(body[name]).__name__}")
    return cls(**body)


async def dispatch(handlers: Iterable[Handler], event: ControlEvent) -> None:
    """Every handler in order; one that fails is logged and the others still run."""
    for handler in list(handlers):
        try:
            await handler(event)
        except Exception:
            log.exception("control bus: handler %s failed on %r", getattr(handler, "__qualname__", handler), event)


async def announce(handlers: Iterable[HealthHandler], healthy: bool) -> None:
    for handler in list(handlers):
        try:
            await handler(healthy)
        except Exception:
            log.exception("control bus: health handler %s failed", getattr(handler, "__qualname__", handler))


class ControlBus(Protocol):
    @property
    def healthy(self) -> bool:
        """True while this node hears every event; while it is False a gateway cannot know of a lockdown."""

    async def publish(self, event: ControlEvent) -> None:
        """Hand the event to every node, this one included, or raise `BusUnavailable`."""

    def subscribe(self, handler: Handler) -> None: ...

    def on_health(self, handler: HealthHandler) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class InProcessBus:
    """The embedded default: portal and gateway share one process, handlers run before publish returns."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    @property
    def healthy(self) -> bool:
        return True

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_health(self, handler: HealthHandler) -> None:
        """Nothing to report: a bus inside the process never stops hearing."""

    async def publish(self, event: ControlEvent) -> None:
        await dispatch(self._handlers, event)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def bus_for(redis_url: str, prefix: str = "gh:bus:") -> ControlBus:
    if not redis_url:
        return InProcessBus()
    from gatehouse.bus_redis import RedisBus  # it builds on this module's events

    return RedisBus.from_url(redis_url, prefix=prefix)
