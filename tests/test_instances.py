"""Several `apictl serve` processes on one PostgreSQL and Redis behave as one service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx2

from fixtures.accounts import Account


def _wait_for_status(url: str, headers: dict[str, str], status: int, within: float) -> float:
    began = time.monotonic()
    while True:
        if httpx2.get(url, headers=headers).status_code == status:
            return time.monotonic() - began
        assert time.monotonic() - began < within, f"not {status} within {within} s"
        time.sleep(0.02)


def test_logout_on_one_instance_is_refused_by_the_other_within_a_second(
    start_server: Callable[..., Any],
    server_env: dict[str, str],
    make_account: Callable[..., Account],
    password: str,
) -> None:
    make_account("alice@example.com")
    a, b = start_server(server_env), start_server(server_env)
    token = httpx2.post(
        f"{a.url}/api/v1/auth/login", json={"email": "alice@example.com", "password": password}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(3):  # B has it cached now
        assert httpx2.get(f"{b.url}/api/v1/users/me", headers=headers).status_code == 200
    assert httpx2.post(f"{a.url}/api/v1/auth/logout", headers=headers).status_code == 204
    assert _wait_for_status(f"{b.url}/api/v1/users/me", headers, 401, within=1.0) < 1.0


def test_cli_revocation_reaches_a_running_server_within_a_second(
    apictl: Callable[..., Any],
    start_server: Callable[..., Any],
    server_env: dict[str, str],
    make_account: Callable[..., Account],
) -> None:
    alice = make_account("alice@example.com")
    server = start_server(server_env)
    me = f"{server.url}/api/v1/users/me"
    assert httpx2.get(me, headers=alice.headers).status_code == 200  # cached
    deactivated = apictl("user", "update", alice.email, "--inactive", env=server_env)
    assert deactivated.returncode == 0, deactivated.stderr
    assert _wait_for_status(me, alice.headers, 401, within=1.0) < 1.0


def test_login_limit_is_shared_between_instances(
    start_server: Callable[..., Any],
    server_env: dict[str, str],
    make_account: Callable[..., Account],
) -> None:
    make_account("alice@example.com")
    env = {**server_env, "APICTL_LOGIN_RATE_LIMIT": "4/minute"}
    a, b = start_server(env), start_server(env)
    attempt = {"email": "alice@example.com", "password": "wrong password"}
    statuses = [
        httpx2.post(f"{url}/api/v1/auth/login", json=attempt).status_code
        for url in (a.url, b.url, a.url, b.url, a.url, b.url)
    ]
    assert statuses == [401, 401, 401, 401, 429, 429]


def test_health_stays_fast_while_logins_hash(
    start_server: Callable[..., Any],
    server_env: dict[str, str],
    make_account: Callable[..., Account],
    password: str,
) -> None:
    make_account("alice@example.com")
    server = start_server({**server_env, "APICTL_LOGIN_RATE_LIMIT": "1000/minute"})

    async def measure() -> tuple[list[int], list[float]]:
        async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
            await http.get("/health")  # warm the connection pool
            credentials = {"email": "alice@example.com", "password": password}
            logins = asyncio.gather(
                *(http.post("/api/v1/auth/login", json=credentials) for _ in range(20))
            )
            latencies: list[float] = []

            async def probe() -> None:
                while not logins.done():
                    began = time.perf_counter()
                    assert (await http.get("/health")).status_code == 200
                    latencies.append(time.perf_counter() - began)
                    await asyncio.sleep(0.005)

            _, responses = await asyncio.gather(probe(), logins)
            return [r.status_code for r in responses], latencies

    statuses, latencies = asyncio.run(measure())
    assert statuses == [200] * 20
    assert len(latencies) >= 10
    p99 = sorted(latencies)[max(0, int(len(latencies) * 0.99) - 1)]
    assert p99 < 0.050, f"p99 of /health was {p99 * 1000:.1f} ms during logins"
