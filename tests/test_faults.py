"""Faults survived under load: PostgreSQL killed, restarted and hung; Redis stopped and paused.

Each test runs `apictl serve` on a PostgreSQL and a Redis of its own (tests/faults.py), breaks
them while a client records every answer, and checks what SPEC section 8 promises: failures
only during the fault, as 503 + Retry-After within the timeouts, recovery without a restart,
no acknowledged write lost. Marked `faults`: they bring their own servers, so CI runs them once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx2
import pytest

from service.config import load_settings
from service.migrations import Migrator
from tests.conftest import Account, RunningServer, _free_port
from tests.faults import Load, PrivatePostgres, PrivateRedis, watch

pytestmark = pytest.mark.faults

ACQUIRE_TIMEOUT = 2.0
COMMAND_TIMEOUT = 3.0
SLOWEST_FAILURE = max(ACQUIRE_TIMEOUT, COMMAND_TIMEOUT) + 1.0  # SPEC: timeout + 1 s


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(_free_port())
    yield server
    server.stop()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(_free_port())
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
        await asyncio.to_thread(private_pg.restart_immediately)
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
