"""One way to connect to Redis for the shared stores (rate limits, quotas, the control bus)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def bounded_redis(url: str, connections: int = 50, timeout: float = 2.0) -> Redis:
    """A client whose pool makes callers wait (up to `timeout`) for a free connection: redis-py's default pool
    raises "Too many connections" past 100 commands in flight, which would refuse a burst that Redis could
    serve. Socket timeouts bound a Redis that accepts connections but never answers."""
    pool = BlockingConnectionPool.from_url(url, max_connections=connections, timeout=timeout,
                                           socket_timeout=timeout, socket_connect_timeout=timeout)
    return Redis.from_pool(pool)
