"""GET /api/v1/events: fan-out across instances, resume without gap or duplicate, shutdown."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
import redis
import redis.asyncio
from fastapi.testclient import TestClient
from starlette.types import Message

from fixtures.accounts import Account
from fixtures.sse_client import SseReader, subscribe
from service.app import create_app
from service.config import Settings
from service.events.bus import BACKLOG, STREAM, Event, EventBus, Subscription, stall
from service.events.sse import stream


def post(url: str, who: Account, title: str) -> dict[str, Any]:
    response = httpx2.post(f"{url}/api/v1/posts", json={"title": title}, headers=who.headers)
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


def test_an_event_from_instance_a_reaches_a_client_on_instance_b(
    start_server: Callable[..., Any], server_env: dict[str, str], admin: Account
) -> None:
    a, b = start_server(server_env), start_server(server_env)

    async def scenario() -> list[dict[str, str]]:
        async with (
            httpx2.AsyncClient(timeout=10) as http,
            subscribe(http, b.url, admin.headers) as sse,
        ):
            created = await asyncio.to_thread(post, a.url, admin, "across instances")
            await asyncio.to_thread(
                httpx2.patch,
                f"{a.url}/api/v1/posts/{created['id']}",
                json={"body": "edited"},
                headers=admin.headers,
            )
            await asyncio.to_thread(
                httpx2.delete, f"{a.url}/api/v1/posts/{created['id']}", headers=admin.headers
            )
            return await sse.events(3)

    created, updated, deleted = asyncio.run(scenario())
    assert created["event"] == "post.created"
    assert '"title":"across instances"' in created["data"]
    assert updated["event"] == "post.updated"
    assert '"body":"edited"' in updated["data"]
    assert deleted["event"] == "post.deleted"
    ids = [created["id"], updated["id"], deleted["id"]]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert len(set(ids)) == 3


def test_resume_with_last_event_id_gets_exactly_what_was_missed(
    start_server: Callable[..., Any], server_env: dict[str, str], admin: Account
) -> None:
    server = start_server(server_env)

    async def scenario() -> tuple[dict[str, str], list[dict[str, str]]]:
        async with httpx2.AsyncClient(timeout=10) as http:
            async with subscribe(http, server.url, admin.headers) as sse:
                await asyncio.to_thread(post, server.url, admin, "seen")
                (seen,) = await sse.events(1)
            for i in range(3):  # while disconnected
                await asyncio.to_thread(post, server.url, admin, f"missed {i}")
            async with subscribe(http, server.url, admin.headers, seen["id"]) as sse:
                missed = await sse.events(3)
                await asyncio.to_thread(post, server.url, admin, "live")
                missed += await sse.events(1)
                with pytest.raises(TimeoutError):  # and nothing twice
                    await sse.events(1, wait=1)
            return seen, missed

    seen, resumed = asyncio.run(scenario())
    titles = [re.search(r'"title":"([^"]+)"', e["data"]).group(1) for e in resumed]  # type: ignore[union-attr]
    assert titles == ["missed 0", "missed 1", "missed 2", "live"]
    assert seen["id"] not in {e["id"] for e in resumed}


def test_last_event_id_older_than_the_stream_starts_at_the_oldest_and_says_so(
    start_server: Callable[..., Any], server_env: dict[str, str], admin: Account, redis_url: str
) -> None:
    server = start_server(server_env)
    for i in range(5):
        post(server.url, admin, f"p{i}")
    client = redis.Redis.from_url(redis_url)
    client.xtrim(STREAM, maxlen=2, approximate=False)
    entries: Any = client.xrange(STREAM, count=1)
    oldest = entries[0][0].decode()
    client.close()

    async def scenario() -> list[dict[str, str]]:
        async with (
            httpx2.AsyncClient(timeout=10) as http,
            subscribe(http, server.url, admin.headers, "1-0") as sse,
        ):
            return [await sse.next() for _ in range(3)]

    notice, first, second = asyncio.run(scenario())
    assert notice["event"] == "stream.truncated"
    assert f'"oldest_kept":"{oldest}"' in notice["data"]
    assert first["id"] == oldest
    assert '"title":"p3"' in first["data"]
    assert '"title":"p4"' in second["data"]


def test_user_created_is_an_event(client: TestClient, admin: Account) -> None:
    with client.stream("GET", "/api/v1/events", headers=admin.headers) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")
        created = client.post(
            "/api/v1/users",
            json={"email": "new@example.com", "name": "New", "password": "long enough"},
            headers=admin.headers,
        )
        assert created.status_code == 201
        received = [line for line in (next(lines) for _ in range(4)) if line]
    assert received[0].startswith("id: ")
    assert received[1] == "event: user.created"
    assert '"email":"new@example.com"' in received[2]


def test_bad_last_event_id_is_422(client: TestClient, admin: Account) -> None:
    response = client.get("/api/v1/events", headers={**admin.headers, "Last-Event-ID": "yesterday"})
    assert response.status_code == 422


def test_events_need_a_token(client: TestClient) -> None:
    assert client.get("/api/v1/events").status_code == 401


def test_without_redis_posts_work_and_events_are_503(
    settings: Settings, admin: Account, free_port: int
) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port}/0"})
    with TestClient(create_app(broken)) as client:
        created = client.post("/api/v1/posts", json={"title": "still"}, headers=admin.headers)
        assert created.status_code == 201
        assert (
            client.get(f"/api/v1/posts/{created.json()['id']}", headers=admin.headers).status_code
            == 200
        )
        events = client.get("/api/v1/events", headers=admin.headers)
        assert events.status_code == 503
        assert events.json()["code"] == "service_unavailable"
        assert events.headers["retry-after"]
        assert client.get("/ready").json()["checks"]["redis"]["status"] == "degraded"


def test_a_stream_past_the_workers_limit_is_503_and_the_others_stay(
    settings: Settings, admin: Account
) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_streams": 1}))) as client:
        with client.stream("GET", "/api/v1/events", headers=admin.headers) as first:
            assert first.status_code == 200
            refused = client.get("/api/v1/events", headers=admin.headers)
            assert refused.status_code == 503
            assert "maximum of 1 event streams" in refused.json()["error"]
            assert refused.headers["retry-after"]
            assert next(first.iter_lines()).startswith("retry:")  # the first one still streams
        again = client.stream("GET", "/api/v1/events", headers=admin.headers)
        with again as second:  # its place is free once it has gone
            assert second.status_code == 200


def _gauge(url: str, name: str) -> float:
    text = httpx2.get(f"{url}/metrics").text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def _redis_clients(redis_url: str) -> int:
    """Clients of this test's database (the server may serve other suites too)."""
    client = redis.Redis.from_url(redis_url)
    try:
        db = str(client.connection_pool.connection_kwargs.get("db", 0))
        return sum(1 for c in client.client_list() if c["db"] == db) - 1  # minus this one
    finally:
        client.close()


def test_connect_disconnect_cycles_leak_nothing(
    start_server: Callable[..., Any], server_env: dict[str, str], admin: Account, redis_url: str
) -> None:
    server = start_server(server_env)

    async def cycles(count: int) -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            for _ in range(count):
                async with subscribe(http, server.url, admin.headers):
                    pass

    asyncio.run(cycles(5))  # warm up pools
    time.sleep(0.5)
    tasks, clients = _gauge(server.url, "apictl_asyncio_tasks"), _redis_clients(redis_url)
    asyncio.run(cycles(500))
    deadline = time.monotonic() + 5
    while _gauge(server.url, "apictl_sse_subscribers") != 0:
        assert time.monotonic() < deadline, "subscribers left behind"
        time.sleep(0.1)
    # a leaked task stays; one of the service's own (a relay wake-up, a sync) comes and goes
    while _gauge(server.url, "apictl_asyncio_tasks") > tasks:
        assert time.monotonic() < deadline, "tasks left behind"
        time.sleep(0.1)
    assert _redis_clients(redis_url) <= clients + 1  # the pool may keep one more idle socket


def test_a_reader_that_stops_reading_awhile_then_gets_every_event(
    start_server: Callable[..., Any], server_env: dict[str, str], alice: Account
) -> None:
    """6 MB of events for a reader that reads none of it at first: more than the kernel buffers
    hold, so the server's writes pause until the reader reads again (uvicorn's flow control), and
    then go on: every event arrives, in order."""
    server = start_server(server_env)
    address = urlsplit(server.url)
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.settimeout(20)
    reader.connect((address.hostname, address.port))
    token = alice.headers["Authorization"]
    reader.sendall(
        f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n".encode()
    )
    received = b""
    while b"retry:" not in received:  # subscribed
        received += reader.recv(65536)
    body = "x" * 50_000
    posted = [
        httpx2.post(
            f"{server.url}/api/v1/posts", json={"title": f"big {n}", "body": body},
            headers=alice.headers,
        ).json()["id"]
        for n in range(120)
    ]  # fmt: skip
    time.sleep(1)  # the writes back up
    pattern = re.compile(rb'data: \{"id":"([0-9a-f-]{36})"')  # each post.created's post
    arrived: list[str] = []
    while len(arrived) < len(posted):
        chunk = reader.recv(1 << 20)
        assert chunk, f"the stream ended after {len(arrived)} of {len(posted)} events"
        received += chunk
        arrived = [m.decode() for m in pattern.findall(received)]
    reader.close()
    assert arrived == posted


def test_sigterm_ends_open_streams_and_exits_in_time(
    start_server: Callable[..., Any], server_env: dict[str, str], admin: Account
) -> None:
    server = start_server({**server_env, "APICTL_SHUTDOWN_TIMEOUT": "5"})

    async def ends(sse: SseReader) -> bool:
        try:
            while True:
                await sse.next(wait=4)
        except EOFError:
            return True

    async def scenario() -> float:
        async with (
            httpx2.AsyncClient(timeout=10) as http,
            subscribe(http, server.url, admin.headers) as one,
            subscribe(http, server.url, admin.headers) as two,
        ):
            began = time.monotonic()
            server.process.send_signal(15)
            assert await ends(one)
            assert await ends(two)
            return time.monotonic() - began

    ended_after = asyncio.run(scenario())
    assert ended_after < 2
    assert server.process.wait(timeout=5) == 0


def test_a_client_that_cannot_keep_up_is_dropped_with_a_notice() -> None:
    subscription = Subscription()
    for i in range(BACKLOG + 1):
        subscription.offer(Event(f"1-{i}", "post.created", "{}"), 0.0)
    assert subscription.ended is not None
    assert subscription.ended.startswith(b"event: stream.dropped")
    assert subscription.pending == []  # what it was behind is let go: it resumes by id
    subscription.offer(Event("2-0", "post.created", "{}"), 0.0)
    assert subscription.pending == []  # and nothing more is held for it


def test_a_write_stuck_for_good_ends_the_stream_quietly() -> None:
    """A client whose socket stays full: the sweep ends its stream where the write waits."""

    async def scenario() -> tuple[bool, set[Subscription]]:
        bus = EventBus(redis.asyncio.Redis())  # never used: no Redis command is sent
        subscription = Subscription()
        bus.subscriptions.add(subscription)
        stuck = asyncio.Event()

        async def send(message: Message) -> None:
            stuck.set()
            await asyncio.Event().wait()  # the client never reads again

        async def receive() -> Message:
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        streaming = asyncio.create_task(stream(bus, subscription, receive, send))
        await stuck.wait()
        stall(subscription)  # what the sweep does after SEND_TIMEOUT_SECONDS
        await asyncio.wait_for(streaming, 2)  # ends, and without an error
        return streaming.cancelled(), bus.subscriptions

    cancelled, left = asyncio.run(scenario())
    assert not cancelled
    assert left == set()
