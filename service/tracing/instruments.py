"""What the runtime builds its clients from: the libraries' own classes (`UNTRACED`), or the
traced ones of service.tracing.clients, and where the domain asks for a span of its own."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from redis.asyncio import Redis


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
