"""Server-Sent Events over ASGI: a stream that costs one task and one waiting future.

The response sends its head through every layer like any other, then hands the rest over
(`service.http.middleware.request_context.continue_after`): the layers' frames unwind, and the
stream is written from the outermost one, straight to the server's `send`. Its task then waits
on one future, woken by the bus when there is something to write (an event, a keep-alive, the
end); the server's notice of a disconnect ends it without a task of its own watching
`receive` (where the server gives none, a test client, a helper task does).
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.events.bus import STALLED, EventBus, Subscription
from service.http.frameworks.uvicorn import DirectWrites, on_disconnect
from service.http.middleware.request_context import continue_after


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
        except BaseException:
            self.bus.unsubscribe(self.subscription)
            raise
        # the rest needs neither this response nor anything of the layers
        continue_after(scope, partial(stream, self.bus, self.subscription))


async def stream(bus: EventBus, subscription: Subscription, receive: Receive, send: Send) -> None:
    """The stream's one loop: write what is pending, wait for more, end when told."""
    watcher = None
    if not on_disconnect(receive, subscription.end):
        watcher = asyncio.create_task(_until_disconnect(receive, subscription))
    loop = asyncio.get_running_loop()
    subscription.task = asyncio.current_task()
    subscription.direct = DirectWrites.of(send)
    try:
        while True:
            if subscription.pending:
                chunk = b"".join(subscription.pending)
                subscription.pending = []
                subscription.sending_since = now = loop.time()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                subscription.sending_since = 0.0
                subscription.written_at = now
            elif subscription.ended is not None:
                break
            else:
                subscription.waiter = waiter = loop.create_future()
                await waiter
        await send({"type": "http.response.body", "body": subscription.ended, "more_body": False})
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if exc.args != (STALLED,) or task is None:
            raise
        task.uncancel()  # the bus ended a write that was stuck (bus.stall); the server
        # closes the connection: its response never ends (a stuck client reads no more)
    finally:
        bus.unsubscribe(subscription)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _until_disconnect(receive: Receive, subscription: Subscription) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    subscription.end()
