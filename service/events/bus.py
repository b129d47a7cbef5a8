"""The event bus: read the Redis Stream, fan out to this process's subscribers.

- Events reach one bounded Stream (at least the last STREAM_MAXLEN kept) through the outbox and
  its relay (`outbox.py`, `relay.py`). Stream ids are monotonic: they are the SSE `id:` lines.
- One reader per process (XREAD from the last id it saw) feeds every local subscriber: a Redis
  outage pauses it, and it resumes from that id afterwards, so live subscribers see no gap.
- A subscriber holds at most BACKLOG undelivered events; past that it is dropped (told so), and
  it resumes from the Stream with Last-Event-ID. Memory stays bounded whatever a client does.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.errors import ServiceUnavailable, ValidationFailed
from service.process.cancellation import stop_if_cancelled

STREAM = "apictl:events"
STREAM_MAXLEN = 10_000
BACKLOG = 1_000
READ_BLOCK_MS = 1_000  # below the client's socket timeout
READ_COUNT = 500
EVENT_ID_PATTERN = r"^\d{1,20}-\d{1,20}$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
log = logging.getLogger("apictl.events")


def is_event_id(text: str) -> bool:
    """A Stream id as the SSE `id:` lines give it ("ms-seq")."""
    return _EVENT_ID.match(text) is not None


def event_key(event_id: str) -> tuple[int, int]:
    """Stream ids ("ms-seq") in their true order."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    data: str  # JSON


@dataclass(eq=False)
class Subscription:
    """One SSE client: what it missed (`backlog`), then live events through `queue`.

    A None in the queue means the server is shutting down.
    """

    backlog: list[Event] = field(default_factory=list)
    truncated_from: str | None = None  # the client's Last-Event-ID is older than the Stream
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(BACKLOG))
    overflowed: bool = False

    def offer(self, item: Event | None) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True  # the queue is full, so the consumer wakes and sees this


def _events(entries: Any) -> list[Event]:
    """Stream entries, [(b"ms-seq", {b"type": ..., b"data": ...}), ...], as Events."""
    return [
        Event(entry_id.decode(), fields[b"type"].decode(), fields[b"data"].decode())
        for entry_id, fields in entries or ()
    ]


class EventBus:
    """Subscribing, for one process."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.subscriptions: set[Subscription] = set()
        self.closing = False

    async def subscribe(self, last_event_id: str | None) -> Subscription:
        """Register a subscriber; with Last-Event-ID, load what it missed from the Stream."""
        if self.closing:
            raise ServiceUnavailable("the server is shutting down")
        if last_event_id is not None and not is_event_id(last_event_id):
            raise ValidationFailed(
                "invalid Last-Event-ID",
                details=[{"field": "header.last-event-id", "message": "not an event id"}],
            )
        subscription = Subscription()
        self.subscriptions.add(subscription)  # first, so nothing falls between history and live
        try:
            if last_event_id is not None:
                await self._load_history(subscription, last_event_id)
            else:
                await self.redis.ping()
        except (RedisError, OSError) as exc:
            self.subscriptions.discard(subscription)
            raise ServiceUnavailable("the event stream is unavailable (Redis)") from exc
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    async def _load_history(self, subscription: Subscription, last_event_id: str) -> None:
        oldest = _events(await self.redis.xrange(STREAM, count=1))
        if oldest and event_key(oldest[0].id) > event_key(last_event_id):
            subscription.truncated_from = last_event_id
        subscription.backlog = _events(await self.redis.xrange(STREAM, min=f"({last_event_id}"))

    def close(self) -> None:
        """Shutdown: end every stream now rather than when the drain timeout runs out."""
        self.closing = True
        for subscription in self.subscriptions:
            subscription.offer(None)

    async def run(self) -> None:
        """The one Stream reader of this process; runs until cancelled."""
        async for event in follow(self.redis):
            for subscription in self.subscriptions:
                subscription.offer(event)


async def follow(redis: Redis, after: str | None = None) -> AsyncIterator[Event]:
    """Every event appended to the Stream after `after` (default: from now on), forever.

    A Redis outage pauses it (logged); it resumes from the last event it gave, so nothing is
    skipped.
    """
    last = after
    backoff = 0.1
    while True:
        try:
            if last is None:
                newest = _events(await redis.xrevrange(STREAM, count=1))
                last = newest[0].id if newest else "0-0"
            response: Any = await redis.xread({STREAM: last}, count=READ_COUNT, block=READ_BLOCK_MS)
            backoff = 0.1
        except (RedisError, OSError) as exc:
            stop_if_cancelled(exc)
            log.warning("event reader waiting for Redis: %s", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            continue
        for _stream, entries in response or ():
            for event in _events(entries):
                last = event.id
                yield event
