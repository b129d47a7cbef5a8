"""Prometheus metrics: requests by route template, latency, DB pool, SSE subscribers.

Labels are route templates (`/api/v1/posts/{post_id}`), never raw paths, so cardinality stays
low whatever clients send. Pool, subscriber and task figures are read at scrape time.

With several worker processes (`apictl serve --workers N` sets PROMETHEUS_MULTIPROC_DIR),
request counts and latencies are kept in prometheus-client's per-process files and every
scrape adds up all the workers; the pool, subscriber and task gauges are those of the worker
that answers the scrape.

A request's count and latency are tallied in plain lists and folded into the instruments once
per turn of the event loop, for all the requests answered in it (`Metrics.observe`).
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # read at scrape time only: the request path does not load the domain
    from service.runtime import Runtime

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TALLY = len(LATENCY_BUCKETS) + 2  # a count per bucket, +Inf's, then the sum of the seconds
Key = tuple[str, str, int]  # method, route template, status


class _RuntimeCollector(Collector):
    """Gauges computed from the live runtime when Prometheus scrapes."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime()
        if runtime is None:
            return
        pool = runtime.db.pool
        size = pool.get_size() if pool is not None else 0
        # idle: in asyncpg's pool, or kept by apictl for the next request (Database.idle)
        idle = pool.get_idle_size() + len(runtime.db.idle) if pool is not None else 0
        yield GaugeMetricFamily("apictl_db_pool_size", "Open database connections", value=size)
        yield GaugeMetricFamily("apictl_db_pool_idle", "Idle database connections", value=idle)
        yield GaugeMetricFamily(
            "apictl_db_pool_in_use", "Database connections in use", value=size - idle
        )
        yield GaugeMetricFamily(
            "apictl_db_pool_max", "Most database connections", value=runtime.settings.db_pool_max
        )
        redis_in_use, redis_idle = _redis_pool(runtime)
        yield GaugeMetricFamily(
            "apictl_redis_pool_in_use",
            "Redis connections in use (the event reader and token listener hold one each)",
            value=redis_in_use,
        )
        yield GaugeMetricFamily(
            "apictl_redis_pool_idle", "Idle Redis connections", value=redis_idle
        )
        yield GaugeMetricFamily(
            "apictl_sse_subscribers",
            "Open event streams",
            value=len(runtime.events.subscriptions),
        )
        yield GaugeMetricFamily(
            "apictl_event_outbox_backlog",
            "Events waiting in the outbox for the relay",
            value=runtime.relay.backlog.waiting,
        )
        yield GaugeMetricFamily(
            "apictl_event_relay_lag_seconds",
            "Age of the oldest event waiting in the outbox",
            value=runtime.relay.backlog.lag,
        )
        yield GaugeMetricFamily(
            "apictl_event_relay_active",
            "1 in the process whose relay holds the lock",
            value=int(runtime.relay.holding),
        )
        webhooks = runtime.webhooks
        deliveries = CounterMetricFamily(
            "apictl_webhook_deliveries",
            "Webhook delivery attempts by result (delivered, retried, failed)",
            labels=["result"],
        )
        for result in ("delivered", "retried", "failed"):
            deliveries.add_metric([result], getattr(webhooks, result))
        yield deliveries
        yield GaugeMetricFamily(
            "apictl_webhook_backlog",
            "Webhook deliveries waiting for their next attempt (all instances)",
            value=webhooks.backlog,
        )
        yield GaugeMetricFamily(
            "apictl_asyncio_tasks", "Tasks on the event loop", value=len(asyncio.all_tasks())
        )
        yield CounterMetricFamily(
            "apictl_login_rate_limited", "Logins refused by the rate limit",
            value=runtime.limiter.refused,
        )  # fmt: skip
        api = runtime.api_limiter
        yield CounterMetricFamily(
            "apictl_api_rate_limited", "API requests refused by the rate limit",
            value=api.refused if api else 0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "apictl_api_rate_limit_local",
            "1 while the API limit runs per-process (Redis unreachable)",
            value=int(api.degraded) if api else 0,
        )
        yield GaugeMetricFamily(
            "apictl_login_rate_limit_local",
            "1 while the login limit runs per-process (Redis unreachable)",
            value=int(runtime.limiter.degraded),
        )


class Metrics:
    """The registry of one app, and the instruments the middleware feeds."""

    def __init__(
        self, runtime: Callable[[], Runtime | None], collectors: Sequence[Collector] = ()
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apictl_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "apictl_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # read at scrape time: the runtime's gauges, and those of the tracing (if on)
        self.live = [_RuntimeCollector(runtime), *collectors]
        for collector in self.live:
            self.registry.register(collector)
        self._children: dict[Key, tuple[Any, Any]] = {}
        self._pending: dict[Key, list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request, and its latency.

        Tallied here and folded into the instruments at the end of the event loop's turn
        (`fold`), once for all the requests answered in it: two instrument updates cost
        about 1.3 us a request (a lock and two checks each, and a Python loop over the
        buckets), the tally a fifth of that. Folded before the turn ends, the counts are in
        prometheus-client's files by the time another worker answers a scrape.
        """
        key = (method, route, status)
        tally = self._pending.get(key)
        if tally is None:
            if not self._pending:  # the first of this turn (outside a loop, render folds)
                with suppress(RuntimeError):
                    asyncio.get_running_loop().call_soon(self.fold)
            tally = self._pending[key] = [0.0] * TALLY
        tally[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bucket it is <= of
        tally[-1] += seconds

    def fold(self) -> None:
        """Add what `observe` tallied to the instruments."""
        pending, self._pending = self._pending, {}
        for key, tally in pending.items():
            requests, latency = self._instruments(key)
            *buckets, seconds = tally
            requests.inc(sum(buckets))
            # what Histogram.observe updates, once per tally: it has no public way to take
            # many observations at once (tests/http/test_metrics.py compares the two)
            latency._sum.inc(seconds)
            for value, count in zip(latency._buckets, buckets, strict=True):
                if count:
                    value.inc(count)

    def _instruments(self, key: Key) -> tuple[Any, Any]:
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: once per label set
            method, route, status = key
            label = method if method in METHODS else "OTHER"  # clients invent methods
            children = (
                self.requests.labels(label, route, str(status)),
                self.latency.labels(label, route),
            )
            if method in METHODS:
                self._children[key] = children
        return children

    def render(self) -> bytes:
        self.fold()
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return generate_latest(self.registry)
        registry = CollectorRegistry()  # every worker's files, and this worker's live gauges
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for collector in self.live:
            registry.register(collector)
        return generate_latest(registry)


def _redis_pool(runtime: Runtime) -> tuple[int, int]:
    """(in use, idle) connections of the Redis client's pool."""
    in_use = idle = 0
    for count, attributes in runtime.redis.connection_pool.get_connection_count():
        if "used" in attributes.values():
            in_use += count
        else:
            idle += count
    return in_use, idle
