"""The `stream` workload: N idle event streams, and what they cost one worker.

    python -m bench.streams --url http://127.0.0.1:8080 --pid 4321 --tokens tokens.txt \\
        --streams 10000 --core 1

opens N `GET /api/v1/events` streams (bench/stream_clients.py) and reads the worker (`--pid`)
from /proc: its resident memory per stream, its CPU while they idle, how long one `post.created`
takes to reach every stream (from the arrival of its POST's 201), and what is left once they
have closed (the `apictl_sse_subscribers` gauge, open files, memory). It prints the figures as
JSON. bench/run.py runs it as its `stream` workload, tests/events/test_many_streams.py holds
apictl to its targets with it.

Every process here may hold 20,000 open files at most, so the streams are spread over client
processes of 5,000 streams at most, pinned to the load core (`--core`) as this one is.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.stream_clients import Clients
from service.events.bus import SWEEP_SECONDS

IN_FLIGHT = 256  # opens under way at once, over all client processes
WARMUP_STREAMS = 20  # opened, sent an event and closed before the worker's baseline
GONE_WITHIN = 30.0  # seconds for the gauge to reach 0 once the streams closed
FD_SLACK = 5  # open files above the baseline that still count as back (a /metrics request)
SUBSCRIBERS = re.compile(rb"^apictl_sse_subscribers (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Usage:
    """What a process holds and has spent, read from /proc."""

    rss_kb: int
    cpu_seconds: float  # user + system, every thread
    fds: int


def usage(pid: int) -> Usage:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
    # utime and stime are fields 14 and 15; count after the command name, which may hold spaces
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return Usage(int(rss[1]) if rss else 0, cpu, len(os.listdir(f"/proc/{pid}/fd")))


def worker_pid(pid: int, port: int) -> int:
    """The process that serves `port`: a worker child of uvicorn's supervisor (several workers),
    else `pid` itself (`apictl serve` with one worker serves in its own process)."""
    import psutil

    for child in psutil.Process(pid).children():
        try:
            sockets = child.net_connections("tcp")
        except psutil.Error:
            continue
        if any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets):
            return child.pid
    return pid


@dataclass(frozen=True)
class Fanout:
    """One `post.created`: how many streams it reached, and when (ms after the POST's 201)."""

    delivered: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class StreamMeasurement:
    target: str
    streams: int
    opened: int
    open_seconds: float
    open_errors: dict[str, int]
    rss_before_mb: float
    rss_open_mb: float
    kb_per_stream: float
    idle_seconds: float = 0.0
    idle_cpu_percent: float | None = None  # of one core, the streams open and idle
    fanout: list[Fanout] = field(default_factory=list)
    fanout_p50_ms: float = 0.0  # medians over the events
    fanout_p99_ms: float = 0.0
    fanout_max_ms: float = 0.0  # the slowest stream of any event
    delivered_min: int = 0  # the fewest streams an event reached
    ended_by_server: int = 0  # streams the server closed before the client did
    subscribers_after: float = -1.0  # the gauge once they closed
    fds_before: int = 0
    fds_after: int = 0
    rss_after_mb: float = 0.0
    rss_after_ratio: float = 0.0  # RSS after they closed over RSS before they opened


def fanout(clients: Clients, url: str, token: str) -> Fanout:
    """POST a post; when each stream got its `post.created`, from the 201's arrival."""
    sent_at, post = create_post(url, token)
    latencies = sorted((t - sent_at) * 1000 for t in clients.collect(post))
    if not latencies:
        return Fanout(0, 0.0, 0.0, 0.0)
    return Fanout(
        len(latencies),
        round(percentile(latencies, 0.50), 1),
        round(percentile(latencies, 0.99), 1),
        round(latencies[-1], 1),
    )


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of an ordered list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _request(url: str, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.request(method, path, **kwargs)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def create_post(url: str, token: str) -> tuple[float, str]:
    """POST /api/v1/posts: when its 201 arrived (monotonic clock), and the post's id."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"title": "fan-out", "body": "One event to every stream."})
    status, answer = _request(url, "POST", "/api/v1/posts", body=body, headers=headers)
    arrived = time.monotonic()
    if status != 201:
        raise RuntimeError(f"POST /api/v1/posts answered {status}: {answer[:200]!r}")
    post: str = json.loads(answer)["id"]
    return arrived, post


def subscribers(url: str) -> float:
    """The worker's `apictl_sse_subscribers` gauge (GET /metrics)."""
    status, body = _request(url, "GET", "/metrics")
    found = SUBSCRIBERS.search(body)
    if status != 200 or found is None:
        raise RuntimeError(f"GET /metrics answered {status} without apictl_sse_subscribers")
    return float(found[1])


def _gone(url: str) -> float:
    """Wait (a bounded time) for the gauge to reach 0; the gauge then."""
    deadline = time.monotonic() + GONE_WITHIN
    while (gauge := subscribers(url)) > 0 and time.monotonic() < deadline:
        time.sleep(0.25)
    return gauge


def _files_back(pid: int, baseline: int) -> int:
    """Wait (a few seconds) for the open files to come back to `baseline`; how many are open."""
    deadline = time.monotonic() + 5
    while (fds := usage(pid).fds) > baseline + FD_SLACK and time.monotonic() < deadline:
        time.sleep(0.25)
    return fds


@contextmanager
def pinned(core: int | None) -> Iterator[None]:
    """This process on `core` (the load core) for a while, so that it never takes the server's."""
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(
    url: str,
    pid: int,
    tokens: list[str],
    streams: int,
    *,
    idle_seconds: float = 20.0,
    events: int = 5,
    core: int | None = None,
    target: str = "apictl",
) -> StreamMeasurement:
    """Open `streams` streams on the worker `pid` serving `url`, measure it, close them."""
    with pinned(core), Clients(streams, core) as clients:
        before = _warm_up(clients, url, pid, tokens)
        m = _open(clients, url, pid, tokens, streams, before, target)
        m.idle_seconds = idle_seconds
        m.idle_cpu_percent = _idle_cpu(pid, idle_seconds)
        for _ in range(events):
            time.sleep(0.5)  # the previous event written out everywhere
            m.fanout.append(fanout(clients, url, tokens[0]))
        m.ended_by_server = clients.close()
    _after(m, url, pid, before)
    return m


def _warm_up(clients: Clients, url: str, pid: int, tokens: list[str]) -> Usage:
    """The worker as streams leave it, less the streams; its usage then (the baseline).

    A few streams opened, sent an event and closed load the code and fill the caches; as many
    `GET /ready` at once as opens are in flight grow the database and Redis pools as far as
    opening grows them (a fresh worker's pools would otherwise grow, by some 9 MB and 60 files,
    while streams open, and count as theirs)."""
    clients.open(url, tokens, WARMUP_STREAMS, IN_FLIGHT)
    fanout(clients, url, tokens[0])
    clients.close()
    clients.burst(url, "/ready", IN_FLIGHT)
    _gone(url)
    time.sleep(0.5)
    return usage(pid)


def _open(
    clients: Clients,
    url: str,
    pid: int,
    tokens: list[str],
    streams: int,
    before: Usage,
    target: str,
) -> StreamMeasurement:
    opened, seconds, errors = clients.open(url, tokens, streams, IN_FLIGHT)
    _log(f"  {target}: {opened:,} of {streams:,} streams open in {seconds:.1f} s")
    time.sleep(1)  # the last opens' garbage collected
    held = usage(pid)
    return StreamMeasurement(
        target,
        streams,
        opened,
        round(seconds, 2),
        errors,
        rss_before_mb=round(before.rss_kb / 1024, 1),
        rss_open_mb=round(held.rss_kb / 1024, 1),
        kb_per_stream=round((held.rss_kb - before.rss_kb) / max(1, opened), 2),
    )


def _idle_cpu(pid: int, seconds: float) -> float | None:
    """The worker's CPU over `seconds`, in % of one core (None: not measured)."""
    if not seconds:
        return None
    start, started = usage(pid).cpu_seconds, time.monotonic()
    time.sleep(seconds)
    spent = usage(pid).cpu_seconds - start
    return round(spent / (time.monotonic() - started) * 100, 2)


def _after(m: StreamMeasurement, url: str, pid: int, before: Usage) -> None:
    """The fan-out's headline figures, and what is left once the streams closed."""
    if m.fanout:
        m.fanout_p50_ms = round(statistics.median(f.p50_ms for f in m.fanout), 1)
        m.fanout_p99_ms = round(statistics.median(f.p99_ms for f in m.fanout), 1)
        m.fanout_max_ms = max(f.max_ms for f in m.fanout)
        m.delivered_min = min(f.delivered for f in m.fanout)
    m.subscribers_after = _gone(url)
    m.fds_before, m.fds_after = before.fds, _files_back(pid, before.fds)
    time.sleep(SWEEP_SECONDS + 1)  # the worker gives memory back at its next sweep
    after = usage(pid)
    m.rss_after_mb = round(after.rss_kb / 1024, 1)
    m.rss_after_ratio = round(after.rss_kb / before.rss_kb, 2)
    _log(
        f"  {m.target}: {m.kb_per_stream} KB a stream, idle CPU {m.idle_cpu_percent} %,"
        f" fan-out p50 {m.fanout_p50_ms} / p99 {m.fanout_p99_ms} ms"
        f" (reached {m.delivered_min:,} of {m.opened:,}); closed: gauge {m.subscribers_after:g},"
        f" fds {m.fds_after} (before {m.fds_before}), RSS x{m.rss_after_ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--pid", type=int, required=True, help="`apictl serve`'s process id")
    parser.add_argument(
        "--tokens", type=Path, required=True, help="a file of API tokens, a line each"
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=20, help="seconds of idle CPU (0: skip)")
    parser.add_argument("--events", type=int, default=5, help="post.created events fanned out")
    parser.add_argument("--core", type=int, help="the CPU of the clients (the load core)")
    args = parser.parse_args()
    port = urlsplit(args.url).port or 80
    tokens = args.tokens.read_text().split()
    m = measure(
        args.url,
        worker_pid(args.pid, port),
        tokens,
        args.streams,
        idle_seconds=args.idle,
        events=args.events,
        core=args.core,
    )
    print(json.dumps(asdict(m), indent=2))


if __name__ == "__main__":
    main()
