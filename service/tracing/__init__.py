"""OpenTelemetry traces, switched on by the standard OTEL_* variables alone (SPEC section 12).

This module only reads the environment: `start` imports the SDK (service.tracing.sdk) when an
OTLP endpoint is configured. With tracing off nothing of the SDK is loaded and the runtime is
built from the plain classes of `UNTRACED`, so the request path is the one it always was.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import asyncpg
from redis.asyncio import Redis

if TYPE_CHECKING:
    from service.tracing.sdk import Tracing

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configured(environ: Mapping[str, str]) -> bool:
    """Tracing is on: an OTLP endpoint is set and OTEL_SDK_DISABLED is not `true`."""
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return not disabled and any(environ.get(name, "").strip() for name in ENDPOINTS)


def endpoint(environ: Mapping[str, str] = os.environ) -> str:
    """Where spans go, as the OTLP exporter resolves it (the traces URL wins)."""
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces
    return environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/") + "/v1/traces"


def start() -> Tracing | None:
    """The process's tracing (the SDK reads os.environ), exporting from now on; None, and no
    SDK loaded, when off."""
    if not configured(os.environ):
        return None
    from service.tracing.sdk import Tracing

    return Tracing.start()


class Spans(Protocol):
    """Where the domain asks for a span of its own (password hashing, the event relay)."""

    def child(self, name: str) -> AbstractContextManager[object]:
        """A span inside the current one, or nothing when no recorded span is current."""

    def root(self, name: str) -> AbstractContextManager[object]:
        """A new trace, for work no request started (the event relay's batches)."""


class NoSpans:
    def child(self, name: str) -> AbstractContextManager[object]:
        return nullcontext()

    def root(self, name: str) -> AbstractContextManager[object]:
        return nullcontext()


@dataclass(frozen=True)
class Instruments:
    """What the runtime builds its clients from: the libraries' own classes, or traced ones."""

    connection_class: type[asyncpg.Connection] = asyncpg.Connection
    redis_class: type[Redis] = Redis
    spans: Spans = field(default_factory=NoSpans)


UNTRACED = Instruments()
