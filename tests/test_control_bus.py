"""One contract for both control buses (in process, and Redis between nodes); a node that cannot hear says so."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from gatehouse.bus import (
    EVENT_TYPES,
    BusUnavailable,
    ControlBus,
    ControlEvent,
    EnrolmentChanged,
    GrantChanged,
    Handler,
    InmateResumed,
    InmateSuspended,
    InProcessBus,
    LanguageChanged,
    Lockdown,
    LockdownLifted,
    MalformedEvent,
    PolicyChanged,
    SessionEnded,
    SessionStarted,
    TerminalDisabled,
    bus_for,
    decode,
    encode,
)
from gatehouse.bus_redis import RedisBus
from tests.conftest import REDIS_ENV
from tests.helpers import free_port, start_redis

SAMPLES: list[ControlEvent] = [
    SessionStarted("10.20.0.7", "s-1"),
    SessionEnded("10.20.0.7", "s-1", "logout"),
    LanguageChanged("10.20.0.7", "s-1", "fr"),
    PolicyChanged("files"),
    InmateSuspended("A1234", "contrebande trouvée à la fouille", "security:jdoe"),
    InmateResumed("A1234", "security:jdoe"),
    TerminalDisabled("10.20.0.7", "case opened", "security:jdoe"),
    Lockdown("brugge", "B-wing", "incident", "security:jdoe"),
    Lockdown("brugge", "", "fire alarm", "cli:root"),
    LockdownLifted("brugge", "", "cli:root"),
    GrantChanged("A1234", "visit-42", True),
    GrantChanged("A1234", "visit-42", False),
    EnrolmentChanged("A1234", "job-letters", True),
    EnrolmentChanged("A1234", "job-letters", False),
]


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set")
    return url


def fresh_prefix() -> str:
    """Tests and runs never hear each other's events on the shared Redis."""
    return f"gh:test:{secrets.token_hex(6)}:bus:"


@pytest.fixture(params=["in-process", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[ControlBus]:
    if request.param == "in-process":
        made: ControlBus = InProcessBus()
    else:
        made = RedisBus.from_url(request.getfixturevalue("redis_url"), prefix=fresh_prefix())
    await made.start()
    yield made
    await made.close()


class Heard:
    """A handler that keeps what it hears and when, so a test can wait for a number of events."""

    def __init__(self) -> None:
        self.events: list[ControlEvent] = []
        self.at: list[float] = []
        self._more = asyncio.Event()

    async def __call__(self, event: ControlEvent) -> None:
        self.events.append(event)
        self.at.append(time.perf_counter())
        self._more.set()

    async def wait_for(self, count: int, within: float = 1.0) -> None:
        async with asyncio.timeout(within):
            while len(self.events) < count:
                self._more.clear()
                await self._more.wait()


class Health:
    """A health handler that keeps each report with what the bus said about itself at that moment."""

    def __init__(self, bus: ControlBus) -> None:
        self.bus = bus
        self.seen: list[bool] = []
        self.healthy_during: list[bool] = []
        self._more = asyncio.Event()

    async def __call__(self, healthy: bool) -> None:
        self.seen.append(healthy)
        self.healthy_during.append(self.bus.healthy)
        self._more.set()

    async def wait_for(self, healthy: bool, within: float) -> None:
        async with asyncio.timeout(within):
            while not self.seen or self.seen[-1] is not healthy:
                self._more.clear()
                await self._more.wait()


async def until(condition: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)


def bus_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("gatehouse.bus") and r.levelname == "ERROR"]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_each_event_travels_as_json_naming_its_type_and_comes_back_equal(event: ControlEvent) -> None:
    wire = encode(event)
    assert json.loads(wire)["type"] == type(event).__name__
    assert decode(wire) == event
    assert decode(wire.encode()) == event, "Redis hands messages over as bytes"


def test_the_samples_cover_every_event_type() -> None:
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize(("raw", "problem"), [
    (b"not json", "not JSON"),
    (b"\xff\xfe{}", "not JSON"),
    (b"[]", "not a JSON object but list"),
    (b'"Lockdown"', "not a JSON object but str"),
    (b'{"facility": "brugge"}', "no type field"),
    (b'{"type": null}', "unknown event type None"),
    (b'{"type": "Evacuate", "facility": "brugge"}', "unknown event type 'Evacuate'"),
    (b'{"type": 7}', "unknown event type 7"),
    (b'{"type": "Lockdown", "facility": "brugge", "reason": "r", "by": "b"}', "Lockdown lacks unit"),
    (b'{"type": "InmateResumed", "inmate": "A1", "by": "b", "until": "x"}', "InmateResumed has unknown fields until"),
    (b'{"type": "GrantChanged", "inmate": "A1", "rule_id": "r", "added": "yes"}', "added must be bool, not str"),
    (b'{"type": "GrantChanged", "inmate": "A1", "rule_id": "r", "added": 1}', "added must be bool, not int"),
    (b'{"type": "InmateResumed", "inmate": 1234, "by": "b"}', "inmate must be str, not int"),
    (b'{"type": "PolicyChanged", "source": true}', "source must be str, not bool"),
    (b'{"type": "PolicyChanged", "source": null}', "source must be str, not NoneType"),
])
def test_a_message_that_is_no_event_is_refused_saying_why(raw: bytes, problem: str) -> None:
    with pytest.raises(MalformedEvent) as refused:
        decode(raw)
    assert problem in str(refused.value)


async def test_every_event_type_reaches_a_subscriber_as_sent(bus: ControlBus) -> None:
    heard = Heard()
    bus.subscribe(heard)
    for event in SAMPLES:
        await bus.publish(event)
    await heard.wait_for(len(SAMPLES))
    assert heard.events == SAMPLES


async def test_events_arrive_in_the_order_they_were_published(bus: ControlBus) -> None:
    heard = Heard()
    bus.subscribe(heard)
    sent = [PolicyChanged(f"change-{i}") for i in range(300)]
    for event in sent:
        await bus.publish(event)
    await heard.wait_for(len(sent), within=3)
    assert heard.events == sent


async def test_every_subscriber_hears_every_event_in_the_order_they_subscribed(bus: ControlBus) -> None:
    calls: list[tuple[str, ControlEvent]] = []

    def named(name: str) -> Handler:
        async def handler(event: ControlEvent) -> None:
            calls.append((name, event))
        return handler

    last = Heard()
    for name in ("front", "policy", "audit"):
        bus.subscribe(named(name))
    bus.subscribe(last)
    for event in SAMPLES[:3]:
        await bus.publish(event)
    await last.wait_for(3)
    assert calls == [(name, event) for event in SAMPLES[:3] for name in ("front", "policy", "audit")]


async def test_a_failing_handler_does_not_stop_the_others_nor_the_bus(
        bus: ControlBus, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(event: ControlEvent) -> None:
        raise RuntimeError(f"cannot apply {event}")

    heard = Heard()
    bus.subscribe(broken)
    bus.subscribe(heard)
    for event in SAMPLES[:3]:
        await bus.publish(event)
    await heard.wait_for(3)
    assert heard.events == SAMPLES[:3]
    failures = [r for r in caplog.records if r.name == "gatehouse.bus" and "broken" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info for r in failures), "each failure is logged with its traceback"
    assert bus.healthy


async def test_a_started_bus_is_healthy(bus: ControlBus) -> None:
    assert bus.healthy


def test_bus_for_an_empty_url_is_in_process_and_for_a_url_is_redis() -> None:
    assert isinstance(bus_for(""), InProcessBus)
    assert isinstance(bus_for("redis://127.0.0.1:6379/0"), RedisBus)


async def test_two_nodes_each_hear_every_event_of_either_once_within_a_second(redis_url: str) -> None:
    prefix = fresh_prefix()
    nodes = [RedisBus.from_url(redis_url, prefix=prefix) for _ in range(2)]
    heard = [Heard(), Heard()]
    sent_at: dict[str, float] = {}
    try:
        for node, handler in zip(nodes, heard, strict=True):
            node.subscribe(handler)
            await node.start()
        for i in range(5):
            for n, node in enumerate(nodes):
                source = f"node{n}-{i}"
                sent_at[source] = time.perf_counter()
                await node.publish(PolicyChanged(source))
        for handler in heard:
            await handler.wait_for(10)
        await asyncio.sleep(0.3)  # room for a duplicate to show up
    finally:
        for node in nodes:
            await node.close()
    for handler in heard:
        sources = [e.source for e in handler.events if isinstance(e, PolicyChanged)]
        assert sorted(sources) == sorted(sent_at), "every event once, none twice, whichever node published it"
        for n in range(2):
            assert [s for s in sources if s.startswith(f"node{n}")] == [f"node{n}-{i}" for i in range(5)]
        latencies = [at - sent_at[s] for s, at in zip(sources, handler.at, strict=True)]
        assert max(latencies) < 1.0


async def test_a_malformed_message_on_the_channel_is_skipped_and_logged(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    bus = RedisBus.from_url(redis_url, prefix=fresh_prefix())
    heard = Heard()
    bus.subscribe(heard)
    raw = Redis.from_url(redis_url)
    try:
        await bus.start()
        await raw.publish(bus.channel, b"\xff not json")
        await raw.publish(bus.channel, json.dumps({"type": "Evacuate", "facility": "brugge"}))
        await raw.publish(bus.channel, json.dumps({"type": "Lockdown", "facility": "brugge"}))
        await bus.publish(Lockdown("brugge", "", "drill", "cli:root"))
        await heard.wait_for(1)
        assert heard.events == [Lockdown("brugge", "", "drill", "cli:root")]
        assert bus.healthy
    finally:
        await raw.aclose()
        await bus.close()
    errors = bus_errors(caplog)
    assert len(errors) == 3 and all("skipped a message" in e for e in errors)
    assert "'Evacuate'" in errors[1] and "lacks unit, reason, by" in errors[2]


async def test_redis_that_does_not_answer_refuses_to_publish(caplog: pytest.LogCaptureFixture) -> None:
    bus = RedisBus.from_url("redis://127.0.0.1:1/0", prefix=fresh_prefix())
    try:
        await asyncio.wait_for(bus.start(), 5)
        assert not bus.healthy, "start returns, unhealthy, and the listener keeps trying by itself"
        for _ in range(3):
            started = time.perf_counter()
            with pytest.raises(BusUnavailable, match="does not answer"):
                await bus.publish(Lockdown("brugge", "", "fire alarm", "cli:root"))
            assert time.perf_counter() - started < 0.5, "refused at once, not after rounds of retries"
        await asyncio.sleep(0.5)  # the listener tries again meanwhile
    finally:
        await bus.close()
    assert len(bus_errors(caplog)) == 1, "the outage is logged once, not once per attempt"


async def test_a_node_whose_redis_dies_says_so_refuses_and_hears_again_by_itself(
        caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    server = await start_redis(port)
    nodes = [RedisBus.from_url(f"redis://127.0.0.1:{port}/0") for _ in range(2)]
    heard = [Heard(), Heard()]
    health = Health(nodes[0])
    nodes[0].on_health(health)
    loop = asyncio.get_running_loop()
    try:
        for node, handler in zip(nodes, heard, strict=True):
            node.subscribe(handler)
            await node.start()
        await nodes[0].publish(PolicyChanged("before"))
        for handler in heard:
            await handler.wait_for(1)

        server.kill()
        await server.wait()
        killed = loop.time()
        await health.wait_for(False, within=2.5)
        assert loop.time() - killed < 2
        await until(lambda: not nodes[1].healthy, within=2.5)
        with pytest.raises(BusUnavailable):
            await nodes[1].publish(Lockdown("brugge", "", "incident", "security:jdoe"))
        await asyncio.sleep(1.0)  # several attempts to resubscribe fail meanwhile

        server = await start_redis(port)
        await health.wait_for(True, within=5)
        await until(lambda: nodes[1].healthy, within=5)
        await nodes[1].publish(PolicyChanged("after"))
        for handler in heard:
            await handler.wait_for(2)
            assert handler.events == [PolicyChanged("before"), PolicyChanged("after")]
    finally:
        for node in nodes:
            await asyncio.wait_for(node.close(), 2)
        if server.returncode is None:
            server.kill()
            await server.wait()
    assert health.seen == [True, False, True], "one report per change, none while retrying"
    assert health.healthy_during == [False, False, False], "healthy reads True only once the handlers have run"
    assert len(bus_errors(caplog)) == 2, "one line per node for the outage"
    recovered = [r for r in caplog.records if r.name == "gatehouse.bus_redis" and "answers again" in r.getMessage()]
    assert len(recovered) == 2


async def test_a_restart_however_quick_is_reported_since_events_were_missed_meanwhile() -> None:
    port = free_port()
    server = await start_redis(port)
    bus = RedisBus(Redis(port=port))  # a client made with redis-py's defaults, which retry and resubscribe quietly
    health = Health(bus)
    bus.on_health(health)
    try:
        await bus.start()
        server.kill()
        await server.wait()
        server = await start_redis(port)
        await health.wait_for(True, within=3)
        assert health.seen == [True, False, True]
    finally:
        await asyncio.wait_for(bus.close(), 2)
        server.kill()
        await server.wait()


class Link:
    """A TCP relay to Redis that can stop relaying without closing anything, as a cut network link does."""

    def __init__(self, target_port: int) -> None:
        self.cut = False
        self._target = target_port
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while self.cut:
                    await asyncio.sleep(0.02)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        self.cut = False
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_link_that_falls_silent_is_noticed_within_two_seconds() -> None:
    """No reset arrives when a link is cut: the listener's ping finds out, and publishing refuses in seconds."""
    port = free_port()
    server = await start_redis(port)
    link = Link(port)
    bus = RedisBus.from_url(f"redis://127.0.0.1:{await link.start()}/0")
    heard = Heard()
    bus.subscribe(heard)
    loop = asyncio.get_running_loop()
    try:
        await bus.publish(PolicyChanged("before anyone listens"))  # leaves a connection in the pool, handshake done
        link.cut = True
        await bus.start()
        assert not bus.healthy, "healthy only once Redis confirms the subscription"
        link.cut = False
        await until(lambda: bus.healthy, within=3)
        link.cut = True
        cut = loop.time()
        await until(lambda: not bus.healthy, within=3)
        assert loop.time() - cut < 2.5, "a second of silence, a ping, a second without its answer"
        started = loop.time()
        with pytest.raises(BusUnavailable):
            await bus.publish(Lockdown("brugge", "", "incident", "security:jdoe"))
        assert loop.time() - started < 3

        link.cut = False
        await until(lambda: bus.healthy, within=5)
        await bus.publish(PolicyChanged("after"))
        await until(lambda: PolicyChanged("after") in heard.events, within=1)
    finally:
        await asyncio.wait_for(bus.close(), 2)
        await link.close()
        server.kill()
        await server.wait()
