"""Log lines written inside a span carry its trace and span ids, in both formats; others none."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import Message, Receive, Scope, Send

from service.context import RequestInfo
from service.http.access_log import AccessLog
from service.http.metrics import Metrics
from service.http.middleware.request_context import RequestContextMiddleware
from service.process.drain import Drain
from service.process.logs import ConsoleFormatter, JsonFormatter
from service.tracing.sdk import TraceIds, Tracing, trace_ids
from service.tracing.server import HandedIds, ServerSpans

tracer = TracerProvider().get_tracer("test")  # never the global provider: no export


def record(message: str) -> logging.LogRecord:
    entry = logging.makeLogRecord({"name": "apictl.test", "levelname": "INFO", "msg": message})
    TraceIds().filter(entry)
    return entry


@pytest.mark.parametrize("formatter", [JsonFormatter(), ConsoleFormatter(colour=False)])
def test_a_line_logged_inside_a_span_names_it(formatter: logging.Formatter) -> None:
    with tracer.start_as_current_span("request") as span:
        inside = formatter.format(record("inside"))
    outside = formatter.format(record("outside"))
    ids = span.get_span_context()
    trace_id, span_id = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
    if isinstance(formatter, JsonFormatter):
        assert json.loads(inside)["trace_id"] == trace_id
        assert json.loads(inside)["span_id"] == span_id
        assert "trace_id" not in json.loads(outside)
    else:
        assert f"trace_id={trace_id}" in inside
        assert f"span_id={span_id}" in inside
        assert "trace_id" not in outside


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
def test_the_access_log_line_of_a_traced_request_names_its_span(json_lines: bool) -> None:
    stream = io.BytesIO()
    log = AccessLog(json=json_lines, stream=stream, trace_ids=Tracing.request_ids)
    log.enabled = True  # whatever level the test run gave apictl.access
    current: list[tuple[str, str] | None] = []

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        current.append(trace_ids())  # the request's SERVER span, as any log line sees it
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def drop(message: Message) -> None:
        pass

    ids = HandedIds()
    provider = TracerProvider(id_generator=ids)  # always_on, never the global one: no export
    spans = ServerSpans(provider.get_tracer("test"), provider.sampler, ids)
    served = RequestContextMiddleware(answer, Metrics(lambda: None), log, Drain(0), spans)
    scope = {"type": "http", "method": "GET", "path": "/health", "headers": []}
    asyncio.run(served(scope, None, drop))  # type: ignore[arg-type]
    log.record(RequestInfo("r-2"), "GET", "/health", "/health", 200, 0.001)
    log.flush()
    traced, untraced = stream.getvalue().decode().splitlines()
    (expected,) = current
    assert expected is not None
    assert trace_ids() is None  # ended with the request
    if json_lines:
        assert (json.loads(traced)["trace_id"], json.loads(traced)["span_id"]) == expected
    else:
        assert f"trace_id={expected[0]} span_id={expected[1]}" in traced
    assert "trace_id" not in untraced
