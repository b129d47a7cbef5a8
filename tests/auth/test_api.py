"""Login, logout and bearer tokens: every way a token can be wrong, the rate limit, rehashing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from service.app import create_app
from service.auth.client_ip import client_ip, parse_networks
from service.config import RateLimit, Settings


def login(client: TestClient, email: str, password: str) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_login_gives_a_working_bearer_token(
    client: TestClient, alice: Account, password: str
) -> None:
    response = login(client, "  ALICE@example.com ", password)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("apx_")
    assert len(body["access_token"]) >= 4 + 43  # >= 256 random bits
    expires = datetime.fromisoformat(body["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["email"] == "alice@example.com"


def test_only_the_token_hash_is_stored(
    client: TestClient, alice: Account, password: str, database_url: str
) -> None:
    token = login(client, alice.email, password).json()["access_token"]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT token_hash FROM api_tokens").fetchall()
    assert all(token.encode() not in bytes(row[0]) for row in stored)
    assert len(stored) == 2
    assert all(len(row[0]) == 32 for row in stored)


def test_unknown_email_and_wrong_password_look_alike(client: TestClient, alice: Account) -> None:
    wrong = login(client, alice.email, "not the password")
    unknown = login(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"] == unknown.json()["error"] == "invalid email or password"

    def timed(email: str) -> float:
        began = time.perf_counter()
        login(client, email, "not the password")
        return time.perf_counter() - began

    wrong_times = [timed(alice.email) for _ in range(5)]
    unknown_times = [timed("nobody@example.com") for _ in range(5)]
    # the dummy verify makes an unknown email cost a real hash too
    assert statistics.median(unknown_times) > 0.5 * statistics.median(wrong_times)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-token",
        "Bearer apx_" + "A" * 43,  # well-formed, unknown
        "Bearer apx_" + "A" * 44,
    ],
)
def test_bad_tokens_are_401_with_bearer_challenge(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"


def test_expired_token_is_refused_even_when_cached(
    client: TestClient, alice: Account, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_tokens SET expires_at = now() + interval '2 seconds'")
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 200  # cached
    time.sleep(2.5)
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 401


def test_token_expired_in_the_database_is_refused(
    client: TestClient, alice: Account, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_tokens SET created_at = now() - interval '2 days',"
            " expires_at = now() - interval '1 second'"
        )
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 401


def test_logout_ends_the_token_at_once(client: TestClient, alice: Account, password: str) -> None:
    token = login(client, alice.email, password).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200  # now cached
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401
    # other tokens of the same user live on
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 200


def test_login_rate_limit_is_429_with_retry_after(
    settings: Settings, alice: Account, password: str
) -> None:
    limited = settings.model_copy(update={"login_rate_limit": RateLimit(3, 60)})
    with TestClient(create_app(limited)) as client:
        for _ in range(3):
            assert login(client, alice.email, "wrong password").status_code == 401
        blocked = login(client, alice.email, password)
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "rate_limited"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60


def test_password_is_rehashed_when_parameters_change(
    client: TestClient, alice: Account, password: str, database_url: str
) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(password)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (old, alice.id))
    assert login(client, alice.email, password).status_code == 200
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (alice.id,)).fetchone()
    assert row is not None
    assert row[0] != old
    assert "m=19456,t=2,p=1" in row[0]
    assert login(client, alice.email, password).status_code == 200


@pytest.fixture
def no_redis(settings: Settings, free_port: int) -> Iterator[TestClient]:
    broken = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{free_port}/0",
            "login_rate_limit": RateLimit(3, 60),
        }
    )
    with TestClient(create_app(broken)) as client:
        yield client


def test_without_redis_auth_still_works_and_the_limit_holds(
    no_redis: TestClient, alice: Account, password: str
) -> None:
    token = login(no_redis, alice.email, password).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert no_redis.get("/api/v1/users/me", headers=headers).status_code == 200
    assert no_redis.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert no_redis.get("/api/v1/users/me", headers=headers).status_code == 401
    for _ in range(2):
        login(no_redis, alice.email, "wrong password")
    assert login(no_redis, alice.email, password).status_code == 429  # per-process fallback
    ready = no_redis.get("/ready").json()
    assert ready["checks"]["redis"]["status"] == "degraded"
    assert "per-process" in ready["checks"]["redis"]["error"]


def _scope(peer: str, forwarded: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 1234), "headers": headers}


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(_scope("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"
    assert client_ip(_scope("10.0.0.5", "1.2.3.4"), trusted) == "1.2.3.4"
    assert client_ip(_scope("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.7"), trusted) == "1.2.3.4"
    assert client_ip(_scope("10.0.0.5", "junk"), trusted) == "10.0.0.5"
    assert client_ip(_scope("10.0.0.5", "1.2.3.4"), []) == "10.0.0.5"
