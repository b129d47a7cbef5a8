"""Request metrics: tallied per request, folded into prometheus-client's instruments once per
turn of the event loop, and rendered exactly as prometheus-client's own observe() would."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.http.metrics import LATENCY_BUCKETS, Metrics

# on a bound, between bounds, past the last one, and a method clients invent
OBSERVED = [
    ("GET", "/health", 200, 0.0003),
    ("GET", "/health", 200, 0.005),
    ("GET", "/health", 200, 0.0051),
    ("GET", "/api/v1/posts/{post_id}", 404, 0.02),
    ("POST", "/api/v1/posts", 201, 12.5),
    ("BREW", "(unmatched)", 405, 0.001),
    ("BREW", "(unmatched)", 405, 0.7),
]


def _without_created(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if "_created" not in line]


def test_metrics_render_what_prometheus_observe_would() -> None:
    metrics = Metrics(lambda: None)
    expected = CollectorRegistry()
    requests = Counter(
        "apictl_http_requests",
        "HTTP requests by route template, method and status",
        ["method", "route", "status"],
        registry=expected,
    )
    latency = Histogram(
        "apictl_http_request_duration_seconds",
        "HTTP request latency by route template and method",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=expected,
    )
    for method, route, status, seconds in OBSERVED * 3:
        metrics.observe(method, route, status, seconds)
        label = "OTHER" if method == "BREW" else method
        requests.labels(label, route, str(status)).inc()
        latency.labels(label, route).observe(seconds)
    rendered = _without_created(metrics.render())
    assert [line for line in rendered if line.startswith("apictl_http_")] == [
        line for line in _without_created(generate_latest(expected)) if not line.startswith("#")
    ]


def test_counts_reach_the_instruments_when_the_loop_turn_ends() -> None:
    """Not only at a scrape: with several workers, another worker's scrape reads the files."""
    metrics = Metrics(lambda: None)
    labels = {"method": "GET", "route": "/health", "status": "200"}

    def counted() -> float | None:
        return metrics.registry.get_sample_value("apictl_http_requests_total", labels)

    async def answer_requests() -> list[float | None]:
        seen = [counted()]
        metrics.observe("GET", "/health", 200, 0.001)
        metrics.observe("GET", "/health", 200, 0.002)
        seen.append(counted())  # still this turn: tallied only
        await asyncio.sleep(0)
        seen.append(counted())
        metrics.observe("GET", "/health", 200, 0.001)
        await asyncio.sleep(0)
        return [*seen, counted()]

    assert asyncio.run(answer_requests()) == [None, None, 2.0, 3.0]
