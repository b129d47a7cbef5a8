"""The SERVER span of each HTTP request: ASGI middleware, outermost when tracing is on.

Ours rather than opentelemetry-instrumentation-asgi/-fastapi: FastAPI's instrumentation never
sees the routes service.http.compiled runs itself, and both wrap `receive` and `send` with
spans of their own on every request (FastAPI's tracing cost 8 % of read RPS). Here the route
template is read, as the access log reads it, once the request has been answered; an unsampled
request costs one span context and nothing else. Outermost, so the access log line and every
log line of the request are written while its span is current.
"""

from __future__ import annotations

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]
# HTTP semantic conventions: any other method is `_OTHER`, and spans it names are `HTTP`
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)


class _ScopeHeaders(Getter[Headers]):
    """W3C trace context (`traceparent`, `tracestate`) from an ASGI scope's headers."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        name = key.encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


HEADERS = _ScopeHeaders()


class ServerSpans:
    """One SERVER span per request, continuing the caller's trace when it sends one."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = propagate.extract(scope["headers"], getter=HEADERS)
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "_OTHER"
        span = self.tracer.start_span(method, parent, kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        if not span.is_recording():  # not sampled: nothing to note
            try:
                await self.app(scope, receive, send)
            finally:
                context.detach(token)
            return
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route: str | None = getattr(scope.get("route"), "path", None)
            span.update_name(_name(method, route))
            span.set_attributes(_attributes(scope, method, route, status))
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(StatusCode.ERROR)
            span.end()
            context.detach(token)


def _name(method: str, route: str | None) -> str:
    verb = "HTTP" if method == "_OTHER" else method
    return f"{verb} {route}" if route else verb


def _attributes(scope: Scope, method: str, route: str | None, status: int) -> dict[str, str | int]:
    """The stable HTTP server attributes; the path without its query string, never a header."""
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if method == "_OTHER":
        attributes["http.request.method_original"] = scope["method"]
    if route:
        attributes["http.route"] = route
    if status:
        attributes["http.response.status_code"] = status
    return attributes
