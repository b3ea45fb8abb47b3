"""One way to connect to Redis for the shared stores (rate limits, quotas, the control bus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

T = TypeVar("T")


def bounded_redis(url: str, connections: int = 50, timeout: float = 2.0) -> Redis:
    """A client whose pool makes callers wait (up to `timeout`) for a free connection: redis-py's default pool
    raises "Too many connections" past 100 commands in flight, which would refuse a burst that Redis could
    serve. Socket timeouts bound a Redis that accepts connections but never answers."""
    pool = BlockingConnectionPool.from_url(url, max_connections=connections, timeout=timeout,
                                           socket_timeout=timeout, socket_connect_timeout=timeout)
    return Redis.from_pool(pool)


async def once_more_on_reconnect(redis: Redis, call: Callable[[], Awaitable[T]]) -> T:
    """Run `call`; if its connection broke, drop the idle connections and run it once more on a fresh one.

    After Redis restarts, every connection pooled before is dead and fails on its first use: without this, each
    cost a refused request once Redis was back. A Redis that is really down fails the second try as well, so the
    caller still refuses; a timeout (Redis hung, or no free connection in the pool) is not tried again, since
    that would double the wait of a request that is refused anyway.
    """
    try:
        return await call()
    except RedisConnectionError as exc:
        if isinstance(exc.__cause__, TimeoutError):  # "No connection available." after waiting for the pool
            raise
    await redis.connection_pool.disconnect(inuse_connections=False)
    return await call()
