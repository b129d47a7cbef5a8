"""The benchmark: apictl and a bare ASGI reference, side by side, in one run.

    python -m bench.run                 # full: 2 rounds x 15 s per workload and target
    python -m bench.run --smoke         # a few seconds, for CI: proves the benchmark still runs
    python -m bench.run --tracing       # also traced at ratio 0.01 and 1.0, A/B
    python -m bench.run --workloads stream   # idle event streams only (bench/streams.py)

One server worker pinned to core 0, wrk pinned to core 1 (PostgreSQL and Redis float). Targets
are interleaved within each round and medians are taken over rounds, so every apictl figure is
a ratio to the reference measured minutes apart on the same machine. apictl runs with its full
production stack on: request id, JSON access log, metrics, gzip, CORS, auth. The `stream`
workload comes last, on apictl targets only (the reference serves no event stream), each count
of streams on a worker started afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import psycopg
import redis

from bench.otlp_sink import start_sink
from bench.report import REFERENCES, write_reports
from bench.seed import seed
from bench.streams import StreamMeasurement, worker_pid
from bench.streams import measure as measure_streams
from service.config import load_settings
from service.events.bus import STREAM
from service.ops.migrations import Migrator
from service.process.embedded import detach, start_postgres, start_redis
from service.webhooks.message import new_secret

HERE = Path(__file__).resolve().parent
WORKLOADS = {
    "health": None,
    "read": HERE / "wrk" / "read.lua",
    "list": HERE / "wrk" / "list.lua",
    "write": HERE / "wrk" / "write.lua",
}
STREAM_WORKLOAD = "stream"  # idle event streams (bench/streams.py), after the others
WEBHOOK_TARGET = "apictl+webhook"
SERVER_CORE, LOAD_CORE = "0", "1"
BENCH_DB = "apictl_bench"


@dataclass
class Measurement:
    target: str
    workload: str
    round: int
    connections: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    peak_rss_mb: float


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """RPS, latency percentiles, max, non-2xx and socket errors from `wrk --latency` output."""
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE))
    latency_line = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.MULTILINE)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(percentiles["50"]),
        "p90_ms": _ms(percentiles["90"]),
        "p99_ms": _ms(percentiles["99"]),
        "max_ms": _ms(latency_line.group(1)) if latency_line else 0.0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk from the OS packages ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk is needed: apt-get install wrk")


class Server:
    """A server process pinned to one core, with its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, log: Path):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.command, self.env, self.log = command, env, log
        log.write_text("")
        self.start()

    def start(self) -> None:
        """Start the server (again, once stopped) and wait until it answers."""
        pin = ["taskset", "-c", SERVER_CORE] if os.cpu_count() and os.cpu_count() > 1 else []  # type: ignore[operator]
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [*pin, *self.command], env=self.env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                time.sleep(0.2)
            if self.process.poll() is not None:
                sys.exit(f"{self.name} failed to start; see {self.log}")
        sys.exit(f"{self.name} did not answer within 60 s; see {self.log}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_wrk(
    wrk: str, server: Server, workload: str, seconds: float, connections: int, env: dict[str, str]
) -> dict[str, Any]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    command += ["--timeout", "10s"]
    script = WORKLOADS[workload]
    if script is not None:
        command += ["-s", str(script)]
    path = "/health" if workload == "health" else "/"
    pin = ["taskset", "-c", LOAD_CORE] if (os.cpu_count() or 1) > 1 else []
    done = subprocess.run(
        [*pin, *command, server.url + path], env=env, capture_output=True, text=True, check=True
    )
    return parse_wrk(done.stdout)


def prepare_servers(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """Database and Redis URLs: given, or private embedded servers in `work`."""
    admin_url = args.database_url or start_postgres(work / "data")
    redis_url = args.redis_url or start_redis(work / "data")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    database_url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{BENCH_DB}"))
    client = redis.Redis.from_url(redis_url)
    client.delete(STREAM)
    client.close()
    return database_url, redis_url


def pool_budget(database_url: str, servers: int) -> int:
    """Pool size for every target, so that all of them at full pools fit PostgreSQL's
    max_connections (an idle target keeps its connections): apictl's default 20 unless more
    targets run than that allows. Each apictl process holds two direct connections beside its
    pool (the relay's lock and LISTEN), each reference one (its relay's), and a few are kept
    for seeding and superusers."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
    available = (row[0] if row else 100) - 10
    return max(2, min(20, available // servers - 2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="seconds, not minutes (CI)")
    parser.add_argument("--duration", type=float, default=15, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before each measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--stress-connections", type=int, default=256)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--database-url", help="a PostgreSQL server to use (default: embedded)")
    parser.add_argument("--redis-url", help="a Redis server to use (default: embedded)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--workloads",
        default=",".join([*WORKLOADS, STREAM_WORKLOAD]),
        help="comma list of workloads (default: all)",
    )
    parser.add_argument(
        "--streams",
        default="1000,10000",
        help="comma list: how many idle event streams the stream workload opens, in turn",
    )
    parser.add_argument(
        "--stream-idle", type=float, default=20, help="seconds of idle CPU measured (0: none)"
    )
    parser.add_argument(
        "--stream-events", type=int, default=5, help="post.created events fanned out to them"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="also measure apictl with these settings, as target NAME (A/B in one run), e.g."
        " apictl-fastapi:APICTL_COMPILED_ROUTES=false",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="also measure apictl with OpenTelemetry tracing on (docs/operations/tracing.md),"
        " exporting to a local OTLP sink, as targets traced-0.01 (parentbased_traceidratio 0.01)"
        " and traced-1.0 (every request)",
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="also measure apictl with one webhook endpoint subscribed to every event (a local"
        " sink answering 200), as target apictl+webhook: the same process, the endpoint enabled"
        " only while that target is measured",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=APICTL",
        help="also measure another build of apictl, as target NAME (A/B of a change in one run),"
        " e.g. before=../before/.venv/bin/apictl (a checkout of the commit before it)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.warmup, args.rounds = 2, 1, 1
        args.users, args.posts, args.stress_connections = 20, 200, 0
        args.streams, args.stream_idle, args.stream_events = "200", 2, 2
    chosen = args.workloads.split(",")
    if unknown := set(chosen) - {*WORKLOADS, STREAM_WORKLOAD}:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    args.streams = [int(n) for n in args.streams.split(",")]

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="apictl-bench-"))
    database_url, redis_url = prepare_servers(args, work)
    settings = load_settings(_env_file=None, database_url=database_url, redis_url=redis_url)
    Migrator(settings).up()
    print(f"seeding {args.users} users and {args.posts} posts through apictl ...", flush=True)
    tokens, posts = asyncio.run(seed(settings, args.users, args.posts))
    (work / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (work / "posts.txt").write_text("\n".join(posts) + "\n")
    wrk_env = {**os.environ, "BENCH_TOKENS": str(work / "tokens.txt")}
    wrk_env["BENCH_POSTS"] = str(work / "posts.txt")

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("APICTL_")}
    base_env |= {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    apictl_env = base_env | {
        "APICTL_ENV": "production",
        "APICTL_LOG_FORMAT": "json",
        "APICTL_CORS_ORIGINS": "https://app.example.com",
        # Every request is counted, as in production, but a run's few users must never trip
        # the limit: a 429 is not the work being measured (and the stream workload's posts
        # come after the other workloads' minute of requests).
        "APICTL_API_RATE_LIMIT": "1000000000/minute",
    }
    reference_cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.reference:app",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    apictl_cmd = [str(Path(sys.executable).parent / "apictl"), "serve"]
    if args.tracing:
        endpoint = f"OTEL_EXPORTER_OTLP_ENDPOINT={start_sink()}"
        ratio = "OTEL_TRACES_SAMPLER=parentbased_traceidratio,OTEL_TRACES_SAMPLER_ARG=0.01"
        args.variant += [f"traced-0.01:{endpoint},{ratio}", f"traced-1.0:{endpoint}"]
    if args.webhook:  # the sink listens on loopback
        apictl_env |= {"APICTL_WEBHOOK_ALLOW_PRIVATE": "true"}
    pool = pool_budget(database_url, 3 + len(args.variant) + len(args.baseline))
    print(f"every target's database pool: {pool} connections", flush=True)
    base_env |= {"REFERENCE_POOL_MAX": str(pool)}
    apictl_env |= {"APICTL_DB_POOL_MAX": str(pool), "APICTL_DB_POOL_MIN": str(min(5, pool))}
    servers = {
        "reference-cached": Server(
            "reference-cached",
            [*reference_cmd, "--port", "18003"],
            base_env | {"REFERENCE_TOKEN_CACHE": "1"},
            18003,
            work / "reference-cached.log",
        ),
        "reference": Server(
            "reference",
            [*reference_cmd, "--port", "18001"],
            base_env,
            18001,
            work / "reference.log",
        ),
        "apictl": Server(
            "apictl", [*apictl_cmd, "--port", "18002"], apictl_env, 18002, work / "apictl.log"
        ),
    }
    for port, variant in enumerate(args.variant, start=18010):
        name, _, assignments = variant.partition(":")
        extra = dict(item.split("=", 1) for item in assignments.split(",") if item)
        servers[name] = Server(
            name, [*apictl_cmd, "--port", str(port)], apictl_env | extra, port, work / f"{name}.log"
        )
    for port, baseline in enumerate(args.baseline, start=18030):
        name, _, executable = baseline.partition("=")
        servers[name] = Server(
            name, [executable, "serve", "--port", str(port)], apictl_env, port, work / f"{name}.log"
        )
    targets: dict[str, tuple[Server, Callable[[bool], None]]] = {
        name: (server, lambda on: None) for name, server in servers.items()
    }
    if args.webhook:
        targets[WEBHOOK_TARGET] = (servers["apictl"], subscribe_sink(database_url))
    measurements: list[Measurement] = []
    http = [w for w in chosen if w in WORKLOADS]
    try:
        plan = [(r, w) for r in range(args.rounds) for w in http]
        stress = [(-1, w) for w in http] if args.stress_connections else []
        for round_no, workload in [*plan, *stress]:
            order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
            connections = args.connections if round_no >= 0 else args.stress_connections
            for name in order:
                server, subscribed = targets[name]
                subscribed(True)
                try:
                    measured = measure(
                        wrk, server, name, workload, round_no, connections, args, wrk_env
                    )
                finally:
                    subscribed(False)
                measurements.append(measured)
    finally:
        for server in servers.values():
            server.stop()
    streams = run_streams(servers, args, tokens) if STREAM_WORKLOAD in chosen else []
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("database_url", "redis_url")
        },
        "measurements": [asdict(m) for m in measurements],
        "streams": [asdict(m) for m in streams],
    }
    write_reports(results, args.out, smoke=args.smoke)
    detach(work / "data")  # stop the private embedded servers before deleting their files
    shutil.rmtree(work, ignore_errors=True)


def subscribe_sink(database_url: str) -> Callable[[bool], None]:
    """One webhook endpoint for every event, at a local sink: a function enabling it (while
    apictl+webhook is measured) and disabling it (its pending deliveries then wait)."""
    core = int(LOAD_CORE) if (os.cpu_count() or 1) > 1 else None
    url = f"{start_sink(core)}/hooks"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO webhook_endpoints (url, secret, enabled) VALUES (%s, %s, false)",
            (url, new_secret()),
        )

    def subscribed(on: bool) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE webhook_endpoints SET enabled = %s", (on,))
            if not on:  # what the measurement left undelivered, then a clean slate
                counts = conn.execute(
                    "SELECT status, count(*) FROM webhook_deliveries GROUP BY 1"
                ).fetchall()
                print(f"  {WEBHOOK_TARGET}: deliveries {dict(counts)}", flush=True)
                conn.execute("DELETE FROM webhook_deliveries")

    return subscribed


def run_streams(
    servers: dict[str, Server], args: argparse.Namespace, tokens: list[str]
) -> list[StreamMeasurement]:
    """The stream workload on every apictl target, each count of streams on a worker started
    afresh: none inherits the memory a count before it left behind (the allocator keeps it)."""
    core = int(LOAD_CORE) if (os.cpu_count() or 1) > 1 else None
    measured = []
    for server in (s for name, s in servers.items() if name not in REFERENCES):
        for count in args.streams:
            server.start()
            try:
                measured.append(
                    measure_streams(
                        server.url,
                        worker_pid(server.process.pid, server.port),
                        tokens,
                        count,
                        idle_seconds=args.stream_idle,
                        events=args.stream_events,
                        core=core,
                        target=server.name,
                    )
                )
            finally:
                server.stop()
    return measured


def measure(
    wrk: str,
    server: Server,
    target: str,
    workload: str,
    round_no: int,
    connections: int,
    args: argparse.Namespace,
    env: dict[str, str],
) -> Measurement:
    if args.warmup:
        run_wrk(wrk, server, workload, args.warmup, connections, env)
    figures = run_wrk(wrk, server, workload, args.duration, connections, env)
    m = Measurement(
        target,
        workload,
        round_no,
        connections,
        peak_rss_mb=round(peak_rss_mb(server.process.pid), 1),
        **figures,
    )
    print(
        f"  {m.target:16} {m.workload:6} c={connections:<3} {m.rps:9.0f} rps"
        f"  p99 {m.p99_ms:7.2f} ms  non-2xx {m.non_2xx}  errors {m.socket_errors}"
        f"  rss {m.peak_rss_mb} MB",
        flush=True,
    )
    return m


if __name__ == "__main__":
    main()
