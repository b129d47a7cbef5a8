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
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.errors import ServiceUnavailable, ValidationFailed
from service.process.cancellation import stop_if_cancelled
from service.process.memory import give_back_free_memory

STREAM = "apictl:events"
STREAM_MAXLEN = 10_000
BACKLOG = 1_000  # events a client may be behind before it is dropped
KEEPALIVE_SECONDS = 15.0
SEND_TIMEOUT_SECONDS = 10.0  # a write stuck this long ends the stream
SWEEP_SECONDS = 5.0
TRIM_AFTER_CLOSED = 1_000  # streams closed since memory was last given back that make it worth it
TRIM_FLOOR = 100  # ... or half of them, if that many
RETRY_MS = 2000
OPENING = f"retry: {RETRY_MS}\n\n".encode()
STALLED = "the client stopped reading"  # the cancellation message of a stalled stream
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


class Event:
    """One Stream entry, with its SSE frame encoded once for every client it goes to."""

    __slots__ = ("data", "frame", "id", "key", "type")

    def __init__(self, event_id: str, event_type: str, data: str) -> None:
        self.id = event_id
        self.type = event_type
        self.data = data  # JSON
        self.key = event_key(event_id)
        self.frame = frame(event_id, event_type, data)

    def __repr__(self) -> str:
        return f"Event({self.id!r}, {self.type!r}, {self.data!r})"


def frame(event_id: str | None, event_type: str, data: str) -> bytes:
    """An SSE event as it goes on the wire."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event_type}\ndata: {data}\n\n".encode()


KEEPALIVE = b": keep-alive\n\n"
SHUTTING_DOWN = b": server shutting down\n\n"
DROPPED = frame(None, "stream.dropped", '{"reason":"client too slow; reconnect"}')


class Writer(Protocol):
    """Writes to a stream's client at once, or declines (service.http.frameworks.uvicorn)."""

    def write(self, chunk: bytes) -> bool: ...


class Subscription:
    """One SSE client's place in the fan-out: what is to be written to it next, and the one
    future its stream's task waits on when there is nothing.

    Nothing else per client: no queue, timer or task of its own. Frames are the events' own
    bytes (shared by every client); `ended` says why the stream must end, once it must. While
    the task sleeps, what comes is written at once through `direct` where the server allows
    it; otherwise, or when the client is slow to read, it waits in `pending` for the task.
    """

    __slots__ = (
        "after", "direct", "ended", "loading", "pending", "sending_since", "task", "waiter",
        "written_at",
    )  # fmt: skip

    def __init__(self, resuming: bool = False) -> None:
        self.pending: list[bytes] = [] if resuming else [OPENING]  # resuming: see `take`
        # while its history is read: the live events that come meanwhile, sorted out by `take`
        self.loading: list[Event] | None = [] if resuming else None
        self.after = (0, 0)  # the key of the last event taken: older ones are not taken again
        self.ended: bytes | None = None  # the stream's last words (b"" for none) once it must end
        self.waiter: asyncio.Future[None] | None = None
        self.written_at = 0.0  # loop time of the last write
        self.sending_since = 0.0  # loop time a write began, while it has not returned
        self.task: asyncio.Task[object] | None = None  # the stream's task, to end a stalled write
        self.direct: Writer | None = None

    def take(self, opening: bytes, history: list[Event]) -> None:
        """The stream's opening and events from the Stream's history, ahead of the live ones
        that came while it was read and that it does not already hold."""
        live, self.loading = self.loading or [], None
        # one item: the history does not count towards what a client may be behind
        self.pending.append(b"".join([opening, *(event.frame for event in history)]))
        if history:
            self.after = history[-1].key
        for event in live:
            self.offer(event, 0.0)

    def offer(self, event: Event, now: float) -> None:
        if self.loading is not None:
            self.loading.append(event)
            return
        if event.key <= self.after or self.ended is not None:
            return
        self.after = event.key
        self.deliver(event.frame, now)

    def deliver(self, chunk: bytes, now: float) -> None:
        """Written now if the task sleeps and the client reads; else for the task to write."""
        if self.waiter is not None and self.direct is not None and self.direct.write(chunk):
            self.written_at = now
        elif len(self.pending) >= BACKLOG:  # the client is not reading: it will resume by id
            self.end(DROPPED)
        else:
            self.pending.append(chunk)
            self.wake()

    def end(self, last_words: bytes = b"") -> None:
        if self.ended is None:
            self.ended = last_words
            self.pending = []
            self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)


def _events(entries: Any) -> list[Event]:
    """Stream entries, [(b"ms-seq", {b"type": ..., b"data": ...}), ...], as Events."""
    return [
        Event(entry_id.decode(), fields[b"type"].decode(), fields[b"data"].decode())
        for entry_id, fields in entries or ()
    ]


class EventBus:
    """Subscribing, for one process."""

    def __init__(self, redis: Redis, limit: int | None = None) -> None:
        self.redis = redis
        self.limit = limit  # streams this worker holds at most (its open files allow)
        self.subscriptions: set[Subscription] = set()
        self.closing = False
        self.most = 0  # streams at their most since memory was last given back

    async def subscribe(self, last_event_id: str | None) -> Subscription:
        """Register a subscriber; with Last-Event-ID, load what it missed from the Stream.

        Its stream begins with `retry:` (and the `stream.truncated` notice when the
        Last-Event-ID is older than the Stream).
        """
        if self.closing:
            raise ServiceUnavailable("the server is shutting down")
        if last_event_id is not None and not is_event_id(last_event_id):
            raise ValidationFailed(
                "invalid Last-Event-ID",
                details=[{"field": "header.last-event-id", "message": "not an event id"}],
            )
        if self.limit is not None and len(self.subscriptions) >= self.limit:
            raise ServiceUnavailable(
                f"this server holds its maximum of {self.limit} event streams; retry shortly"
            )
        subscription = Subscription(resuming=last_event_id is not None)
        self.subscriptions.add(subscription)  # first, so nothing falls between history and live
        self.most = max(self.most, len(self.subscriptions))
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
        history = _events(await self.redis.xrange(STREAM, min=f"({last_event_id}"))
        opening = OPENING
        if oldest and oldest[0].key > event_key(last_event_id):
            notice = {"last_event_id": last_event_id, "oldest_kept": oldest[0].id}
            opening += frame(None, "stream.truncated", orjson.dumps(notice).decode())
        subscription.take(opening, history)

    async def history(self, after: str) -> tuple[list[Event], bool]:
        """The events kept after `after`, and whether some after it are no longer kept;
        ServiceUnavailable while Redis is unreachable."""
        if not is_event_id(after):
            raise ValidationFailed(f"{after!r} is not an event id (they look like 1733500000000-0)")
        try:
            oldest = _events(await self.redis.xrange(STREAM, count=1))
            events = _events(await self.redis.xrange(STREAM, min=f"({after}"))
        except (RedisError, OSError) as exc:
            stop_if_cancelled(exc)
            raise ServiceUnavailable("the event history is unavailable (Redis)") from exc
        return events, bool(oldest) and oldest[0].key > event_key(after)

    def close(self) -> None:
        """Shutdown: end every stream now rather than when the drain timeout runs out."""
        self.closing = True
        for subscription in self.subscriptions:
            subscription.end(SHUTTING_DOWN)

    async def run(self) -> None:
        """The one Stream reader of this process; runs until cancelled."""
        loop = asyncio.get_running_loop()
        async for event in follow(self.redis):
            now = loop.time()
            for subscription in self.subscriptions:
                subscription.offer(event, now)

    async def sweep_forever(self) -> None:
        """Every SWEEP_SECONDS, one pass over the streams: a keep-alive to each that has had
        nothing for KEEPALIVE_SECONDS, and the end of each whose write has been stuck for
        SEND_TIMEOUT_SECONDS (a client that stopped reading). Once TRIM_AFTER_CLOSED streams
        have closed (or half of them, TRIM_FLOOR at least) since memory was last given back,
        what they used goes back to the system."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = loop.time()
            quiet, stuck = now - KEEPALIVE_SECONDS, now - SEND_TIMEOUT_SECONDS
            for subscription in self.subscriptions:
                if 0 < subscription.sending_since < stuck:
                    stall(subscription)
                elif (
                    subscription.written_at < quiet
                    and not subscription.pending
                    and subscription.ended is None
                ):
                    subscription.deliver(KEEPALIVE, now)
            streams = len(self.subscriptions)
            closed = self.most - streams
            if closed >= TRIM_AFTER_CLOSED or (closed >= TRIM_FLOOR and streams < self.most / 2):
                give_back_free_memory()  # what they used goes back
                self.most = streams


def stall(subscription: Subscription) -> None:
    """End a stream whose write has not returned: its task is cancelled where it waits."""
    log.warning("dropped an SSE client that stopped reading")
    subscription.end()
    if subscription.task is not None:
        subscription.task.cancel(STALLED)


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
