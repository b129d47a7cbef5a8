"""Behind PgBouncer 1.18 in transaction mode (APICTL_DB_POOLER=transaction) everything works;
what needs a session (migrations, the event relay) uses APICTL_DB_DIRECT_URL or refuses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from fixtures.events import outbox_size
from fixtures.pgbouncer import DEFAULT_POOL_SIZE, PgBouncer
from fixtures.servers import APICTL
from fixtures.sse_client import subscribe
from service.app import create_app
from service.config import Settings
from service.db import Database

CLIENTS = 64
POSTS_EACH = 3  # listed two by two: two pages


@pytest.fixture
def pooled_env(
    server_env: dict[str, str], database_url: str, pgbouncer: PgBouncer
) -> dict[str, str]:
    """DATABASE_URL through PgBouncer, the direct URL beside it."""
    return {
        **server_env,
        "DATABASE_URL": pgbouncer.url(database_url),
        "APICTL_DB_POOLER": "transaction",
        "APICTL_DB_DIRECT_URL": database_url,
    }


def test_a_connection_block_keeps_one_server_connection(
    settings: Settings, pgbouncer: PgBouncer
) -> None:
    """Many concurrent blocks on few server connections: each block's statements (and so each
    statement's Parse and Bind) stay on the server connection it started on."""
    pooled = settings.model_copy(
        update={
            "database_url": pgbouncer.url(str(settings.database_url)),
            "db_pooler": "transaction",
            "db_pool_min": 0,
            "db_pool_max": 32,
        }
    )

    async def block(db: Database, n: int) -> tuple[int, int, int]:
        async with db.connection() as conn:
            before = await conn.fetchval("SELECT pg_backend_pid() + $1::int - $1::int", n)
            await asyncio.sleep(0.01)  # another client's turn on PgBouncer
            after = await conn.fetchval("SELECT pg_backend_pid() + $1::int - $1::int", n)
            echoed = await conn.fetchval("SELECT $1::int", n)
        return before, after, echoed

    async def blocks() -> list[tuple[int, int, int]]:
        db = Database(pooled)
        await db.open()
        try:
            return await asyncio.gather(*(block(db, n) for n in range(64)))
        finally:
            await db.close()

    results = asyncio.run(blocks())
    assert [echoed for _, _, echoed in results] == list(range(64))
    assert all(before == after for before, after, _ in results)
    assert len({before for before, _, _ in results}) <= DEFAULT_POOL_SIZE  # really shared


async def _client_flow(http: httpx2.AsyncClient, url: str, admin: Account, n: int) -> Counter[str]:
    """One client: created by the admin, logs in, writes and pages posts, sees its events on the
    stream, edits and deletes, logs out and is refused after."""
    statuses: Counter[str] = Counter()

    async def call(method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = await http.request(method, f"{url}{path}", **kwargs)
        statuses[f"{method} {expect}" if response.status_code == expect else "unexpected"] += 1
        assert response.status_code == expect, (method, path, response.text)
        return response.json() if response.content else None

    email, password = f"client{n}@example.com", f"password of client {n}"
    new_user = {"email": email, "name": f"client {n}", "password": password}
    await call("POST", "/api/v1/users", 201, json=new_user, headers=admin.headers)
    credentials = {"email": email, "password": password}
    login = await call("POST", "/api/v1/auth/login", 200, json=credentials)
    me = {"Authorization": f"Bearer {login['access_token']}"}
    user = await call("GET", "/api/v1/users/me", 200, headers=me)
    assert user["email"] == email
    async with subscribe(http, url, me) as stream:
        written = [
            await call(
                "POST", "/api/v1/posts", 201, json={"title": f"{n}.{i}", "body": "b"}, headers=me
            )
            for i in range(POSTS_EACH)
        ]
        ids = {post["id"] for post in written}
        seen: set[str] = set()
        while not ids <= seen:  # every client's events come by; ours among them
            event = await stream.next(wait=15)
            seen |= {post_id for post_id in ids if post_id in event.get("data", "")}
    listed: list[str] = []
    cursor: str | None = None
    while True:
        params = {"author_id": user["id"], "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await call("GET", "/api/v1/posts", 200, params=params, headers=me)
        listed += [post["id"] for post in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert listed == [post["id"] for post in reversed(written)]
    first = written[0]["id"]
    edited = await call("PATCH", f"/api/v1/posts/{first}", 200, json={"body": "e"}, headers=me)
    assert edited["body"] == "e"
    await call("DELETE", f"/api/v1/posts/{first}", 204, headers=me)
    await call("GET", f"/api/v1/posts/{first}", 404, headers=me)
    await call("POST", "/api/v1/auth/logout", 204, headers=me)
    await call("GET", "/api/v1/users/me", 401, headers=me)
    return statuses


def test_main_flows_pass_through_pgbouncer_with_64_clients(
    start_server: Callable[..., Any],
    pooled_env: dict[str, str],
    admin: Account,
    pgbouncer: PgBouncer,
) -> None:
    limits = {"APICTL_DB_POOL_MAX": "32", "APICTL_LOGIN_RATE_LIMIT": "1000/minute"}
    server = start_server({**pooled_env, **limits})

    async def everyone() -> Counter[str]:
        limits = httpx2.Limits(max_connections=2 * CLIENTS)
        async with httpx2.AsyncClient(timeout=30, limits=limits) as http:
            flows = [_client_flow(http, server.url, admin, n) for n in range(CLIENTS)]
            return sum(await asyncio.gather(*flows), Counter())

    began = time.monotonic()
    statuses = asyncio.run(everyone())
    took = time.monotonic() - began
    print(f"{CLIENTS} clients, {statuses.total()} requests in {took:.1f} s: {dict(statuses)}")
    assert "unexpected" not in statuses
    # per client: user, login, me, the posts, 2 pages, edit, delete, 404, logout, 401
    assert statuses.total() == CLIENTS * (10 + POSTS_EACH)
    ready = httpx2.get(f"{server.url}/ready").json()
    assert ready["status"] == "ready", ready
    assert "event relay active" in server.log.read_text()  # on the direct connection


def test_user_and_token_commands_work_through_pgbouncer(
    apictl: Callable[..., Any], pooled_env: dict[str, str]
) -> None:
    created = subprocess.run(
        [
            APICTL,
            *("user", "create", "--email", "cli@example.com", "--name", "CLI"),
            "--password-stdin",
        ],
        env=pooled_env,
        input="a long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    token = apictl("token", "create", "cli@example.com", "--name", "deploy", env=pooled_env)
    assert token.returncode == 0, token.stderr
    listed = apictl("token", "list", "cli@example.com", "--json", env=pooled_env)
    assert listed.returncode == 0, listed.stderr
    (deploy,) = [t for t in json.loads(listed.stdout) if t["name"] == "deploy"]
    revoked = apictl("token", "revoke", deploy["id"], env=pooled_env)
    assert revoked.returncode == 0, revoked.stderr


def test_migrate_without_a_direct_url_refuses_with_a_hint(
    apictl: Callable[..., Any], pooled_env: dict[str, str]
) -> None:
    env = {k: v for k, v in pooled_env.items() if k != "APICTL_DB_DIRECT_URL"}
    refused = apictl("migrate", env=env)
    assert refused.returncode == 1
    assert "APICTL_DB_DIRECT_URL is unset" in refused.stderr
    assert "hint: set APICTL_DB_DIRECT_URL to PostgreSQL itself" in refused.stderr


def test_migrate_with_a_direct_url_applies_everything(
    apictl: Callable[..., Any],
    empty_database_url: str,
    pgbouncer: PgBouncer,
    redis_url: str,
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": pgbouncer.url(empty_database_url),
        "REDIS_URL": redis_url,
        "APICTL_DB_POOLER": "transaction",
        "APICTL_DB_DIRECT_URL": empty_database_url,
    }
    migrated = apictl("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied" in migrated.stdout
    assert apictl("migrate", "status", "--check", env=env).returncode == 0


def test_serve_without_a_direct_url_refuses_to_start(
    apictl: Callable[..., Any], pooled_env: dict[str, str]
) -> None:
    env = {k: v for k, v in pooled_env.items() if k != "APICTL_DB_DIRECT_URL"}
    refused = apictl("serve", "--port", "1", env=env)
    assert refused.returncode == 1
    assert "advisory locks and LISTEN need a direct connection" in refused.stderr


def test_a_service_started_without_a_direct_url_says_why_no_event_is_relayed(
    settings: Settings, pgbouncer: PgBouncer, admin: Account, caplog: pytest.LogCaptureFixture
) -> None:
    pooled = settings.model_copy(
        update={
            "database_url": pgbouncer.url(str(settings.database_url)),
            "db_pooler": "transaction",
        }
    )
    with TestClient(create_app(pooled)) as client:
        created = client.post("/api/v1/posts", json={"title": "waits"}, headers=admin.headers)
        assert created.status_code == 201  # through PgBouncer; the event waits in the outbox
        time.sleep(0.2)  # a relay would have moved it by now
    assert outbox_size(str(settings.database_url)) == 1
    [error] = [r for r in caplog.records if r.name == "apictl.events" and r.levelname == "ERROR"]
    assert "events are not relayed: APICTL_DB_POOLER=transaction" in error.getMessage()
