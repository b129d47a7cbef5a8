"""`apictl serve` and `apictl check health` as real processes."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx2
import psutil
import pytest

Apictl = Callable[..., CompletedProcess[str]]
ACCESS_FIELDS = {"ts", "level", "msg", "request_id", "method", "route", "status", "duration_ms"}


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_serve_probes_and_exits_0_on_sigterm(
    apictl: Apictl, start_server: Callable[..., Any], server_env: dict[str, str]
) -> None:
    env = {**server_env, "APICTL_LOG_FORMAT": "json", "APICTL_SHUTDOWN_TIMEOUT": "5"}
    server = start_server(env)

    probe = apictl("check", "health", "--url", server.url, "--json", env=env)
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)
    assert report["status"] == "healthy"
    assert report["ready"]["body"]["checks"]["database"]["status"] == "ok"

    missing = httpx2.get(f"{server.url}/no/such/thing", headers={"X-Request-ID": "e2e-1"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found", "code": "not_found", "request_id": "e2e-1"}
    assert missing.headers["x-request-id"] == "e2e-1"

    began = time.monotonic()
    code, stderr = server.stop()
    assert code == 0
    assert time.monotonic() - began < 5 + 1

    access = [line for line in _json_lines(stderr) if line.get("msg") == "request"]
    not_found = next(line for line in access if line["request_id"] == "e2e-1")
    assert not_found.keys() >= ACCESS_FIELDS
    assert not_found["status"] == 404
    assert not_found["method"] == "GET"
    health = next(line for line in access if line["route"] == "/health")
    assert health["status"] == 200


def test_check_health_exit_1_when_database_is_gone(
    apictl: Apictl,
    start_server: Callable[..., Any],
    server_env: dict[str, str],
    database_url: str,
    drop_database: Callable[[str], None],
) -> None:
    server = start_server(server_env)
    drop_database(database_url)
    probe = apictl("check", "health", "--url", server.url, env=server_env)
    assert probe.returncode == 1
    assert "UNHEALTHY" in probe.stdout
    assert "database down" in probe.stdout


def test_check_health_exit_2_when_nothing_listens(apictl: Apictl, free_port: int) -> None:
    probe = apictl("check", "health", "--url", f"http://127.0.0.1:{free_port}", "--timeout", "2")
    assert probe.returncode == 2
    assert "unreachable" in probe.stderr
    assert "Traceback" not in probe.stderr


def test_port_in_use_is_one_clear_line(
    apictl: Apictl, server_env: dict[str, str], free_port: int
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        result = apictl("serve", "--port", str(free_port), env=server_env, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{free_port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_embedded_servers_start_are_shared_and_stop_with_the_last_user(
    start_server: Callable[..., Any], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "APICTL_DATA_DIR": str(data_dir)}
    began = time.monotonic()
    server = start_server(env)
    ready = httpx2.get(f"{server.url}/ready", timeout=5)
    assert time.monotonic() - began < 15
    assert ready.status_code == 200
    assert {name: check["status"] for name, check in ready.json()["checks"].items()} == {
        "database": "ok",
        "redis": "ok",
        "migrations": "ok",  # development serve applied them first
        "events": "ok",
    }

    # A second process on the same data dir attaches to the running servers...
    attach = (
        "import sys; from pathlib import Path; "
        "from service.process.embedded import start_postgres, start_redis; "
        "print(start_postgres(Path(sys.argv[1]))); print(start_redis(Path(sys.argv[1])))"
    )
    second = subprocess.run(
        [sys.executable, "-c", attach, str(data_dir)], capture_output=True, text=True, check=True
    )
    pg_url, redis_url = second.stdout.split()
    assert str(data_dir / "postgres") in pg_url
    assert redis_url == f"unix://{data_dir / 'redis' / 'redis.sock'}"
    # ...and its exit does not stop them under the server.
    assert httpx2.get(f"{server.url}/ready", timeout=5).status_code == 200

    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    redis_pid = int((data_dir / "redis" / "redis.pid").read_text())
    code, _ = server.stop()
    assert code == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        psutil.pid_exists(postmaster) or psutil.pid_exists(redis_pid)
    ):
        time.sleep(0.1)
    assert not psutil.pid_exists(postmaster)
    assert not psutil.pid_exists(redis_pid)


def test_the_serving_process_never_imports_the_migrator(
    server_env: dict[str, str], free_port: int, tmp_path: Path
) -> None:
    """yoyo and psycopg (a third of a worker's memory) load only in `apictl migrate`; the test
    database is migrated already, so no migrator child writes into this import log."""
    log = tmp_path / "importtime.log"
    command = [sys.executable, "-X", "importtime", "-m", "apictl", "serve"]
    command += ["--port", str(free_port)]
    with log.open("w") as output:
        server = subprocess.Popen(command, env=server_env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(f"http://127.0.0.1:{free_port}/health", timeout=1).is_success:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"apictl serve did not answer /health:\n{log.read_text()}")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    imported = [line.split("|")[-1].strip() for line in log.read_text().splitlines()]
    assert "fastapi" in imported  # the app was built in this process
    assert [m for m in imported if m.split(".")[0] in ("yoyo", "psycopg")] == []


def test_serve_raises_a_lowered_open_files_limit_and_says_how_many_streams_fit(
    start_server: Callable[..., Any], server_env: dict[str, str]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 512:
        pytest.skip("needs a finite hard open-files limit above 512")
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))  # what `apictl serve` inherits
    try:
        server = start_server(server_env, "--workers", "2")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    serving = psutil.Process(server.process.pid)  # the workers are its children
    assert len(serving.children()) >= 2
    for process in (serving, *serving.children()):
        assert process.rlimit(psutil.RLIMIT_NOFILE) == (hard, hard), process.cmdline()
    code, output = server.stop()
    assert code == 0
    capacity = hard - (20 + 1 + 50 + 200)  # the database pool, the relay, Redis, a reserve
    assert (
        f"  streams  open files raised from 512 to {hard:,}: up to {capacity:,} live streams"
        " per worker\n"
    ) in output


def test_serve_says_when_apictl_max_streams_is_the_limit(
    start_server: Callable[..., Any], server_env: dict[str, str]
) -> None:
    server = start_server({**server_env, "APICTL_MAX_STREAMS": "300"})
    code, output = server.stop()
    assert code == 0
    assert ": up to 300 live streams per worker (APICTL_MAX_STREAMS)\n" in output


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_bad_apictl_max_streams_is_a_configuration_error(
    apictl: Apictl, server_env: dict[str, str], value: str
) -> None:
    result = apictl("serve", env={**server_env, "APICTL_MAX_STREAMS": value}, timeout=30)
    assert result.returncode == 1
    [problem] = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert problem.startswith("  APICTL_MAX_STREAMS: ")
    assert f"(got {value!r})" in problem
    assert "Traceback" not in result.stderr


def _requests_counted(url: str) -> float:
    """apictl_http_requests_total for GET /api/v1/users/me answered 401, as /metrics says."""
    wanted = 'apictl_http_requests_total{method="GET",route="/api/v1/users/me",status="401"}'
    # a new connection each time, so the scrapes land on different workers
    text = httpx2.get(f"{url}/metrics", headers={"Connection": "close"}).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


def test_metrics_add_up_over_workers(
    start_server: Callable[..., Any], server_env: dict[str, str]
) -> None:
    server = start_server(server_env, "--workers", "2")
    workers = psutil.Process(server.process.pid).children()
    for _ in range(30):
        response = httpx2.get(f"{server.url}/api/v1/users/me", headers={"Connection": "close"})
        assert response.status_code == 401
    assert [_requests_counted(server.url) for _ in range(8)] == [30.0] * 8
    code, _ = server.stop()
    assert code == 0
    deadline = time.monotonic() + 10  # the workers (and multiprocessing's helper) follow it
    while not all(map(_exited, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(map(_exited, workers)), [w.cmdline() for w in workers if not _exited(w)]


def _exited(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # gone, not yet reaped
    except psutil.NoSuchProcess:
        return True
