"""uvicorn beyond its documented API: its httptools protocol, subclassed, with the limits it lacks
on request headers, and a response's head and body sent in one write.

uvicorn documents `Config(http=...)` as taking a protocol class, but not the protocol's insides.
What is used of them, and why:
- `HttpToolsProtocol` subclassed; `connection_made`, `connection_lost`, `data_received`,
  `on_headers_complete` extended: the header deadline and size cap (uvicorn has neither, and
  httptools no cap: a "slowloris" client sending a byte now and then holds its connection);
- `self.scope` read between a request's first byte and its last header (it has no "method"
  until the headers are complete): to count header bytes only while they arrive;
- `send_400_response` replaced: protocol errors answer 400 in the unified error body, not text;
- `_start_asgi_task` extended and `RequestResponseCycle.transport` swapped for `JoinedWrites`:
  uvicorn writes a response's status line and headers when the app starts the response and its
  body at the next message, two system calls (and TCP segments) where one does;
- `uvicorn._types.ASGI3Application`: the type of that method's argument;
- `RequestResponseCycle`, reached from a request's `receive` (its bound method), told to call
  back when the client goes away (`on_disconnect`): a long response learns of it without a
  task of its own awaiting `receive` (an idle event stream then costs one task, not two);
  `connection_lost` calls it;
- `RequestResponseCycle.transport`, `.flow.write_paused`, `.chunked_encoding`, `.disconnected`
  and `.response_complete`, read by `DirectWrites`: a chunk of a streamed response written at
  once, framed as uvicorn frames it, while the stream's task sleeps (the event bus writes one
  event to 10,000 streams without waking 10,000 tasks); when uvicorn would make `send` wait
  (the client reads too slowly) it declines, and the stream's task awaits `send`;
- the memory of an idle connection (20,000 event streams a worker): `url` set in `__init__`
  with every other attribute uvicorn sets, and this class's own state in one attribute
  (`ConnectionState`), so that CPython keeps the protocol's 29 attributes in a table shared by
  every connection (296 bytes) rather than a dict of its own (1,584; past 29 attributes, or one
  added after `__init__`, it does); `pipeline` (a deque, 760 bytes empty) a list with
  `appendleft`; `FlowControl._is_writable_event` and `RequestResponseCycle.message_event`
  (asyncio Events, each with a deque) replaced by `Flag`s, their waiters in a list;
- `shutdown` (what uvicorn's server calls on each connection when it stops) extended: uvicorn
  closes an idle connection at once, resetting a request already on its way (a client that
  just connected, or reused its keep-alive connection, as the worker stopped); here an idle
  connection gets IDLE_GRACE to bring one more request, answered with `Connection: close`.

Beyond this module, one behaviour of uvicorn is relied on, without importing anything of it:
it installs its SIGTERM/SIGINT handlers before the app's lifespan starts, so the drain
(service/process/drain.py) can chain onto them; tests/process/test_drain.py fails if it stops.

Headers must arrive within HEADER_TIMEOUT of the connection, or of the first packet of a request
that did not carry them all, and weigh at most MAX_HEADER_BYTES; otherwise the client gets a
408 or 431 in the unified error body and the connection is closed. It costs a request nothing
when its headers come in one packet (the usual case): no timer, no per-header callback.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Send
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from service.errors import AppError, BadRequest, HeadersTooLarge, RequestTimeout
from service.http.errors import raw_error_response

HEADER_TIMEOUT = 10.0
IDLE_GRACE = 0.5  # seconds an idle connection may still bring a request once the worker stops
MAX_HEADER_BYTES = 64 * 1024


class JoinedWrites(asyncio.Transport):
    """The transport of a connection's responses: a write is held until the next one, and both
    go out as one; a write nothing follows goes out at the end of this turn of the event loop.

    So a response's head leaves with its body (uvicorn writes them one after the other), and a
    streamed response's head or chunk waits no longer than the loop's current turn.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.transport = transport
        self.loop = loop
        self.held: bytes | None = None
        self.sending: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.held is None:
            self.held = bytes(data)
            self.sending = self.loop.call_soon(self.flush)
        else:
            held, self.held = self.held, None
            if self.sending is not None:
                self.sending.cancel()
                self.sending = None
            self.transport.write(b"".join((held, data)))

    def write_now(self, data: bytes) -> None:
        """Write after anything held, without holding this."""
        self.flush()
        self.transport.write(data)

    def flush(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            if self.sending is not None:
                self.sending.cancel()
                self.sending = None  # a long response's connection keeps no spent handle
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


def on_disconnect(receive: Receive, callback: Callable[[], None]) -> bool:
    """Have `callback` called when the client of this request goes away before its response
    ends. False where the server cannot (another server, a test client, a wrapped `receive`):
    then only `receive` tells, when awaited."""
    cycle = getattr(receive, "__self__", None)
    if not isinstance(cycle, RequestResponseCycle) or not isinstance(cycle.transport, JoinedWrites):
        return False  # not a connection of LimitedHttpToolsProtocol
    cycle.on_disconnect = callback  # type: ignore[attr-defined]
    return True


class DirectWrites:
    """Chunks of one started, chunked response (an event stream), written without `send`."""

    __slots__ = ("cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self.cycle = cycle

    @classmethod
    def of(cls, send: Send) -> DirectWrites | None:
        """For the response `send` belongs to; None where it is not uvicorn's own `send` on a
        LimitedHttpToolsProtocol connection, or the response is not chunked."""
        cycle = getattr(send, "__self__", None)
        if (
            isinstance(cycle, RequestResponseCycle)
            and isinstance(cycle.transport, JoinedWrites)
            and cycle.chunked_encoding
        ):
            return cls(cycle)
        return None

    def write(self, chunk: bytes) -> bool:
        """Written at once; False when `send` must do it (it would wait for the client)."""
        cycle = self.cycle
        if cycle.flow.write_paused or cycle.disconnected or cycle.response_complete:
            return False
        transport: JoinedWrites = cycle.transport  # type: ignore[assignment]
        transport.write_now(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        return True


class Flag:
    """What uvicorn uses of an asyncio.Event (`set`, `clear`, `is_set`, `wait`), its waiters in
    a list: asyncio's keeps them in a deque, 760 bytes even empty, and a connection has two."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, is_set: bool = False) -> None:
        self._set = is_set
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            self._waiters.remove(waiter)


class Pipeline(list[tuple[RequestResponseCycle, ASGI3Application]]):
    """uvicorn's queue of pipelined requests (`appendleft`, `pop`), as a list: a deque costs an
    idle connection 760 bytes."""

    __slots__ = ()

    def appendleft(self, item: tuple[RequestResponseCycle, ASGI3Application]) -> None:
        self.insert(0, item)


class ConnectionState:
    """LimitedHttpToolsProtocol's own state of a connection, in one attribute of it."""

    __slots__ = ("deadline", "header_bytes", "stopping", "writes")

    def __init__(self) -> None:
        self.deadline: asyncio.TimerHandle | None = None
        self.header_bytes = 0
        self.stopping = False
        self.writes: JoinedWrites | None = None


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`uvicorn.Config(http=LimitedHttpToolsProtocol)`: httptools with header limits, and
    each response written through the connection's JoinedWrites."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = b""  # uvicorn sets it with the first request: here, with all the others
        self.pipeline = Pipeline()  # type: ignore[assignment]
        self.state = ConnectionState()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow._is_writable_event = Flag(is_set=True)  # type: ignore[assignment]
        self.state.writes = JoinedWrites(transport, self.loop)
        self._arm()  # a connection must bring a request's headers in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        writes = self.state.writes
        if writes is not None and writes.sending is not None:
            writes.sending.cancel()  # nobody to send it to
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and cycle.disconnected:
            callback = getattr(cycle, "on_disconnect", None)
            if callback is not None:
                callback()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if self.state.writes is not None:
            cycle.transport = self.state.writes
        super()._start_asgi_task(cycle, app)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # uvicorn's scope has no "method" between a request's first byte and its last header
        if (
            self.scope is not None
            and "method" not in self.scope
            and not self.transport.is_closing()
        ):
            self.state.header_bytes += len(data)
            if self.state.header_bytes > MAX_HEADER_BYTES:
                self._refuse(HeadersTooLarge())
            else:
                self._arm()

    def on_headers_complete(self) -> None:
        state = self.state
        state.header_bytes = 0
        if state.deadline is not None:
            self._disarm()
        super().on_headers_complete()
        if self.cycle is not None:  # new: its body has not come yet, nothing set or awaits it
            self.cycle.message_event = Flag()  # type: ignore[assignment]
            if state.stopping:
                self.cycle.keep_alive = False  # the last request of this connection

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # idle: a request may be coming
            self.state.stopping = True
            self.loop.call_later(IDLE_GRACE, self._close_if_idle)
        else:
            super().shutdown()

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            super().shutdown()
        else:
            self.cycle.keep_alive = False

    def send_400_response(self, msg: str) -> None:
        self._refuse(BadRequest())

    def _arm(self) -> None:
        if self.state.deadline is None:
            self.state.deadline = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _disarm(self) -> None:
        if self.state.deadline is not None:
            self.state.deadline.cancel()
            self.state.deadline = None

    def _headers_too_slow(self) -> None:
        self.state.deadline = None
        if not self.transport.is_closing():
            self._refuse(RequestTimeout("the request headers did not arrive in time"))

    def _refuse(self, error: AppError) -> None:
        """Answer before the app saw a request (so with an id of our own) and hang up."""
        self._disarm()
        request_id = f"conn-{secrets.token_hex(8)}"
        if self.state.writes is not None:
            self.state.writes.flush()  # the response before this request's refusal
        self.transport.write(raw_error_response(error, request_id))
        self.transport.close()
