"""The outbox and its relay: every committed change has its event on the Stream, once, in order.

Real `apictl serve` processes on a real PostgreSQL and Redis. A relay "dying between XADD and
DELETE" is made real by a trigger that refuses deletes from the outbox; "dying" by SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx2
import psycopg
import pytest

from fixtures.accounts import Account
from fixtures.events import outbox_size, stream, wait_for
from fixtures.servers import APICTL, RunningServer, free_port
from fixtures.sse_client import subscribe
from fixtures.webhook_receiver import receiving
from service.posts.service import posts

Apictl = Callable[..., subprocess.CompletedProcess[str]]


def post(url: str, who: Account, title: str) -> dict[str, Any]:
    response = httpx2.post(f"{url}/api/v1/posts", json={"title": title}, headers=who.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def created_ids(redis_url: str) -> list[str]:
    return [e.data["id"] for e in stream(redis_url) if e.type == "post.created"]


def relay_status(apictl: Apictl, env: dict[str, str]) -> dict[str, Any]:
    result = apictl("events", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def relay_pid(apictl: Apictl, env: dict[str, str]) -> int | None:
    """The pid of the `apictl serve` process holding the relay (its application_name says)."""
    holder = relay_status(apictl, env)["holder"]
    return int(holder["application_name"].rsplit(":", 1)[1]) if holder else None


@pytest.fixture
def deletes_refused(database_url: str) -> Iterator[Callable[[], None]]:
    """Make every relay fail right after its XADD, until the returned function is called."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION relay_dies() RETURNS trigger LANGUAGE plpgsql"
            " AS $$BEGIN RAISE EXCEPTION 'the relay dies here'; END$$"
        )
        conn.execute(
            "CREATE TRIGGER relay_dies BEFORE DELETE ON event_outbox"
            " FOR EACH ROW EXECUTE FUNCTION relay_dies()"
        )

    def allow() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER IF EXISTS relay_dies ON event_outbox")

    yield allow
    allow()


def test_each_change_commits_its_event_and_a_rolled_back_one_leaves_none(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    database_url: str,
    redis_url: str,
    alice: Account,
) -> None:
    server = start_server(server_env)

    async def rolled_back() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            transaction = conn.transaction()
            await transaction.start()
            await conn.fetchrow(posts.insert, alice.id, "rolled back", "")
            seen = await conn.fetchval("SELECT count(*) FROM event_outbox")
            await transaction.rollback()
            return int(seen)
        finally:
            await conn.close()

    assert asyncio.run(rolled_back()) == 1, "the insert and its event are one statement"
    created = post(server.url, alice, "kept")
    item = f"{server.url}/api/v1/posts/{created['id']}"
    updated = httpx2.patch(item, json={"body": "edited"}, headers=alice.headers).json()
    assert httpx2.delete(item, headers=alice.headers).status_code == 204

    wait_for(lambda: len(stream(redis_url)) == 3, 5, "three events on the Stream")
    entries = stream(redis_url)
    assert [e.type for e in entries] == ["post.created", "post.updated", "post.deleted"]
    assert entries[0].data == created  # the API's own encoding of the row
    assert entries[1].data == updated
    assert entries[2].data == {"id": created["id"], "author_id": alice.id}
    assert "rolled back" not in json.dumps([e.data for e in entries])
    assert outbox_size(database_url) == 0


def test_a_relay_that_dies_after_appending_never_appends_twice(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    database_url: str,
    redis_url: str,
    alice: Account,
    deletes_refused: Callable[[], None],
) -> None:
    server = start_server(server_env)
    ids = [post(server.url, alice, f"p{n}")["id"] for n in range(3)]
    wait_for(lambda: len(stream(redis_url)) == 3, 5, "the events appended")
    time.sleep(2.5)  # the relay fails, stands by, takes the lock again and retries: twice at least
    assert created_ids(redis_url) == ids
    assert outbox_size(database_url) == 3
    assert "event relay stopped" in server.log.read_text()

    deletes_refused()
    wait_for(lambda: outbox_size(database_url) == 0, 5, "the outbox emptied")
    assert created_ids(redis_url) == ids, "appended once, in commit order"


def test_a_relay_that_dies_after_appending_hands_webhooks_the_stream_s_ids_once(
    apictl: Apictl,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    database_url: str,
    redis_url: str,
    alice: Account,
    deletes_refused: Callable[[], None],
) -> None:
    env = {**server_env, "APICTL_WEBHOOK_ALLOW_PRIVATE": "true"}
    with receiving(free_port()) as receiver:
        assert apictl("webhooks", "add", receiver.url, env=env).returncode == 0
        server = start_server(env)
        for n in range(3):
            post(server.url, alice, f"p{n}")
        wait_for(lambda: len(stream(redis_url)) == 3, 5, "the events appended")
        time.sleep(2.5)  # appended, never deleted: no delivery was committed either
        assert receiver.received == []
        deletes_refused()
        got = receiver.wait_for(3)
        time.sleep(1)
    assert len(receiver.received) == 3
    assert sorted(r.id for r in got) == sorted(e.id for e in stream(redis_url))


def test_a_killed_relay_is_replaced_within_5_s_and_nothing_is_appended_twice(
    apictl: Apictl,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    database_url: str,
    redis_url: str,
    alice: Account,
    deletes_refused: Callable[[], None],
) -> None:
    first, second = start_server(server_env), start_server(server_env)
    wait_for(lambda: relay_pid(apictl, server_env) is not None, 5, "a relay holder")
    by_pid = {first.process.pid: first, second.process.pid: second}
    holder = by_pid[relay_pid(apictl, server_env) or 0]
    other = second if holder is first else first

    # appended by the holder but never deleted (it dies "between XADD and DELETE")...
    appended = [post(holder.url, alice, f"appended {n}")["id"] for n in range(10)]
    wait_for(lambda: len(stream(redis_url)) == 10, 5, "the holder appended")
    # ... and committed through the other instance just before the holder is killed
    with ThreadPoolExecutor(4) as pool:
        late = [p["id"] for p in pool.map(lambda n: post(other.url, alice, f"late {n}"), range(10))]
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait()
    killed = time.monotonic()
    deletes_refused()

    took_over = wait_for(
        lambda: relay_pid(apictl, server_env) == other.process.pid, 5, "the relay taken over"
    )
    wait_for(lambda: outbox_size(database_url) == 0, 5 - (time.monotonic() - killed), "relayed")
    relayed = time.monotonic() - killed
    ids = created_ids(redis_url)
    assert sorted(ids) == sorted(appended + late), "every committed event, each once"
    assert ids[:10] == appended
    print(f"\nrelay taken over {took_over:.2f} s after SIGKILL, outbox empty after {relayed:.2f} s")


def test_two_relays_started_at_once_one_holds_and_nothing_is_appended_twice(
    apictl: Apictl,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    database_url: str,
    redis_url: str,
    alice: Account,
) -> None:
    with ThreadPoolExecutor(2) as pool:
        servers = list(pool.map(lambda _: start_server(server_env), range(2)))
    wait_for(lambda: relay_pid(apictl, server_env) is not None, 5, "a relay holder")

    def active(server: RunningServer) -> float:
        lines = httpx2.get(f"{server.url}/metrics").text.splitlines()
        return next(float(x.split()[1]) for x in lines if x.startswith("apictl_event_relay_active"))

    assert sorted(active(s) for s in servers) == [0.0, 1.0]
    with ThreadPoolExecutor(8) as pool:
        ids = [
            p["id"] for p in pool.map(lambda n: post(servers[n % 2].url, alice, str(n)), range(40))
        ]
    wait_for(lambda: outbox_size(database_url) == 0, 5, "relayed")
    relayed = created_ids(redis_url)
    assert sorted(relayed) == sorted(ids)
    assert len(set(relayed)) == 40


def test_commit_to_sse_latency_on_an_idle_service_is_under_100_ms_at_p99(
    apictl: Apictl,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
) -> None:
    """Half the writes go through the instance without the relay: its wake-up is a NOTIFY."""
    servers = [start_server(server_env), start_server(server_env)]
    wait_for(lambda: relay_pid(apictl, server_env) is not None, 5, "a relay holder")
    body = {"title": "timed"}

    async def scenario() -> list[float]:
        latencies = []
        async with (
            httpx2.AsyncClient(timeout=10, headers=alice.headers) as http,
            subscribe(http, servers[0].url, alice.headers) as sse,
        ):
            for n in range(200):
                began = time.perf_counter()
                sent = await http.post(f"{servers[n % 2].url}/api/v1/posts", json=body)
                assert sent.status_code == 201
                (event,) = await sse.events(1)
                latencies.append(time.perf_counter() - began)
                assert json.loads(event["data"])["id"] == sent.json()["id"]
        return latencies

    latencies = sorted(asyncio.run(scenario()))
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(f"\nPOST -> SSE over 200 events: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert p99 <= 0.100


def _read_lines(process: subprocess.Popen[str], count: int, within: float) -> list[str]:
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(next(iter(process.stdout or ())) for _ in range(count)),
        daemon=True,
    )
    reader.start()
    reader.join(within)
    assert len(lines) == count, f"{lines} of {count} lines within {within} s"
    return lines


def test_events_status_and_tail_show_the_relay_and_the_live_stream(
    apictl: Apictl,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
) -> None:
    server = start_server(server_env)
    wait_for(lambda: relay_pid(apictl, server_env) == server.process.pid, 5, "the relay held")
    first = post(server.url, alice, "before tail")
    wait_for(lambda: relay_status(apictl, server_env)["stream_length"] == 1, 5, "relayed")
    status = relay_status(apictl, server_env)
    assert status["backlog"] == 0
    assert status["redis_error"] is None
    human = apictl("events", "status", env=server_env)
    assert f":{server.process.pid} (backend pid" in human.stdout
    assert "0 event(s) waiting" in human.stdout

    tail = subprocess.Popen(
        [APICTL, "events", "tail", "--json", "--since", "0-0"],
        env=server_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        (replayed,) = _read_lines(tail, 1, 10)
        assert json.loads(replayed)["id"] == status["last_id"]
        assert json.loads(replayed)["data"] == first
        live = post(server.url, alice, "while tailing")
        (line,) = _read_lines(tail, 1, 5)
        assert json.loads(line)["type"] == "post.created"
        assert json.loads(line)["data"]["id"] == live["id"]
    finally:
        tail.send_signal(signal.SIGINT)
        try:
            code = tail.wait(10)
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait()
            assert tail.stdout is not None
            tail.stdout.close()
    assert code == 0, "Ctrl-C ends the tail quietly"


def test_redis_unreachable_writes_wait_in_the_outbox_up_to_its_limit(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    database_url: str,
    alice: Account,
) -> None:
    env = {
        **server_env,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens
        "APICTL_EVENT_BACKLOG_LIMIT": "5",
    }
    server = start_server(env)
    for n in range(2):
        post(server.url, alice, f"waiting {n}")
    time.sleep(1.2)  # the backlog is measured every second
    events = httpx2.get(f"{server.url}/ready").json()["checks"]["events"]
    assert events["status"] == "degraded"
    assert events["backlog"] == 2
    assert "Redis unreachable" in events["error"]

    for n in range(4):
        post(server.url, alice, f"more {n}")
    time.sleep(1.2)
    refused = httpx2.post(
        f"{server.url}/api/v1/posts", json={"title": "refused"}, headers=alice.headers
    )
    assert refused.status_code == 503
    assert refused.headers["retry-after"]
    assert "events wait to be relayed" in refused.json()["error"]
    ready = httpx2.get(f"{server.url}/ready")
    assert ready.status_code == 200  # reads still work: the instance stays in rotation
    assert "over the outbox limit of 5" in ready.json()["checks"]["events"]["error"]
    assert outbox_size(database_url) == 6, "every acknowledged event kept, none dropped"
    assert "event outbox over its limit" in server.log.read_text()
