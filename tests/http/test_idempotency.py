"""Idempotency-Key on creating POSTs: a retry never creates twice (docs/api/idempotency.md)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import psycopg
import pytest
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from fixtures.servers import RunningServer, free_port
from service.app import create_app
from service.config import Settings

POSTS = "/api/v1/posts"


def rows(database_url: str, title: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM posts WHERE title = %s", (title,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_retry_replays_the_first_answer_and_creates_nothing(
    client: TestClient, alice: Account, database_url: str
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "order-42"}
    first = client.post(POSTS, json={"title": "once"}, headers=headers)
    retry = client.post(POSTS, json={"title": "once"}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["cache-control"] == "no-store"
    assert rows(database_url, "once") == 1

    other = client.post(POSTS, json={"title": "another"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert rows(database_url, "another") == 0


def test_a_refused_request_is_kept_too_and_keys_are_per_caller(
    client: TestClient, alice: Account, bob: Account, database_url: str
) -> None:
    invalid = {**alice.headers, "Idempotency-Key": "k"}
    assert client.post(POSTS, json={"title": ""}, headers=invalid).status_code == 422
    again = client.post(POSTS, json={"title": ""}, headers=invalid)
    assert again.status_code == 422
    assert again.headers["idempotent-replayed"] == "true"

    key = {"Idempotency-Key": "same-key"}
    mine = client.post(POSTS, json={"title": "alice's"}, headers={**alice.headers, **key})
    theirs = client.post(POSTS, json={"title": "bob's"}, headers={**bob.headers, **key})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["author_id"] == alice.id
    assert theirs.json()["author_id"] == bob.id


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve"])
def test_a_malformed_key_is_422_naming_the_header(
    client: TestClient, alice: Account, key: str
) -> None:
    headers = [(k.encode(), v.encode()) for k, v in alice.headers.items()]
    response = client.post(
        POSTS, json={"title": "t"}, headers=[*headers, (b"idempotency-key", key.encode())]
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "header.idempotency-key"


def test_fifty_concurrent_retries_make_exactly_one_row(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    database_url: str,
) -> None:
    server = start_server(server_env)
    headers = {**alice.headers, "Idempotency-Key": "storm"}

    def send(_: int) -> httpx2.Response:
        return httpx2.post(f"{server.url}{POSTS}", json={"title": "storm"}, headers=headers)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(send, range(50)))
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    created = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1, "every 201 is the one post"
    assert rows(database_url, "storm") == 1
    busy = [a for a in answers if a.status_code == 409]
    assert all(a.headers["retry-after"] and a.json()["code"] == "conflict" for a in busy)
    print(f"\n50 concurrent retries of one key: {dict(statuses)}, 1 row")


def test_two_instances_share_keys(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    database_url: str,
) -> None:
    a, b = start_server(server_env), start_server(server_env)
    headers = {**alice.headers, "Idempotency-Key": "across"}
    first = httpx2.post(f"{a.url}{POSTS}", json={"title": "across"}, headers=headers)
    retry = httpx2.post(f"{b.url}{POSTS}", json={"title": "across"}, headers=headers)
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert rows(database_url, "across") == 1


def test_a_5xx_is_not_kept_so_the_retry_runs(
    settings: Settings, alice: Account, database_url: str
) -> None:
    """The outbox limit gives a real 503 (Redis unreachable, the backlog over its limit)."""
    unreachable = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "event_backlog_limit": 1}
    )
    headers = {**alice.headers, "Idempotency-Key": "after-outage"}
    with TestClient(create_app(unreachable)) as client:
        for title in ("fills", "the outbox"):
            assert (
                client.post(POSTS, json={"title": title}, headers=alice.headers).status_code == 201
            )
        time.sleep(1.2)  # the backlog is measured every second
        refused = client.post(POSTS, json={"title": "kept?"}, headers=headers)
        assert refused.status_code == 503
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM event_outbox")  # as if the relay had caught up
        time.sleep(1.2)
        retried = client.post(POSTS, json={"title": "kept?"}, headers=headers)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert rows(database_url, "kept?") == 1
