"""The exporter never slows a request, and sampling keeps what it says (docs/operations/tracing.md).

With the collector down or answering in 5 s, requests take what they take with tracing off,
spans are dropped and counted in /metrics, and memory stays flat while they are. The ratio
sampler exports about its share of traces.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import httpx2
import psutil
import pytest

from fixtures.accounts import Account
from fixtures.otlp import SERVER, running_collector
from fixtures.servers import RunningServer, free_port

DROPPED = re.compile(r'^apictl_trace_spans_dropped_total\{reason="(\w+)"\} (\S+)$', re.M)


def dropped(server: RunningServer) -> float:
    """Spans the server has dropped so far, for any reason, from its /metrics."""
    text = httpx2.get(f"{server.url}/metrics").text
    return sum(float(count) for _, count in DROPPED.findall(text))


def latencies(client: httpx2.Client, path: str, count: int) -> list[float]:
    """Seconds each of `count` sequential GETs of `path` took (all must answer 200)."""
    return interleaved([(client, path)], count)[0]


def interleaved(reads: list[tuple[httpx2.Client, str]], count: int) -> list[list[float]]:
    """`latencies` of each (client, path), their requests taking turns: whatever else the
    machine does meanwhile weighs on all of them alike."""
    taken: list[list[float]] = [[] for _ in reads]
    for _ in range(count):
        for (client, path), seconds in zip(reads, taken, strict=True):
            started = time.perf_counter()
            response = client.get(path)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200
    return taken


def flood(client: httpx2.Client, path: str, count: int, concurrency: int = 8) -> None:
    """`count` GETs of `path`, `concurrency` at a time, as `client` (all must answer 200)."""

    async def worker(http: httpx2.AsyncClient) -> None:
        for _ in range(count // concurrency):
            assert (await http.get(path)).status_code == 200

    async def run() -> None:
        async with httpx2.AsyncClient(base_url=client.base_url, headers=client.headers) as http:
            await asyncio.gather(*(worker(http) for _ in range(concurrency)))

    asyncio.run(run())


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def reads(server: RunningServer, alice: Account) -> tuple[httpx2.Client, str]:
    """A keep-alive client of `server` as alice, and the path of a post of hers (one SQL)."""
    client = httpx2.Client(base_url=server.url, headers=alice.headers)
    made = client.post("/api/v1/posts", json={"title": "read me"})
    assert made.status_code == 201
    path = f"/api/v1/posts/{made.json()['id']}"
    latencies(client, path, 100)  # warm: the token cache, statement cache, allocator
    return client, path


def test_a_collector_down_or_slow_slows_no_request_and_its_dropped_spans_are_counted(
    start_server: Callable[..., RunningServer], server_env: dict[str, str], alice: Account
) -> None:
    server_env = {**server_env, "APICTL_API_RATE_LIMIT": "off"}  # thousands of reads a minute
    untraced = start_server(server_env)  # the yardstick, answering beside each traced server
    plain = reads(untraced, alice)

    nowhere = f"http://127.0.0.1:{free_port()}"  # down: nothing listens there
    down = start_server({**server_env, "OTEL_EXPORTER_OTLP_ENDPOINT": nowhere})
    client, path = reads(down, alice)
    process = psutil.Process(down.process.pid)
    off, unreachable = interleaved([plain, (client, path)], 400)
    # 5,000 requests in all; the cheapest route, so they pass quickly: one span each
    flood(client, "/health", 2200)
    early_drops, rss_half = dropped(down), process.memory_info().rss
    flood(client, "/health", 2200)
    late_drops, rss_end = dropped(down), process.memory_info().rss
    client.close()
    down.stop()

    with running_collector(delay=5.0) as collector:
        slow = start_server({**server_env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
        client, path = reads(slow, alice)
        flood(client, "/health", 1600)  # the first export still waits: the queue is full
        off_too, slowed = interleaved([plain, (client, path)], 400)
        slow_drops = dropped(slow)
        client.close()
        started = time.monotonic()
        code, _ = slow.stop()
        stop_seconds = time.monotonic() - started
        assert collector.bodies  # it was reached, and answered slowly
    plain[0].close()
    untraced.stop()

    report = (
        f"median ms off {statistics.median(off) * 1e3:.2f}, collector down"
        f" {statistics.median(unreachable) * 1e3:.2f}, off {statistics.median(off_too) * 1e3:.2f},"
        f" slow {statistics.median(slowed) * 1e3:.2f}; p90 ms {p90(off) * 1e3:.2f} /"
        f" {p90(unreachable) * 1e3:.2f} / {p90(off_too) * 1e3:.2f} / {p90(slowed) * 1e3:.2f};"
        f" dropped (down) {early_drops:.0f} -> {late_drops:.0f}, (slow) {slow_drops:.0f};"
        f" RSS MB (down) {rss_half / 2**20:.1f} -> {rss_end / 2**20:.1f};"
        f" stop with the slow collector {stop_seconds:.1f} s"
    )
    print(report)
    # a behaviour, not a benchmark: generous bounds
    for yardstick, traced in ((off, unreachable), (off_too, slowed)):
        assert statistics.median(traced) <= statistics.median(yardstick) * 1.5 + 0.001, report
        assert p90(traced) <= p90(yardstick) * 2 + 0.002, report
    assert 0 < early_drops < late_drops, report
    assert slow_drops > 0, report
    assert rss_end - rss_half < 8 * 2**20, report  # the queue is full by then: flat
    assert code == 0
    assert stop_seconds < 8, report  # the exporter's wait at shutdown is bounded


def test_the_ratio_sampler_exports_about_its_share_of_traces(
    start_server: Callable[..., RunningServer], server_env: dict[str, str]
) -> None:
    requests = 2000
    with running_collector() as collector:
        env = {
            **server_env,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{collector.url}/v1/traces",
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
        }
        server = start_server(env)
        with httpx2.Client(base_url=server.url) as client:
            flood(client, "/health", requests)
        code, _ = server.stop()  # exports what is still queued
        assert code == 0
        roots = [s for s in collector.spans() if s.kind == SERVER and s.parent_span_id == ""]
    # 20 expected: P(outside 4..60) < 1e-4
    assert 0.002 * requests <= len(roots) <= 0.03 * requests, len(roots)
    assert {s.name for s in roots} == {"GET /health"}


@pytest.mark.parametrize(
    ("otel", "loaded"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, True),
    ],
    ids=["no endpoint", "sdk disabled", "endpoint"],
)
def test_without_tracing_nothing_of_the_sdk_is_loaded(
    server_env: dict[str, str], otel: dict[str, str], loaded: bool
) -> None:
    probe = (
        "import sys; from service.app import app_from_env; app = app_from_env();"
        "spans = any(m.kwargs.get('spans') is not None for m in app.user_middleware);"
        "sdk = any(m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))"
        " for m, module in sys.modules.items() if module);"
        "print(sdk, spans)"
    )
    env = {k: v for k, v in server_env.items() if not k.startswith("OTEL_")} | otel
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [str(loaded), str(loaded)]
