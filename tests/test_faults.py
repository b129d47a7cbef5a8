"""Faults survived under load: PostgreSQL killed, restarted and hung; Redis stopped and paused.

Each test runs `apictl serve` on a PostgreSQL and a Redis of its own (tests/faults.py), breaks
them while a client records every answer, and checks what docs/reliability.md promises:
failures only during the fault, as 503 + Retry-After within the timeouts, recovery without a
restart, no acknowledged write lost. Marked `faults`: they bring their own servers, so CI runs
them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import psutil
import pytest

from fixtures.accounts import Account
from fixtures.faults import Load, PrivatePostgres, PrivateRedis, watch
from fixtures.servers import RunningServer, free_port
from fixtures.sse_client import subscribe
from service.config import load_settings
from service.events.bus import KEEPALIVE_SECONDS
from service.ops.migrations import Migrator
from service.process.redis_client import POOL_SIZE

pytestmark = pytest.mark.faults

ACQUIRE_TIMEOUT = 2.0
COMMAND_TIMEOUT = 3.0
# docs/reliability.md: timeout + 1 s
SLOWEST_FAILURE = max(ACQUIRE_TIMEOUT, COMMAND_TIMEOUT) + 1.0


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(free_port())
    yield server
    server.stop()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port())
    yield server
    server.close()


@pytest.fixture
def database_url(private_pg: PrivatePostgres) -> str:
    """Overrides conftest's: the accounts and the server live on the private PostgreSQL."""
    url = private_pg.url()
    Migrator(load_settings(_env_file=None, database_url=url)).up()
    return url


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    return private_redis.url


@pytest.fixture
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    """Overrides conftest's: the loads here are one user's thousands of requests a minute."""
    return {**server_env, "APICTL_API_RATE_LIMIT": "off"}


@pytest.fixture
def server(start_server: Callable[..., RunningServer], server_env: dict[str, str]) -> RunningServer:
    return start_server(
        {
            **server_env,
            "APICTL_DB_ACQUIRE_TIMEOUT": str(ACQUIRE_TIMEOUT),
            "APICTL_DB_COMMAND_TIMEOUT": str(COMMAND_TIMEOUT),
            "APICTL_DB_POOL_MIN": "2",
            "APICTL_DB_POOL_MAX": "10",
            "APICTL_LOG_FORMAT": "json",
        }
    )


async def _create_post(client: httpx2.AsyncClient, n: int) -> httpx2.Response:
    return await client.post("/api/v1/posts", json={"title": f"post {n}", "body": "x"})


def _assert_failures_are_503s(load: Load) -> None:
    for answer in load.answers:
        assert answer.status in (201, 503), answer
        if answer.status == 503:
            assert answer.code == "service_unavailable", answer
            assert answer.retry_after is not None, answer
        assert answer.elapsed <= SLOWEST_FAILURE, answer


def _assert_recovered(load: Load, fault_over: float) -> float:
    """Full success from 5 s after the fault on; returns the seconds from the end of the
    fault to the start of the last failed request."""
    failed = [a.started for a in load.answers if a.status >= 300 and a.started > fault_over]
    recovery = max(failed, default=fault_over) - fault_over
    assert recovery < 5, f"still failing {recovery:.1f} s after the fault ended"
    assert any(a.started > fault_over + 5 for a in load.answers), "no load after the fault"
    return recovery


def test_database_killed_and_restarted_under_load(
    server: RunningServer, alice: Account, private_pg: PrivatePostgres
) -> None:
    async def scenario() -> tuple[Load, list[tuple[float, int]], list[tuple[float, int]], float]:
        load = Load(server.url, alice.headers, workers=8)
        done = asyncio.Event()
        running = asyncio.gather(
            load.run(_create_post),
            watch(f"{server.url}/health", done),
            watch(f"{server.url}/ready", done),
        )
        await asyncio.sleep(2)
        for _ in range(3):  # every app backend killed, every 2 s
            await asyncio.to_thread(
                private_pg.sql,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'apictl'",
            )
            await asyncio.sleep(2)
        await asyncio.to_thread(private_pg.crash_and_restart, 2)
        fault_over = time.monotonic()
        await asyncio.sleep(8)
        load.stop()
        done.set()
        _, health, ready = await running
        return load, health, ready, fault_over

    load, health, ready, fault_over = asyncio.run(scenario())
    _assert_failures_are_503s(load)
    recovery = _assert_recovered(load, fault_over)
    acknowledged = {a.post_id for a in load.answers if a.status == 201}
    stored = {str(row[0]) for row in private_pg.sql("SELECT id FROM posts")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged posts lost"
    assert all(status == 200 for _, status in health), "liveness must not depend on PostgreSQL"
    assert 503 in {status for _, status in ready}, "/ready never reported the outage"
    assert ready[-1][1] == 200, "/ready did not recover"
    slowest = max(a.elapsed for a in load.answers)
    print(
        f"\nkill+restart: {load.summary()}, {len(acknowledged)} acknowledged, 0 lost,"
        f" slowest {slowest:.2f} s, recovered {recovery:.2f} s after the restart"
    )


def test_database_hung_then_resumed(
    server: RunningServer, alice: Account, private_pg: PrivatePostgres
) -> None:
    async def scenario() -> tuple[Load, float]:
        load = Load(server.url, alice.headers, workers=8)
        running = asyncio.create_task(load.run(_create_post))
        await asyncio.sleep(2)
        private_pg.freeze()  # SIGSTOP: connections stay open, nothing answers
        await asyncio.sleep(15)
        private_pg.thaw()
        fault_over = time.monotonic()
        await asyncio.sleep(8)
        load.stop()
        await running
        return load, fault_over

    load, fault_over = asyncio.run(scenario())
    _assert_failures_are_503s(load)
    recovery = _assert_recovered(load, fault_over)
    deadline = time.monotonic() + 10
    while private_pg.app_connections() > 10 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert private_pg.app_connections() <= 10, "connections leaked past the pool size"
    slowest = max(a.elapsed for a in load.answers)
    print(f"\nhang 15 s: {load.summary()}, slowest {slowest:.2f} s, recovered in {recovery:.2f} s")


async def _read_me(client: httpx2.AsyncClient, n: int) -> httpx2.Response:
    return await client.get("/api/v1/users/me")


@pytest.mark.parametrize("fault", ["stopped", "paused"])
def test_redis_outage_degrades_only_what_needs_redis(
    fault: str,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    private_redis: PrivateRedis,
) -> None:
    server = start_server({**server_env, "APICTL_LOGIN_RATE_LIMIT": "3/minute"})
    wrong = {"email": alice.email, "password": "wrong password"}

    async def outage() -> float:
        if fault == "paused":  # every command blocks: Redis hangs rather than refuses
            with private_redis.client() as admin:
                admin.execute_command("CLIENT", "PAUSE", 6000, "ALL")
            await asyncio.sleep(6)
        else:
            private_redis.stop()
            await asyncio.sleep(6)
            await asyncio.to_thread(private_redis.start)
        return time.monotonic()

    async def scenario() -> tuple[Load, Load, dict[str, Any], list[int], list[str], float]:
        reads = Load(server.url, alice.headers, workers=4)
        writes = Load(server.url, alice.headers, workers=4)
        async with (
            httpx2.AsyncClient(base_url=server.url, timeout=15) as http,
            subscribe(http, server.url, alice.headers) as stream,
        ):
            running = asyncio.gather(reads.run(_read_me), writes.run(_create_post))
            received = [(await stream.events(1))[0]["id"]]
            ended = asyncio.create_task(outage())
            await asyncio.sleep(2)  # inside the outage
            ready = (await http.get("/ready")).json()
            logins = [(await http.post("/api/v1/auth/login", json=wrong)).status_code]
            logins += [
                (await http.post("/api/v1/auth/login", json=wrong)).status_code for _ in "1234"
            ]
            fault_over = await ended
            created = await http.post(
                "/api/v1/posts", json={"title": "marker", "body": ""}, headers=alice.headers
            )
            marker = created.json()["id"]
            while True:  # what the Stream holds from the first event on, up to the marker
                event = (await stream.events(1, wait=10))[0]
                received.append(event["id"])
                if json.loads(event["data"])["id"] == marker:
                    break
            resumed = time.monotonic() - fault_over
            reads.stop()
            writes.stop()
            await running
        return reads, writes, ready, logins, received, resumed

    reads, writes, ready, logins, received, resumed = asyncio.run(scenario())
    assert all(a.status == 200 for a in reads.answers), reads.summary()
    assert all(a.status == 201 for a in writes.answers), writes.summary()
    assert ready["status"] == "ready"
    assert ready["checks"]["redis"]["status"] == "degraded"
    assert logins == [401, 401, 401, 429, 429], "the per-process fallback must still limit logins"
    with private_redis.client() as client:
        stored = [i.decode() for i, _ in client.xrange("apictl:events", min=received[0])]
    assert received == stored[: len(received)], "a gap or a duplicate in the resumed stream"
    assert resumed < 5, f"the stream resumed {resumed:.1f} s after Redis came back"
    print(
        f"\nredis {fault}: reads {reads.summary()}, writes {writes.summary()},"
        f" {len(received)} events in order, live again {resumed:.2f} s after recovery"
    )


def test_events_written_while_redis_is_down_reach_the_stream_once_in_order(
    server: RunningServer, alice: Account, private_redis: PrivateRedis
) -> None:
    """Every acknowledged write's event, after a 10 s Redis outage (docs/reliability.md)."""

    async def scenario() -> tuple[Load, list[str], float, dict[str, Any]]:
        writer = Load(server.url, alice.headers, workers=1)  # one writer: commit order is known
        async with (
            httpx2.AsyncClient(base_url=server.url, timeout=15) as http,
            subscribe(http, server.url, alice.headers) as sse,
        ):
            writing = asyncio.create_task(writer.run(_create_post))
            await asyncio.sleep(1)
            private_redis.stop()
            await asyncio.sleep(5)
            ready = (await http.get("/ready")).json()["checks"]["events"]
            await asyncio.sleep(5)
            await asyncio.to_thread(private_redis.start)
            back = time.monotonic()
            await asyncio.sleep(1)
            writer.stop()
            await writing
            acknowledged = [a.post_id for a in writer.answers if a.status == 201]
            received: list[str] = []
            while len(received) < len(acknowledged):
                event = (await sse.events(1, wait=5))[0]
                received.append(json.loads(event["data"])["id"])
            caught_up = time.monotonic() - back
        return writer, received, caught_up, ready

    writer, received, caught_up, ready = asyncio.run(scenario())
    assert all(a.status == 201 for a in writer.answers), writer.summary()
    acknowledged = [a.post_id for a in writer.answers]
    assert received == acknowledged, "the live client got every event once, in commit order"
    with private_redis.client() as client:
        stream = [json.loads(f[b"data"])["id"] for _, f in client.xrange("apictl:events")]
    assert stream == acknowledged, "the Stream holds each event once, in commit order"
    assert ready["status"] == "degraded"
    assert ready["backlog"] > 0
    assert caught_up < 5 + 1, f"caught up {caught_up:.1f} s after Redis came back"
    print(
        f"\nredis down 10 s: {writer.summary()}, {len(acknowledged)} events, backlog"
        f" {ready['backlog']} mid-outage, all on the Stream {caught_up:.2f} s after Redis was back"
    )


def _metric(server: RunningServer, name: str) -> float:
    for line in httpx2.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _abandon(url: str, raw_request: bytes, after: float) -> None:
    """Send a request and hang up `after` seconds later (RST), answered or not."""
    address = httpx2.URL(url)
    _, writer = await asyncio.open_connection(address.host, address.port)
    writer.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    writer.write(raw_request)
    await asyncio.sleep(after)
    writer.transport.abort()


def test_cancellation_storm_mixes_no_responses_and_leaks_no_connections(
    server: RunningServer, alice: Account, private_pg: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    def create(title: str) -> str:
        created = httpx2.post(
            f"{server.url}/api/v1/posts", json={"title": title}, headers=alice.headers
        )
        return str(created.json()["id"])

    posts = {create(f"p{n}"): f"p{n}" for n in range(30)}
    ids = list(posts)
    redis_before = _metric(server, "apictl_redis_pool_in_use")
    auth = f"authorization: Bearer {alice.token}\r\n".encode()

    def raw(n: int) -> bytes:
        if n % 3 == 0:
            body = b'{"title": "storm %d"}' % n
            return (
                b"POST /api/v1/posts HTTP/1.1\r\nhost: x\r\n"
                + auth
                + b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body)
            )
        return b"GET /api/v1/posts/%s HTTP/1.1\r\nhost: x\r\n%s\r\n" % (
            ids[n % len(ids)].encode(),
            auth,
        )

    async def checker(client: httpx2.AsyncClient, mixed: list[str], stop: asyncio.Event) -> int:
        checked = 0
        while not stop.is_set():
            post_id = random.choice(ids)
            rid = f"check-{checked}"
            response = await client.get(f"/api/v1/posts/{post_id}", headers={"X-Request-ID": rid})
            body = response.json()
            if (
                body.get("id") != post_id
                or body.get("title") != posts[post_id]
                or response.headers["x-request-id"] != rid
            ):
                mixed.append(response.text)
            checked += 1
        return checked

    async def scenario() -> tuple[int, list[str]]:
        mixed: list[str] = []
        stop = asyncio.Event()
        async with httpx2.AsyncClient(
            base_url=server.url, headers=alice.headers, timeout=15
        ) as client:
            checkers = asyncio.gather(*(checker(client, mixed, stop) for _ in range(4)))
            gate = asyncio.Semaphore(50)

            async def one(n: int) -> None:
                async with gate:
                    await _abandon(server.url, raw(n), random.uniform(0, 0.03))

            await asyncio.gather(*(one(n) for n in range(2_000)))
            stop.set()
            checked = sum(await checkers)
        return checked, mixed

    checked, mixed = asyncio.run(scenario())
    assert not mixed, f"{len(mixed)} responses carried another request's data: {mixed[:3]}"
    deadline = time.monotonic() + 10
    busy = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'apictl' AND state <> 'idle'"
    )
    while time.monotonic() < deadline:
        in_use = _metric(server, "apictl_db_pool_in_use")
        redis_after = _metric(server, "apictl_redis_pool_in_use")
        if in_use == 0 and redis_after <= redis_before:
            break
        time.sleep(0.5)
    assert in_use == 0, f"{in_use} pooled connections still in use 10 s after the storm"
    assert private_pg.sql(busy)[0][0] == 0
    assert private_pg.app_connections() <= 10
    assert redis_after <= redis_before, f"Redis connections in use: {redis_before} -> {redis_after}"
    with private_redis.client() as client:
        assert len(client.client_list()) <= POOL_SIZE + 1  # the pool, and this probe
    print(
        f"\ncancellation storm: 2000 abandoned, {checked} checked answers all right;"
        f" PostgreSQL {private_pg.app_connections()} open / 0 busy,"
        f" Redis in use {redis_before:.0f} -> {redis_after:.0f}"
    )


def test_sse_clients_that_vanish_are_let_go(server: RunningServer, alice: Account) -> None:
    request = (
        b"GET /api/v1/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n"
        b"authorization: Bearer " + alice.token.encode() + b"\r\n\r\n"
    )
    process = psutil.Process(server.process.pid)
    port = httpx2.URL(server.url).port

    def clients() -> int:  # connections accepted by the server (not its PostgreSQL/Redis ones)
        return sum(c.laddr.port == port for c in process.net_connections())

    baseline = clients()

    async def scenario() -> float:
        address = httpx2.URL(server.url)
        streams = []
        try:
            for _ in range(200):
                reader, writer = await asyncio.open_connection(address.host, address.port)
                writer.write(request)
                streams.append((reader, writer))
            for reader, _ in streams:
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            subscribed = await asyncio.to_thread(_metric, server, "apictl_sse_subscribers")
            assert subscribed == 200
            killed = time.monotonic()
            for _, writer in streams[:100]:
                writer.transport.abort()
            # let go: unsubscribed, and their connections (and the probes') closed, in time
            while (
                await asyncio.to_thread(_metric, server, "apictl_sse_subscribers") > 100
                or clients() > baseline + 100
            ):
                assert time.monotonic() - killed < KEEPALIVE_SECONDS + 2, "dead clients kept"
                await asyncio.sleep(0.2)
            return time.monotonic() - killed
        finally:
            for _, writer in streams:
                writer.close()

    let_go = asyncio.run(scenario())
    print(f"\nSSE: 200 clients, 100 killed, let go within {let_go:.2f} s")


def test_sigterm_under_load_answers_every_accepted_request(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    private_pg: PrivatePostgres,
) -> None:
    server = start_server({**server_env, "APICTL_SHUTDOWN_TIMEOUT": "5"})

    async def scenario() -> tuple[Load, float, list[int]]:
        load = Load(server.url, alice.headers, workers=8)
        running = asyncio.create_task(load.run(_create_post))
        async with httpx2.AsyncClient(timeout=15) as http:

            async def follow() -> int:
                """Read one event stream to its end; how many events it carried."""
                async with subscribe(http, server.url, alice.headers) as stream:
                    count = 0
                    with contextlib.suppress(EOFError):
                        while True:
                            await stream.events(1, wait=10)
                            count += 1
                    return count

            streams = [asyncio.create_task(follow()) for _ in range(20)]
            await asyncio.sleep(2)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.to_thread(server.process.wait, 15)
            exited = time.monotonic() - signalled
            load.stop()
            await running
            events = await asyncio.gather(*streams)  # each ended cleanly, not by an error
        return load, exited, events

    load, exited, events = asyncio.run(scenario())
    assert server.process.returncode == 0
    assert exited < 5 + 2, f"exit took {exited:.1f} s with a 5 s shutdown timeout"
    assert {a.status for a in load.answers} <= {201, 0}, load.summary()
    acknowledged = {a.post_id for a in load.answers if a.status == 201}
    stored = {str(row[0]) for row in private_pg.sql("SELECT id FROM posts")}
    assert stored == acknowledged, (
        f"{len(stored - acknowledged)} posts written without their 201 reaching the client"
    )
    assert min(events) > 0
    print(
        f"\nSIGTERM under load: {load.summary()} (0 = refused after the listener closed),"
        f" {len(stored)} stored = acknowledged, exit 0 after {exited:.2f} s"
    )
