"""Rate limits: logins (fixed windows in Redis) and the API (`ApiLimiter`: windows counted in
each process and shared through Redis in batches), each shared by every instance.

When Redis cannot be reached a limit falls back to the same windows kept in this process
(and says so in the log and /ready): weaker across instances, but never no limit at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.config import RateLimit
from service.process.cancellation import stop_if_cancelled

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


API_KEY_PREFIX = "apictl:api:"
SYNC_SECONDS = 1.0  # how often local counts are added to Redis's (the bound needs no more)
# KEYS: window counters; ARGV: their expiry, then each one's increment. Returns the counts.
ADD = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCRBY', key, ARGV[i + 1])
  redis.call('EXPIRE', key, ARGV[1])
end
return counts
"""
BATCH_SHARE = 20  # each process admits at most limit/20 (5 %) on its own between syncs


@dataclass(slots=True)
class _Window:
    """One caller's fixed window as this process sees it."""

    number: int  # which window (time // period)
    shared: int = 0  # the count in Redis at the last sync (every instance's requests)
    pending: int = 0  # admitted here since then, not yet in Redis


@dataclass(frozen=True, slots=True)
class Verdict:
    admitted: bool
    remaining: int
    reset: int  # seconds until the window ends


class ApiLimiter:
    """The API rate limit per caller: fixed windows counted here and shared through Redis.

    No Redis round trip per request: a request is admitted against the last shared count plus
    what this process admitted since, and a task adds the local counts to Redis every
    SYNC_SECONDS. Within limit/BATCH_SHARE of the limit, or past that many unsynced admissions,
    the request syncs first, so N instances admit at most (N - 1) x limit/BATCH_SHARE over the
    limit. Redis down: the windows go on per process (`degraded`), never no limit.
    """

    def __init__(self, redis: Redis, limit: RateLimit) -> None:
        self.redis, self.limit = redis, limit
        self.batch = max(1, limit.count // BATCH_SHARE)
        self.windows: dict[str, _Window] = {}
        self.degraded = False
        self.refused = 0
        self._add = redis.register_script(ADD)
        self.policy = b'"api";q=%d;w=%d' % (limit.count, limit.period)

    async def hit(self, caller: str) -> Verdict:
        now = time.time()
        period = self.limit.period
        number = int(now // period)
        window = self.windows.get(caller)
        if window is None or window.number != number:
            if len(self.windows) >= LOCAL_MAX_KEYS:
                self.windows = {k: w for k, w in self.windows.items() if w.number == number}
            window = self.windows[caller] = _Window(number)
        count = window.shared + window.pending
        if count + 1 > self.limit.count - self.batch or window.pending >= self.batch:
            await self._sync(caller, window)
            count = window.shared + window.pending
        reset = max(1, int((number + 1) * period - now))
        if count >= self.limit.count:
            self.refused += 1
            return Verdict(False, 0, reset)
        window.pending += 1
        return Verdict(True, self.limit.count - count - 1, reset)

    async def _sync(self, caller: str, window: _Window) -> None:
        """Add `window.pending` to Redis's count and learn every instance's."""
        await self._sync_all([(caller, window)])

    async def _sync_all(self, windows: list[tuple[str, _Window]]) -> None:
        """One script call (one command, one round trip) for every window given."""
        keys = [f"{API_KEY_PREFIX}{caller}:{window.number}" for caller, window in windows]
        sent = [window.pending for _, window in windows]
        for _, window in windows:
            window.pending = 0  # admissions meanwhile wait for the next sync
        try:
            counts = await self._add(keys=keys, args=[self.limit.period + 1, *sent])
        except RedisError as exc:
            stop_if_cancelled(exc)
            if not self.degraded:
                log.warning("API rate limit falls back to per-process windows: %s", exc)
            self.degraded = True
            for (_, window), n in zip(windows, sent, strict=True):
                window.shared += n  # counted here alone until Redis is back
            return
        if self.degraded:
            log.warning("API rate limit back on Redis")
        self.degraded = False
        for (_, window), count in zip(windows, counts, strict=True):
            window.shared = int(count)

    async def sync_forever(self) -> None:
        """Push every window's pending count to Redis in one round trip, every SYNC_SECONDS;
        until cancelled."""
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            pending = [(caller, w) for caller, w in self.windows.items() if w.pending]
            if pending:
                await self._sync_all(pending)
