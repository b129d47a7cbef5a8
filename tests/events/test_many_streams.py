"""10,000 idle event streams on one worker: what each costs it, how fast one event reaches them
all, and that closing them gives everything back.

`apictl serve` (one worker, production settings) on one core; bench/streams.py, the benchmark's
`stream` workload, opens the streams from client processes on another core and measures the
worker from /proc (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.accounts import Account
from fixtures.servers import RunningServer

pytestmark = [pytest.mark.slow, pytest.mark.standalone, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]  # bench/ is in the checkout, not in the package
STREAMS = 10_000
EVENTS = 3
READERS = 20  # 500 streams each: well inside a user's API rate limit of 1,200 a minute
SERVER_CORE, LOAD_CORE = 0, 1  # as the benchmark pins them
KB_PER_STREAM = 12
FANOUT_P99_MS = 250
RSS_AFTER_RATIO = 1.2  # RSS once the streams closed, over RSS before they opened
FD_SLACK = 5


def pin(pid: int, core: int) -> None:
    """Every thread of process `pid` onto `core`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {core})


def measure_streams(server: RunningServer, tokens: Path) -> dict[str, Any]:
    """`python -m bench.streams` against `server`: its figures (it prints them as JSON)."""
    command = [sys.executable, "-m", "bench.streams", "--url", server.url]
    command += ["--pid", str(server.process.pid), "--tokens", str(tokens)]
    command += ["--streams", str(STREAMS), "--events", str(EVENTS), "--idle", "0"]
    if len(os.sched_getaffinity(0)) > 1:
        pin(server.process.pid, SERVER_CORE)
        command += ["--core", str(LOAD_CORE)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def test_ten_thousand_idle_streams_are_cheap_hear_an_event_at_once_and_leave_nothing_behind(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    make_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    production = {
        **server_env,
        "APICTL_ENV": "production",
        "APICTL_LOG_FORMAT": "json",
        "APICTL_CORS_ORIGINS": "https://app.example.com",
    }
    server = start_server(production)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(make_account(f"r{n}@example.com").token for n in range(READERS)))

    m = measure_streams(server, tokens)

    # the harness's part: every stream opened and stayed open until the client closed it
    assert m["opened"] == STREAMS, m["open_errors"]
    assert m["ended_by_server"] == 0, "the server ended streams that the client kept open"
    fanout = "; ".join(
        f"{f['delivered']:,} reached, p50 {f['p50_ms']} / p99 {f['p99_ms']} / max {f['max_ms']} ms"
        for f in m["fanout"]
    )
    figures = (
        f"{m['kb_per_stream']} KB a stream (RSS {m['rss_before_mb']} -> {m['rss_open_mb']} MB);"
        f" fan-out of {EVENTS} post.created: {fanout}; after closing: gauge"
        f" {m['subscribers_after']:g}, open files {m['fds_before']} -> {m['fds_after']}, RSS"
        f" {m['rss_after_mb']} MB ({m['rss_after_ratio']} of before)"
    )
    failing = [
        reason
        for reason, failed in {
            f"an idle stream costs over {KB_PER_STREAM} KB": m["kb_per_stream"] > KB_PER_STREAM,
            "an event missed streams": any(f["delivered"] < STREAMS for f in m["fanout"]),
            f"fan-out p99 over {FANOUT_P99_MS} ms": any(
                f["p99_ms"] > FANOUT_P99_MS for f in m["fanout"]
            ),
            "subscribers left after closing": m["subscribers_after"] != 0,
            "open files left after closing": m["fds_after"] > m["fds_before"] + FD_SLACK,
            f"RSS after closing over {RSS_AFTER_RATIO}x before": (
                m["rss_after_ratio"] > RSS_AFTER_RATIO
            ),
        }.items()
        if failed
    ]
    assert not failing, f"{', '.join(failing)}: {figures}"
