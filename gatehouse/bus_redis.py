"""The control bus between nodes: one Redis pub/sub channel that every node publishes on and listens to.

Redis pub/sub keeps no history: a node that is not subscribed when an event is published never hears it. So
the listener says when it cannot hear (`healthy` False, health handlers called) and the gateway refuses
traffic until it hears again and has reloaded what it may have missed: a lockdown published during an outage
must not leave that node's traffic flowing. Publishing while Redis does not answer raises `BusUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gatehouse.bus import (
    BusUnavailable,
    ControlEvent,
    Handler,
    HealthHandler,
    MalformedEvent,
    announce,
    decode,
    dispatch,
    encode,
)
from gatehouse.redisconn import bounded_redis

log = logging.getLogger(__name__)


class RedisBus:
    """Events go out with one PUBLISH and come back to every subscribed node, this one included, exactly once
    per subscription: publishing never calls this node's handlers directly."""

    def __init__(self, redis: Redis, prefix: str = "gh:bus:", *, ping_every: float = 1.0,
                 retry_from: float = 0.1, retry_up_to: float = 2.0, timeout: float = 2.0) -> None:
        """`ping_every`: seconds of silence after which the listener pings Redis (as long again without an answer
        is a loss); `retry_from` doubling up to `retry_up_to`: seconds between attempts to subscribe again;
        `timeout`: seconds Redis has to confirm a subscription."""
        # No retries inside redis-py: a silent reconnect would resubscribe without saying that events were missed,
        # and retrying with backoff would hold a refused action for seconds. The bus owns (and closes) the client.
        redis.set_retry(Retry(NoBackoff(), 0))
        self._redis = redis
        self.channel = f"{prefix}control"
        self._ping_every = ping_every
        self._retry_from, self._retry_up_to = retry_from, retry_up_to
        self._timeout = timeout
        self._handlers: list[Handler] = []
        self._health: list[HealthHandler] = []
        self._healthy = False
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()

    @classmethod
    def from_url(cls, url: str, prefix: str = "gh:bus:") -> RedisBus:
        return cls(bounded_redis(url), prefix=prefix)

    @property
    def healthy(self) -> bool:
        return self._healthy

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_health(self, handler: HealthHandler) -> None:
        self._health.append(handler)

    async def publish(self, event: ControlEvent) -> None:
        try:
            await self._redis.publish(self.channel, encode(event))
        except RedisError as exc:
            self._down(exc)
            raise BusUnavailable("the control bus (Redis) does not answer, so the gateways may not have heard this; "
                                 "try again") from exc
        if self._task is None or self._healthy:
            self._up()

    async def start(self) -> None:
        """Listen from now on; returns once the first subscription is confirmed or has failed (then the listener
        keeps trying by itself and `healthy` stays False until it succeeds)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name=f"bus-listener:{self.channel}")
        await self._settled.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._healthy = False
        await self._redis.aclose()

    def _down(self, exc: Exception) -> None:
        if not self._failing:
            log.error("control bus: Redis does not answer (%s); control actions are refused and control events "
                      "go unheard until it does", exc)
            self._failing = True

    def _up(self) -> None:
        if self._failing:
            log.warning("control bus: Redis answers again")
            self._failing = False

    async def _listen(self) -> None:
        delay = self._retry_from
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await self._subscribe(pubsub)
                    delay = self._retry_from
                    await announce(self._health, True)  # before `healthy` reads True: what it reloads is in place
                    self._healthy = True
                    self._up()
                    self._settled.set()
                    await self._receive(pubsub)
            except (RedisError, OSError) as exc:
                self._down(exc)
                if self._healthy:
                    self._healthy = False
                    await announce(self._health, False)
            self._settled.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_up_to)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(self.channel)
        while True:  # only once Redis confirms is every later event sure to reach this node
            message = await pubsub.get_message(timeout=self._timeout)
            if message is None:
                raise RedisTimeoutError(f"no confirmation of the subscription within {self._timeout} s")
            if message["type"] == "subscribe":
                return

    async def _receive(self, pubsub: PubSub) -> None:
        """Deliver messages in order until the connection fails, or falls silent even to a ping (a partition
        sends no reset: without the ping the listener would wait for ever while the gateway serves)."""
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self._ping_every)
            if message is None:
                if pinged:
                    raise RedisTimeoutError(f"no answer to a ping within {self._ping_every} s")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message["type"] != "message":
                continue
            try:
                event = decode(message["data"])
            except MalformedEvent as exc:
                log.error("control bus: skipped a message on %s: %s: %.200r", self.channel, exc, message["data"])
                continue
            await dispatch(self._handlers, event)
