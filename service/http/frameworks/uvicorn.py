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
            self.transport.write(b"".join((held, data)))

    def flush(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            if self.sending is not None:
                self.sending.cancel()
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`uvicorn.Config(http=LimitedHttpToolsProtocol)`: httptools with header limits, and
    each response written through the connection's JoinedWrites."""

    _deadline: asyncio.TimerHandle | None = None
    _stopping = False
    _header_bytes = 0
    _writes: JoinedWrites | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._writes = JoinedWrites(transport, self.loop)
        self._arm()  # a connection must bring a request's headers in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._writes is not None and self._writes.sending is not None:
            self._writes.sending.cancel()  # nobody to send it to
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if self._writes is not None:
            cycle.transport = self._writes
        super()._start_asgi_task(cycle, app)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # uvicorn's scope has no "method" between a request's first byte and its last header
        if (
            self.scope is not None
            and "method" not in self.scope
            and not self.transport.is_closing()
        ):
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(HeadersTooLarge())
            else:
                self._arm()

    def on_headers_complete(self) -> None:
        self._header_bytes = 0
        if self._deadline is not None:
            self._disarm()
        super().on_headers_complete()
        if self._stopping and self.cycle is not None:
            self.cycle.keep_alive = False  # the last request of this connection

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # idle: a request may be coming
            self._stopping = True
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
        if self._deadline is None:
            self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._refuse(RequestTimeout("the request headers did not arrive in time"))

    def _refuse(self, error: AppError) -> None:
        """Answer before the app saw a request (so with an id of our own) and hang up."""
        self._disarm()
        request_id = f"conn-{secrets.token_hex(8)}"
        if self._writes is not None:
            self._writes.flush()  # the response before this request's refusal
        self.transport.write(raw_error_response(error, request_id))
        self.transport.close()
