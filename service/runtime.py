"""Everything a request or a CLI command works with, opened once and closed once.

The API creates one Runtime in its lifespan (listening for token invalidations); each CLI
command opens a small one for its own run. Service functions take it as their first argument
(typed as the parts they use, service.backend.Backend).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis

from service.auth.client_ip import Network, parse_networks
from service.auth.passwords import Passwords
from service.auth.ratelimit import ApiLimiter, LoginLimiter
from service.auth.tokens import Tokens
from service.config import Settings
from service.db import Database
from service.events.bus import EventBus
from service.events.relay import Relay
from service.idempotency import IdempotencyKeys
from service.process.cancellation import cancel_and_wait
from service.process.open_files import stream_limit
from service.process.redis_client import create_redis
from service.tracing.instruments import UNTRACED, Instruments
from service.webhooks.delivery import Dispatcher

TASK_STOP_SECONDS = 2.0


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: Redis
    passwords: Passwords
    tokens: Tokens
    limiter: LoginLimiter
    api_limiter: ApiLimiter | None  # None: APICTL_API_RATE_LIMIT=off
    events: EventBus
    relay: Relay
    idempotency: IdempotencyKeys
    webhooks: Dispatcher
    trusted_proxies: list[Network]
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(
        cls, settings: Settings, *, serving: bool, instruments: Instruments = UNTRACED
    ) -> Runtime:
        """Connect to PostgreSQL (and, lazily, Redis); `serving` starts background listeners;
        clients are built from `instruments` (service.tracing: traced or not)."""
        db = Database(settings, instruments.connection_class)
        await db.open()
        redis = create_redis(settings, instruments.redis_class)
        webhooks = Dispatcher(settings, db, instruments)
        runtime = cls(
            settings=settings,
            db=db,
            redis=redis,
            passwords=Passwords(spans=instruments.spans),
            tokens=Tokens(db, redis),
            limiter=LoginLimiter(redis, settings.login_rate_limit),
            api_limiter=ApiLimiter(redis, settings.api_rate_limit)
            if settings.api_rate_limit
            else None,
            events=EventBus(redis, limit=stream_limit(settings)),
            relay=Relay(settings, db, redis, instruments, delivering=webhooks.wake),
            idempotency=IdempotencyKeys(db),
            webhooks=webhooks,
            trusted_proxies=parse_networks(settings.trusted_proxies),
        )
        if serving:
            jobs = (
                runtime.tokens.listen(),
                runtime.events.run(),
                runtime.events.sweep_forever(),
                runtime.relay.run(),
                runtime.idempotency.sweep_forever(),
                runtime.webhooks.run(),
                *([runtime.api_limiter.sync_forever()] if runtime.api_limiter else []),
            )
            for job in jobs:
                runtime._tasks.append(asyncio.create_task(job))
        return runtime

    def stop_serving(self) -> None:
        """The worker stops accepting: end the event streams, and let the webhook attempts in
        flight finish within the same APICTL_SHUTDOWN_TIMEOUT as the requests in flight."""
        self.events.close()
        self.webhooks.stop(self.settings.shutdown_timeout)

    async def close(self) -> None:
        # Bounded: a stuck background task must not hold shutdown hostage.
        await self.webhooks.finish(self.settings.shutdown_timeout)
        await cancel_and_wait(self._tasks, TASK_STOP_SECONDS)
        await self.relay.close()
        self.passwords.close()
        await self.redis.aclose(close_connection_pool=True)
        await self.db.close()
