"""A worker's way out: SIGTERM drains it and APICTL_MAX_REQUESTS recycles it, failing no request.

On SIGTERM (or SIGINT) a worker starts draining at once: `/ready` answers 503 `draining` and
every response carries `Connection: close` (keep-alive clients move to a new connection, which
the load balancer sends elsewhere), while it keeps accepting for APICTL_SHUTDOWN_DELAY seconds
so load balancers take it out first. Then its event streams end (clients resume with
Last-Event-ID) and uvicorn's own shutdown runs: no new connections, in-flight requests finish
within APICTL_SHUTDOWN_TIMEOUT, exit 0. A second signal skips what is left of the delay.

uvicorn installs its signal handlers before the app's lifespan starts, and runs the lifespan's
shutdown only after every connection has finished; so the app chains onto uvicorn's handlers to
learn of the signal first, and hands it on when the delay is over.

With APICTL_MAX_REQUESTS a worker that has served its share (plus up to its jitter, drawn once)
closes each keep-alive connection after its next response for RECYCLE_GRACE seconds, then leaves
the same way, without the delay and with `/ready` unchanged: the other workers keep serving and
uvicorn's supervisor starts a new worker in its place.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

RECYCLE_GRACE = 1.0
log = logging.getLogger("apictl.drain")
Handler = Callable[[int, FrameType | None], Any]


class Drain:
    """This worker's drain state, read per request (`closing`) and by `/ready` (`draining`)."""

    def __init__(self, delay: float, max_requests: int | None = None, jitter: int = 0) -> None:
        self.delay = delay
        self.draining = False  # leaving for good: /ready answers 503
        self.closing = False  # every response closes its connection
        self.served = 0
        spread = random.randint(0, jitter)  # noqa: S311 (spreads restarts; not a secret)
        self.limit = max_requests + spread if max_requests else None
        self._on_stop: Callable[[], None] = lambda: None
        self._stopped = False
        self._uvicorn: dict[int, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, on_stop: Callable[[], None]) -> None:
        """Chain onto uvicorn's SIGTERM and SIGINT handlers; `on_stop` runs as the worker stops
        accepting (in-process test clients run outside the main thread: nothing to chain)."""
        self._on_stop = on_stop
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if callable(previous):
                self._uvicorn[sig] = previous

            def handler(signum: int, frame: FrameType | None) -> None:
                # A signal handler runs inside whatever callback it interrupted, maybe one a
                # request scheduled: the drain starts in a context of its own, so its log
                # lines and spans do not carry that request's id.
                loop.call_soon_threadsafe(self._signalled, signum, context=contextvars.Context())

            signal.signal(sig, handler)

    def count(self) -> None:
        """One more request served; past the limit, recycle this worker."""
        self.served += 1
        if self.served == self.limit:
            log.info("served %d requests: this worker is replaced", self.served)
            self.closing = True
            if self._loop is not None:
                self._loop.call_later(
                    RECYCLE_GRACE, self._stop, signal.SIGTERM, context=contextvars.Context()
                )

    def _signalled(self, signum: int) -> None:
        if self._stopped:  # uvicorn's own: a second Ctrl-C forces the exit
            self._hand_on(signum)
        elif self.draining:  # a second signal: stop now
            self._stop(signum)
        else:
            self.draining = self.closing = True
            log.info("draining: /ready answers 503; serving %g s more, then stopping", self.delay)
            assert self._loop is not None
            self._loop.call_later(self.delay, self._stop, signum)

    def _stop(self, signum: int) -> None:
        """End the streams and let uvicorn stop accepting and finish in-flight requests."""
        if not self._stopped:
            self._stopped = True
            self._on_stop()
            self._hand_on(signum)

    def _hand_on(self, signum: int) -> None:
        handler = self._uvicorn.get(signum)
        if handler is not None:
            handler(signum, None)
