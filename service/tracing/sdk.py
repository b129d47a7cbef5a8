"""The OpenTelemetry SDK of a serving process, configured from OTEL_* as the SDK reads them.

Spans leave in batches, over OTLP/HTTP (protobuf), from the SDK's own export thread: a request
only appends its spans to a bounded queue. With the collector slow or down the queue fills and
the oldest spans are dropped, never the request slowed; `/metrics` counts what was dropped
(`apictl_trace_spans_dropped_total`), and shutting down waits for the exporter at most a
bounded time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from service import __version__
from service.config import mask_url
from service.tracing.clients import instruments
from service.tracing.environment import endpoint
from service.tracing.instruments import Instruments
from service.tracing.server import REQUEST_IDS, HandedIds, ServerSpans, hex_ids

DEFAULT_QUEUE = 2048  # the SDK's default OTEL_BSP_MAX_QUEUE_SIZE
CLOSE_SECONDS = 2.0  # what shutting down waits for the last spans to leave
log = logging.getLogger("apictl.tracing")


def _queue_size() -> int:
    """OTEL_BSP_MAX_QUEUE_SIZE as the SDK reads it: a positive integer, else its default."""
    try:
        size = int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE))
    except ValueError:
        return DEFAULT_QUEUE
    return size if size > 0 else DEFAULT_QUEUE


class CountingProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting the spans that never reach the collector.

    Its queue (BatchProcessor.emit) holds `max_queue_size` spans and, when full, drops the
    oldest to take the newest: so a span ended while `queued` is at the bound costs one drop.
    `queued` goes down as the export thread hands each batch to the exporter.
    """

    def __init__(self, exporter: SpanExporter, max_queue_size: int) -> None:
        self.max_queue_size = max_queue_size
        self.queued = 0
        self.queue_full = 0  # spans dropped because the queue was full
        self.export_failed = 0  # spans in batches the collector did not take
        self._lock = threading.Lock()
        super().__init__(_Counted(exporter, self), max_queue_size=max_queue_size)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            with self._lock:
                if self.queued >= self.max_queue_size:
                    self.queue_full += 1
                else:
                    self.queued += 1
        super().on_end(span)

    def exporting(self, count: int) -> None:
        with self._lock:
            self.queued = max(0, self.queued - count)

    def failed(self, count: int) -> None:
        with self._lock:
            self.export_failed += count


class _Counted(SpanExporter):
    """The exporter, telling the processor what leaves its queue and what fails."""

    def __init__(self, exporter: SpanExporter, processor: CountingProcessor) -> None:
        self.exporter = exporter
        self.processor = processor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.processor.exporting(len(spans))
        result = self.exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.processor.failed(len(spans))
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, as hex, or None outside any span."""
    return hex_ids(trace.get_current_span())


class TraceIds(logging.Filter):
    """Adds `trace_id` and `span_id` to every record logged while a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = trace_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


@dataclass
class Tracing:
    """The process's tracer provider, its tracer and what the runtime builds with it."""

    provider: TracerProvider
    processor: CountingProcessor
    tracer: Tracer
    ids: HandedIds
    instruments: Instruments

    @classmethod
    def start(cls) -> Tracing:
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override apictl's own defaults
        resource = Resource.create({"service.name": "apictl", "service.version": __version__})
        resource = resource.merge(OTELResourceDetector().detect())
        # sampler: OTEL_TRACES_SAMPLER(_ARG); exit: ours, bounded (close)
        ids = HandedIds()
        provider = TracerProvider(resource=resource, id_generator=ids, shutdown_on_exit=False)
        processor = CountingProcessor(OTLPSpanExporter(), _queue_size())
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)  # code of a scaffolded resource may trace too
        tracer = provider.get_tracer("apictl", __version__)
        for handler in logging.getLogger().handlers:  # as set by configure_logging
            handler.addFilter(TraceIds())
        log.info("tracing on: OTLP/HTTP to %s", mask_url(endpoint()))
        return cls(provider, processor, tracer, ids, instruments(tracer))

    def server_spans(self) -> ServerSpans:
        """The SERVER span of each request (service.tracing.server), for the request context."""
        return ServerSpans(tracer=self.tracer, sampler=self.provider.sampler, ids=self.ids)

    @staticmethod
    def request_ids() -> tuple[str, str] | None:
        """(trace id, span id) of the current request's SERVER span, for its access-log line."""
        return REQUEST_IDS.get()

    def collector(self) -> Collector:
        return _DroppedSpans(self.processor)

    def close(self) -> None:
        """Export what is queued, waiting at most CLOSE_SECONDS (a slow collector loses it)."""
        closing = threading.Thread(target=self.provider.shutdown, name="otel-close", daemon=True)
        closing.start()
        closing.join(CLOSE_SECONDS)
        if closing.is_alive():  # its thread is a daemon: the process exits all the same
            log.warning("tracing: spans still queued after %.0f s were dropped", CLOSE_SECONDS)


class _DroppedSpans(Collector):
    """`apictl_trace_spans_dropped_total{reason}`, read at scrape time."""

    def __init__(self, processor: CountingProcessor) -> None:
        self.processor = processor

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "apictl_trace_spans_dropped",
            "Spans not delivered to the OTLP collector: queue full (collector slow or down),"
            " or the export failed",
            labels=["reason"],
        )
        family.add_metric(["queue_full"], self.processor.queue_full)
        family.add_metric(["export_failed"], self.processor.export_failed)
        yield family
