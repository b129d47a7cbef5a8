"""The shared redis-py asyncio client: bounded pool, bounded socket waits, retries."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from service.config import Settings

SOCKET_TIMEOUT = 2.0
POOL_SIZE = 50


def create_redis(settings: Settings, client_class: type[Redis] = Redis) -> Redis:
    """A client that connects lazily: a Redis outage degrades features, it never blocks start-up."""
    assert settings.redis_url is not None, "resolve embedded servers first"
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=POOL_SIZE,
        timeout=SOCKET_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        health_check_interval=30,
    )
    return client_class(connection_pool=pool)
