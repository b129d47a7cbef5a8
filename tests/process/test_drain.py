"""Drain on SIGTERM and worker recycling (--max-requests), on real `apictl serve` processes."""

from __future__ import annotations

import asyncio
import contextvars
import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from fixtures.accounts import Account
from fixtures.sse_client import SseReader, subscribe
from service.context import RequestInfo, current_request, current_request_id
from service.process.drain import Drain

Apictl = Callable[..., CompletedProcess[str]]
DELAY = 2.0


def _connection(url: str) -> http.client.HTTPConnection:
    address = urlsplit(url)
    return http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)


def _refused_soon(url: str, within: float = 1.0) -> bool:
    """Whether new connections are refused within `within` seconds."""
    address = urlsplit(url)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address.hostname, address.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_drains_then_stops(
    start_server: Callable[..., Any], server_env: dict[str, str], alice: Account
) -> None:
    env = {**server_env, "APICTL_SHUTDOWN_DELAY": str(DELAY), "APICTL_SHUTDOWN_TIMEOUT": "5"}
    server = start_server(env)
    kept = _connection(server.url)  # a keep-alive connection from before the signal
    kept.request("GET", "/health")
    before = kept.getresponse()
    before.read()
    assert before.getheader("connection") is None
    # a request in flight across the stop: its headers now, its body after the delay
    slow = _connection(server.url)
    body = json.dumps({"title": "sent across the stop"}).encode()
    slow.putrequest("POST", "/api/v1/posts")
    for name, value in {**alice.headers, "Content-Type": "application/json"}.items():
        slow.putheader(name, value)
    slow.putheader("Content-Length", str(len(body)))
    slow.endheaders()

    async def stream_ends_after_the_delay() -> float:
        async with (
            httpx2.AsyncClient(timeout=10) as client,
            subscribe(client, server.url, alice.headers) as sse,
        ):
            server.process.send_signal(signal.SIGTERM)
            await _drained(sse)
            return time.monotonic()

    signalled = time.monotonic()
    stream_lasted = asyncio.run(stream_ends_after_the_delay()) - signalled
    assert DELAY - 0.5 < stream_lasted < DELAY + 1.5  # served through the delay, then ended
    slow.send(body)  # the listener is closed by now; this request was accepted before
    created = slow.getresponse()
    assert created.status == 201
    assert created.getheader("connection") == "close"
    assert _refused_soon(server.url)  # uvicorn closes its listener at its next tick
    assert server.process.wait(timeout=10) == 0
    assert time.monotonic() - signalled < DELAY + 5
    kept.close()
    slow.close()


async def _drained(sse: SseReader) -> None:
    """Read the stream to its end, checking what the drain shows meanwhile."""
    url = str(sse.response.url).split("/api/")[0]
    await asyncio.sleep(0.3)
    async with httpx2.AsyncClient(timeout=5) as other:
        ready = await other.get(f"{url}/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "draining"
        health = await other.get(f"{url}/health")  # a new connection is still served ...
        assert health.status_code == 200
        assert health.headers["connection"] == "close"  # ... and closed after its answer
    try:
        while True:
            await sse.next(wait=DELAY + 3)
    except EOFError:
        return


def test_the_drain_does_not_take_the_id_of_the_request_it_interrupts() -> None:
    """A signal lands inside whatever callback runs, maybe one a request scheduled: the drain's
    log lines ("draining: ...") must not carry that request's id."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    async def interrupted() -> str:
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[str] = loop.create_future()
        Drain(0).install(lambda: stopped.set_result(current_request_id()))

        def in_a_request() -> None:
            current_request.set(RequestInfo("who-1"))
            signal.raise_signal(signal.SIGTERM)  # its handler runs here, in this context

        loop.call_soon(in_a_request, context=contextvars.Context())
        return await asyncio.wait_for(stopped, 5)

    try:
        assert asyncio.run(interrupted()) == "-"
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_workers_are_replaced_after_max_requests_without_failing_one(
    start_server: Callable[..., Any], server_env: dict[str, str], alice: Account
) -> None:
    args = ("--workers", "2", "--max-requests", "300", "--max-requests-jitter", "100")
    server = start_server({**server_env, "APICTL_API_RATE_LIMIT": "off"}, *args)
    failures: list[str] = []
    answered = [0]
    until = time.monotonic() + 8

    def client() -> None:
        connection = _connection(server.url)
        n = 0
        while time.monotonic() < until:
            n += 1
            path = "/api/v1/users/me" if n % 2 else "/health"
            try:
                connection.request("GET", path, headers=alice.headers)
                answer = connection.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{path}: {exc!r}")
                connection = _connection(server.url)
                continue
            if answer.status != 200:
                failures.append(f"{path}: {answer.status}")
            answered[0] += 1
            if answer.getheader("connection") == "close":
                connection.close()
                connection = _connection(server.url)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    code, log = server.stop()
    assert failures == []
    replaced = log.count("this worker is replaced")
    assert replaced >= 3, f"{answered[0]} requests, {replaced} workers replaced"
    assert log.count("] died") >= 2  # uvicorn's supervisor started new ones in their place
    assert code == 0


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["--max-requests", "100"], {}, 2, "--max-requests needs --workers 2 or more"),
        (["--max-requests", "0", "--workers", "2"], {}, 2, "--max-requests"),
        (["--max-requests-jitter", "5"], {}, 2, "--max-requests-jitter needs --max-requests"),
        # settings from the environment: bad configuration, exit 1 (apictl/errors.py)
        ([], {"APICTL_MAX_REQUESTS_JITTER": "5"}, 1, "APICTL_MAX_REQUESTS_JITTER needs"),
        ([], {"APICTL_SHUTDOWN_DELAY": "-1"}, 1, "APICTL_SHUTDOWN_DELAY"),
        ([], {"APICTL_MAX_REQUESTS": "0"}, 1, "APICTL_MAX_REQUESTS"),
    ],
)
def test_bad_drain_settings_start_nothing(
    apictl: Apictl,
    server_env: dict[str, str],
    args: list[str],
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    result = apictl("serve", "--port", "1", *args, env={**server_env, **env})
    assert result.returncode == code
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "serving on" not in result.stdout
