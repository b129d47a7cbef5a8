"""A rolling restart behind a real HAProxy under load: no request fails, no event is lost or
repeated.

Three `apictl serve` instances share one database and Redis behind HAProxy, which checks
`GET /ready` and never retries (tests/fixtures/haproxy.py). Readers and writers keep calling
through it, and 20 event-stream clients reconnect as EventSource does (with Last-Event-ID)
whenever their stream ends. Each instance in turn gets SIGTERM, and is started again once it
has exited.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from fixtures.accounts import Account
from fixtures.haproxy import running_haproxy

pytestmark = [pytest.mark.slow, pytest.mark.standalone]
INSTANCES = 3
STREAMS = 20
DELAY = "2"  # APICTL_SHUTDOWN_DELAY: several of HAProxy's checks


class Load:
    """Threads of keep-alive clients reading and writing through the proxy until stopped."""

    def __init__(self, url: str, account: Account, threads: int = 4) -> None:
        self.address = urlsplit(url)
        self.headers = {**account.headers, "Content-Type": "application/json"}
        self.running = True
        self.failures: list[str] = []
        self.created: list[str] = []  # post ids, in the order their writes were answered
        self.answered = 0
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(timeout=30)

    def _client(self, n: int) -> None:
        connection = http.client.HTTPConnection(self.address.hostname or "", self.address.port)
        i = 0
        while self.running:
            i += 1
            method, path, body = (
                ("POST", "/api/v1/posts", json.dumps({"title": f"t{n}-{i}"}))
                if i % 3 == 0
                else ("GET", "/api/v1/posts?limit=5", None)
            )
            try:
                connection.request(method, path, body=body, headers=self.headers)
                answer = connection.getresponse()
                content = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{method} {path}: {exc!r}")
                connection.close()
                continue
            if answer.status >= 300:
                self.failures.append(f"{method} {path}: {answer.status} {content[:200]!r}")
            elif method == "POST":
                self.created.append(json.loads(content)["id"])
            self.answered += 1
        connection.close()


class Streams:
    """STREAMS clients of GET /api/v1/events that reconnect with Last-Event-ID, as EventSource
    does; each keeps the events it got, in order."""

    def __init__(self, url: str, account: Account) -> None:
        self.url = url
        self.headers = account.headers
        self.received: list[list[tuple[str, str]]] = [[] for _ in range(STREAMS)]
        self.reconnects = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._all()))

    async def _all(self) -> None:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=30)) as client:
            await asyncio.gather(*(self._one(client, n) for n in range(STREAMS)))

    async def _one(self, client: httpx2.AsyncClient, n: int) -> None:
        got = self.received[n]
        while not self.stop.is_set():
            headers = {**self.headers, **({"Last-Event-ID": got[-1][0]} if got else {})}
            try:
                async with client.stream("GET", f"{self.url}/api/v1/events", headers=headers) as s:
                    if s.status_code != 200:
                        self.errors.append(f"stream {n}: {s.status_code}")
                        await asyncio.sleep(0.5)
                        continue
                    await self._read(s, got)
            except httpx2.HTTPError as exc:
                self.errors.append(f"stream {n}: {exc!r}")
            self.reconnects += 1

    async def _read(self, stream: httpx2.Response, got: list[tuple[str, str]]) -> None:
        event: dict[str, str] = {}
        async for line in stream.aiter_lines():
            if self.stop.is_set():
                return
            if line:
                field, _, value = line.partition(":")
                event[field] = value.removeprefix(" ")
            elif event:
                if event.get("event") == "post.created":
                    got.append((event["id"], json.loads(event["data"])["id"]))
                event = {}


def test_rolling_restart_fails_no_request_and_loses_no_event(
    start_server: Callable[..., Any],
    server_env: dict[str, str],
    alice: Account,
    tmp_path: Path,
) -> None:
    env = {
        **server_env,
        "APICTL_SHUTDOWN_DELAY": DELAY,
        "APICTL_SHUTDOWN_TIMEOUT": "5",
        "APICTL_API_RATE_LIMIT": "off",
    }
    servers = [start_server(env) for _ in range(INSTANCES)]
    backends = {f"api{n}": urlsplit(s.url).netloc for n, s in enumerate(servers)}
    with running_haproxy(tmp_path, backends) as proxy:
        streams = Streams(proxy.url, alice)
        streams.thread.start()
        time.sleep(1)  # the streams are open
        with Load(proxy.url, alice) as load:
            time.sleep(1)
            for n, server in enumerate(servers):
                code, _ = server.stop(timeout=20)
                assert code == 0
                port = urlsplit(server.url).port
                servers[n] = start_server(env, port=port)
                proxy.wait_for(f"api{n}", "UP")
            time.sleep(1)
        written = load.created
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(len(r) < len(written) for r in streams.received):
            time.sleep(0.2)
        streams.stop.set()
        streams.thread.join(timeout=40)
    assert load.failures == [], f"{len(load.failures)} of {load.answered} requests failed"
    assert len(written) > 50
    print(f"{load.answered} requests, {len(written)} writes, {streams.reconnects} reconnects")
    assert streams.reconnects >= STREAMS  # every stream was on an instance that restarted
    for received in streams.received:
        ids = [event_id for event_id, _ in received]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))  # in order
        assert sorted(post for _, post in received) == sorted(written)  # each exactly once
