"""Request id, access log, metrics, the SERVER span and the last-resort 500, in one pass over
each request.

Outermost of our middleware: it names the request (the caller's `X-Request-ID` when it is
1..128 of `[A-Za-z0-9._-]`, else a new one), adds the header to every response, turns an
unhandled exception into the unified 500 body (the traceback goes to the log under the same id)
and records one access-log line and one metrics observation per request. With tracing on, the
request's span (service.tracing.server) is current from before its first log line to after its
access-log line.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.context import RequestInfo, current_request
from service.errors import InternalError
from service.http.access_log import AccessLog
from service.http.errors import send_error
from service.http.metrics import Metrics
from service.process.drain import Drain

NOSNIFF = (b"x-content-type-options", b"nosniff")
CLOSE = (b"connection", b"close")  # while the worker drains: uvicorn then closes after it
UNMATCHED = "(unmatched)"  # the route label of requests no route took: never the raw path
_VALID_ID = re.compile(rb"^[A-Za-z0-9._-]{1,128}$")
error_log = logging.getLogger("apictl.error")
CONTINUATION = "apictl.continuation"
Continuation = Callable[[Receive, Send], Awaitable[None]]
# What a continued response keeps of its scope: what the server put there (the ASGI HTTP
# scope, less the copy of the lifespan's state made for handlers) and the route, which its
# access-log line names; not what the layers and the framework added for the request's
# handling (its exit stacks, the matched route's parameters, ...)
KEPT_WHILE_CONTINUED = (
    "type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
    "root_path", "headers", "client", "server", "extensions", "route",
)  # fmt: skip


def continue_after(scope: Scope, continuation: Continuation) -> None:
    """Finish this response from the outermost layer, once every other has returned.

    For a long response that needs none of the layers any more once its head is sent (an event
    stream): their frames (and what they hold) are let go instead of living as long as the
    response, and its writes go straight to the server. It still counts as the request it is:
    its access-log line, metrics and span end with it.
    """
    scope[CONTINUATION] = continuation


def _keep_only(scope: Scope, keys: tuple[str, ...]) -> None:
    """Empty the scope but for `keys`, in place (the server holds it), its table shrunk too."""
    kept = {key: scope[key] for key in keys if key in scope}
    scope.clear()
    scope.update(kept)


class RequestIds:
    """New request ids: a random per-process prefix and a counter (unique, and nearly free)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def for_scope(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _VALID_ID.match(value):
                return str(value.decode("ascii"))
        return f"{self._prefix}-{next(self._counter):x}"


class RequestSpans(Protocol):
    """Where tracing begins and ends each request's span (service.tracing.server.ServerSpans)."""

    def begin(self, scope: Scope) -> object | None:
        """The request's span, now current; None when the request is not traced."""

    def end(self, begun: Any, scope: Scope, status: int) -> None:
        """End what `begin` began, once the request is answered and logged."""


class RequestContextMiddleware:
    """Request id + access log + metrics + SERVER span + unhandled-error guard."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        access_log: AccessLog,
        drain: Drain,
        spans: RequestSpans | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.drain = drain
        self.spans = spans  # with tracing on
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = RequestInfo(self.ids.for_scope(scope))
        token = current_request.set(info)
        spans = self.spans
        begun = spans.begin(scope) if spans is not None else None
        header = (b"x-request-id", info.request_id.encode("ascii"))
        # every response: never sniffed into something executable (docs/api/index.md)
        started = time.perf_counter()
        status = 0
        drain = self.drain
        drain.count()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), header, NOSNIFF]
                if drain.closing:
                    headers.append(CLOSE)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            continuation = scope.get(CONTINUATION)
            if continuation is not None:
                _keep_only(scope, KEPT_WHILE_CONTINUED)
                await continuation(receive, send)
        except Exception:
            error_log.exception("unhandled error")
            if status == 0:  # nothing sent yet: the client still gets a proper answer
                await send_error(send_with_id, InternalError())
            else:
                status = 500
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.metrics.observe(scope["method"], route, status, elapsed)
            if self.access_log.enabled:
                self.access_log.record(info, scope["method"], route, scope["path"], status, elapsed)
            if spans is not None and begun is not None:
                spans.end(begun, scope, status)
            current_request.reset(token)
