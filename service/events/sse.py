"""Server-Sent Events over ASGI: framing, keep-alives, a bounded send, a clean end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import anyio
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.events.bus import Event, EventBus, Subscription, event_key

KEEPALIVE_SECONDS = 15.0
SEND_TIMEOUT_SECONDS = 10.0
RETRY_MS = 2000
log = logging.getLogger("apictl.events")


def frame(event_id: str | None, event_type: str, data: str) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event_type}\ndata: {data}\n\n".encode()


async def frames(subscription: Subscription, keepalive: float) -> AsyncIterator[bytes]:
    """The byte stream of one subscription: backlog first, then live events, in id order."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    if subscription.truncated_from is not None:
        oldest = subscription.backlog[0].id if subscription.backlog else None
        notice = {"last_event_id": subscription.truncated_from, "oldest_kept": oldest}
        yield frame(None, "stream.truncated", orjson.dumps(notice).decode())
    sent = (0, 0)
    for event in subscription.backlog:
        yield frame(event.id, event.type, event.data)
        sent = event_key(event.id)
    subscription.backlog = []
    while True:
        if subscription.overflowed:
            yield frame(None, "stream.dropped", '{"reason":"client too slow; reconnect"}')
            return
        try:
            async with asyncio.timeout(keepalive):
                item: Event | None = await subscription.queue.get()
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        if item is None:  # shutting down
            yield b": server shutting down\n\n"
            return
        if event_key(item.id) > sent:  # already sent from the backlog otherwise
            sent = event_key(item.id)
            yield frame(item.id, item.type, item.data)


class EventStreamResponse(Response):
    """Streams a subscription until the client leaves, the server stops or a send stalls."""

    media_type = "text/event-stream"

    def __init__(self, bus: EventBus, subscription: Subscription) -> None:
        super().__init__(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        # a stream has no length: drop the Content-Length: 0 of an empty Response body
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.bus = bus
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as group:
                group.start_soon(self._until_disconnect, receive, group.cancel_scope)
                await self._stream(send)
                group.cancel_scope.cancel()
        finally:
            self.bus.unsubscribe(self.subscription)

    async def _stream(self, send: Send) -> None:
        async for chunk in frames(self.subscription, KEEPALIVE_SECONDS):
            try:
                with anyio.fail_after(SEND_TIMEOUT_SECONDS):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:
                log.warning("dropped an SSE client that stopped reading")
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _until_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()
