"""The SERVER span of each HTTP request, begun and ended by the request-context middleware.

Ours rather than opentelemetry-instrumentation-asgi/-fastapi: FastAPI's instrumentation never
sees the routes service.http.compiled runs itself, and both wrap `receive` and `send` with
spans of their own on every request (FastAPI's tracing cost 8 % of read RPS). Not a layer of
its own either: each layer is one more frame every suspension of the request passes through,
and the request context already knows the status and the route. The span begins before the
request's first line of log and ends after its access-log line, so every line is written
while it is current; a request the sampler drops costs no span at all.
"""

from __future__ import annotations

import random
from contextvars import ContextVar, Token
from dataclasses import dataclass

from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from starlette.types import Scope

from service.tracing.clients import Entered, enter, leave

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
# (trace id, span id) of the request's SERVER span as hex, for its access-log line: set while
# a span is current for the request (a caller's unsampled trace too), so that the log reads
# one ContextVar per request instead of asking OpenTelemetry's context.
REQUEST_IDS: ContextVar[tuple[str, str] | None] = ContextVar("apictl_request_ids", default=None)
LOW_BITS = TraceIdRatioBased.TRACE_ID_LIMIT + 1  # the ratio samplers decide on these 64 bits


def new_trace_bound(sampler: Sampler) -> int | None:
    """The bound under which the SDK's built-in `sampler` records a trace that starts here: a
    trace id is sampled when its low 64 bits are below it (TraceIdRatioBased's own rule; 0 for
    always_off, 2**64 for always_on). None for any other sampler, which is asked every time.

    A ParentBased sampler decides a trace without a parent by its root sampler, which it keeps
    in `_root`: the SDK offers no public accessor, and a sampler it is not found on is simply
    asked per request.
    """
    root = getattr(sampler, "_root", None) if isinstance(sampler, ParentBased) else sampler
    if isinstance(root, TraceIdRatioBased):
        return root.bound
    if isinstance(root, StaticSampler):
        description = root.get_description()
        if description in ("AlwaysOnSampler", "AlwaysOffSampler"):
            return LOW_BITS if description == "AlwaysOnSampler" else 0
    return None


class HandedIds(RandomIdGenerator):
    """The SDK's random ids, but for a trace id ServerSpans has had sampled already: the SDK's
    next trace id is that one, so its sampler, asked again, decides the same."""

    def __init__(self) -> None:
        self._next: int | None = None

    def hand_over(self, trace_id: int) -> None:
        self._next = trace_id

    def generate_trace_id(self) -> int:
        trace_id, self._next = self._next, None
        return trace_id if trace_id is not None else super().generate_trace_id()


@dataclass(slots=True)
class Begun:
    """A request's SERVER span, current until `ServerSpans.end`."""

    span: Span
    method: str
    entered: Entered
    noted: Token[tuple[str, str] | None]


class ServerSpans:
    """One SERVER span per request, continuing the caller's trace when it sends one.

    A trace that would start here is decided first: when the sampler drops it (ratio 0.01: 99
    requests in 100) no span is made at all, nothing is current and the request runs as it
    would untraced. For the SDK's own samplers that decision is one random number compared
    with `new_trace_bound` (asking the sampler, with the id it needs, cost 13 % of /health's
    RPS at ratio 0.01); a sampled id is handed to the SDK, whose sampler decides the same. A
    caller's trace goes through the SDK's start_span as it is.
    """

    def __init__(self, tracer: Tracer, sampler: Sampler, ids: HandedIds) -> None:
        self.tracer = tracer
        self.sampler = sampler
        self.ids = ids
        self.bound = new_trace_bound(sampler)
        # the headers the configured propagators read (traceparent, tracestate, baggage)
        self.fields = frozenset(f.encode("latin-1") for f in propagate.get_global_textmap().fields)

    def begin(self, scope: Scope) -> Begun | None:
        """The span of the HTTP request `scope`, current from now on; None when not traced."""
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "_OTHER"
        headers = scope["headers"]
        for name, _ in headers:  # a loop, not any(): no generator frame per request
            if name in self.fields:
                parent = propagate.extract(headers, getter=HEADERS)
                break
        else:
            if not self._sampled(method):
                return None
            parent = None
        span = self.tracer.start_span(method, parent, kind=SpanKind.SERVER)
        # a caller's trace not sampled: its ids are current, RECORDING is False
        return Begun(span, method, enter(span, parent), REQUEST_IDS.set(hex_ids(span)))

    def end(self, begun: Begun, scope: Scope, status: int) -> None:
        """Name and note the span by the request's route and answer, end it; none current."""
        span, method = begun.span, begun.method
        if span.is_recording():
            route: str | None = getattr(scope.get("route"), "path", None)
            span.update_name(_name(method, route))
            span.set_attributes(_attributes(scope, method, route, status))
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(StatusCode.ERROR)
            span.end()
        REQUEST_IDS.reset(begun.noted)
        leave(begun.entered)

    def _sampled(self, method: str) -> bool:
        """Whether a trace starting here is recorded; if so, its id is handed to the SDK."""
        if self.bound is not None:
            low = random.getrandbits(64)
            if low >= self.bound:
                return False
            trace_id = (random.getrandbits(64) or 1) << 64 | low  # never the invalid 0
        else:
            trace_id = self.ids.generate_trace_id()
            decided = self.sampler.should_sample(None, trace_id, method, SpanKind.SERVER)
            if decided.decision is not Decision.RECORD_AND_SAMPLE:
                return False
        self.ids.hand_over(trace_id)
        return True


def hex_ids(span: Span) -> tuple[str, str] | None:
    """(trace id, span id) of `span` as hex, as log lines carry them; None if it has none."""
    ids = span.get_span_context()
    if not ids.is_valid:
        return None
    return format(ids.trace_id, "032x"), format(ids.span_id, "016x")


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
