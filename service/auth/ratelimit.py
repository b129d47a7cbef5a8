"""The login rate limit: fixed windows in Redis, shared by every instance.

When Redis cannot be reached the limit falls back to the same windows kept in this process
(and says so in the log and /ready): weaker across instances, but never no limit at all.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.config import RateLimit

KEY_PREFIX = "apictl:login:"
LOCAL_MAX_KEYS = 100_000
log = logging.getLogger("apictl.auth")


class _LocalWindows:
    """The per-process fallback: key -> (count, window end)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}

    def hit(self, key: str, period: int) -> tuple[int, int]:
        now = time.monotonic()
        if len(self._windows) >= LOCAL_MAX_KEYS:
            self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
        count, ends = self._windows.get(key, (0, now + period))
        if ends <= now:
            count, ends = 0, now + period
        self._windows[key] = (count + 1, ends)
        return count + 1, max(1, round(ends - now))


class LoginLimiter:
    """Counts login attempts per key (client IP, email); says how long to wait when over."""

    def __init__(self, redis: Redis, limit: RateLimit) -> None:
        self.redis = redis
        self.limit = limit
        self.local = _LocalWindows()
        self.degraded = False
        self.refused = 0

    async def hit(self, *keys: str) -> int | None:
        """Count one attempt for each key; seconds to wait if any is over the limit, else None."""
        try:
            windows = await self._hit_redis(keys)
            if self.degraded:
                log.warning("login rate limit back on Redis")
            self.degraded = False
        except RedisError as exc:
            if not self.degraded:
                log.warning("login rate limit falls back to per-process windows: %s", exc)
            self.degraded = True
            windows = [self.local.hit(key, self.limit.period) for key in keys]
        waits = [ttl for count, ttl in windows if count > self.limit.count]
        if not waits:
            return None
        self.refused += 1
        return max(waits)

    async def _hit_redis(self, keys: tuple[str, ...]) -> list[tuple[int, int]]:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                full = KEY_PREFIX + key
                pipe.set(full, 0, ex=self.limit.period, nx=True)
                pipe.incr(full)
                pipe.ttl(full)
            results = await pipe.execute()
        return [
            (int(results[i + 1]), max(1, int(results[i + 2]))) for i in range(0, len(results), 3)
        ]
