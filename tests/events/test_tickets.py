"""Stream tickets: POST /api/v1/events/ticket, then GET /api/v1/events?ticket=...

The rules they are held to: docs/api/events.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx2
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from fixtures.events import stream, wait_for
from fixtures.servers import RunningServer
from service.app import create_app
from service.config import Settings
from service.events.tickets import ticket_key


def new_ticket(client: TestClient, who: Account | str) -> str:
    token = who if isinstance(who, str) else who.token
    response = client.post("/api/v1/events/ticket", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    ticket: str = response.json()["ticket"]
    return ticket


def events(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    """The next `count` events with an id from an event-stream's lines."""
    found: list[dict[str, str]] = []
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "id" in event:
                found.append(event)
                if len(found) == count:
                    return found
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")
    raise EOFError("the stream ended")


def titles(received: list[dict[str, str]]) -> list[str]:
    return [json.loads(event["data"])["title"] for event in received]


def login(client: TestClient, who: Account, password: str) -> str:
    response = client.post("/api/v1/auth/login", json={"email": who.email, "password": password})
    assert response.status_code == 200
    token: str = response.json()["access_token"]
    return token


def test_a_ticket_is_201_for_five_minutes_and_redis_holds_only_its_hash(
    client: TestClient, alice: Account, redis_url: str
) -> None:
    began = datetime.now().astimezone()
    response = client.post("/api/v1/events/ticket", headers=alice.headers)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"ticket", "expires_at"}
    ticket = body["ticket"]
    assert ticket.startswith("apxt_")
    assert len(ticket) >= 47  # 256 random bits
    lifetime = datetime.fromisoformat(body["expires_at"]) - began
    # docs/api/events.md: 5 minutes
    assert timedelta(seconds=298) < lifetime <= timedelta(seconds=301)
    with redis.Redis.from_url(redis_url) as r:
        assert 298_000 < r.pttl(ticket_key(ticket)) <= 300_000
        everything = b"".join(k + (r.dump(k) or b"") for k in r.scan_iter())
    assert ticket.encode() not in everything
    assert alice.token.encode() not in everything


def test_a_ticket_opens_the_stream_and_again_for_a_reconnect(
    client: TestClient, alice: Account
) -> None:
    ticket = new_ticket(client, alice)
    for title in ("first connection", "reconnected"):
        with client.stream("GET", "/api/v1/events", params={"ticket": ticket}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines).startswith("retry:")
            created = client.post("/api/v1/posts", json={"title": title}, headers=alice.headers)
            assert created.status_code == 201
            (event,) = events(lines, 1)
        assert event["event"] == "post.created"
        assert json.loads(event["data"])["title"] == title


def test_a_ticket_works_on_every_instance(settings: Settings, alice: Account) -> None:
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        ticket = new_ticket(one, alice)
        with two.stream("GET", "/api/v1/events", params={"ticket": ticket}) as response:
            assert response.status_code == 200


def test_a_ticket_is_no_bearer_token_and_no_ticket_elsewhere(
    client: TestClient, alice: Account
) -> None:
    ticket = new_ticket(client, alice)
    as_bearer = {"Authorization": f"Bearer {ticket}"}
    assert client.get("/api/v1/users/me", headers=as_bearer).status_code == 401
    assert client.get("/api/v1/events", headers=as_bearer).status_code == 401
    assert client.post("/api/v1/events/ticket", headers=as_bearer).status_code == 401
    assert client.get("/api/v1/users/me", params={"ticket": ticket}).status_code == 401
    assert (
        client.post("/api/v1/posts", params={"ticket": ticket}, json={"title": "t"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    "ticket", ["", "apxt_", "apxt_" + "A" * 43, "not a ticket", "apx_" + "A" * 43], ids=repr
)
def test_an_unknown_or_malformed_ticket_is_401(client: TestClient, ticket: str) -> None:
    response = client.get("/api/v1/events", params={"ticket": ticket})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_an_expired_ticket_is_401(client: TestClient, alice: Account, redis_url: str) -> None:
    ticket = new_ticket(client, alice)
    with redis.Redis.from_url(redis_url) as r:
        r.pexpire(ticket_key(ticket), 1)  # its 300 s are over
    time.sleep(0.05)
    assert client.get("/api/v1/events", params={"ticket": ticket}).status_code == 401


def test_a_ticket_never_outlives_its_token(
    client: TestClient, alice: Account, database_url: str, redis_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_tokens SET expires_at = now() + interval '60 seconds'")
    body = client.post("/api/v1/events/ticket", headers=alice.headers).json()
    left = datetime.fromisoformat(body["expires_at"]) - datetime.now().astimezone()
    assert left <= timedelta(seconds=60)
    with redis.Redis.from_url(redis_url) as r:
        assert r.pttl(ticket_key(body["ticket"])) <= 60_000


def test_a_ticket_dies_with_logout(client: TestClient, alice: Account, password: str) -> None:
    token = login(client, alice, password)
    ticket = new_ticket(client, token)
    assert client.get("/api/v1/events", params={"ticket": "x" + ticket[1:]}).status_code == 401
    with client.stream("GET", "/api/v1/events", params={"ticket": ticket}) as response:
        assert response.status_code == 200
    logout = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert logout.status_code == 204
    assert client.get("/api/v1/events", params={"ticket": ticket}).status_code == 401


def test_a_ticket_dies_when_its_token_is_revoked_from_the_cli(
    client: TestClient,
    alice: Account,
    apictl: Callable[..., Any],
    server_env: dict[str, str],
) -> None:
    ticket = new_ticket(client, alice)
    listed = apictl("token", "list", alice.email, "--json", env=server_env)
    (token,) = json.loads(listed.stdout)
    assert apictl("token", "revoke", token["id"], env=server_env).returncode == 0
    assert client.get("/api/v1/events", params={"ticket": ticket}).status_code == 401


def test_last_event_id_as_a_query_parameter_resumes_like_the_header(
    client: TestClient, alice: Account, redis_url: str
) -> None:
    ticket = new_ticket(client, alice)
    for title in ("one", "two", "three"):
        assert client.post("/api/v1/posts", json={"title": title}, headers=alice.headers).is_success
    wait_for(lambda: len(stream(redis_url)) == 3, 5, "three events on the Stream")  # relayed
    first, second, _ = (entry.id for entry in stream(redis_url))
    resumed = {"ticket": ticket, "last_event_id": first}
    with client.stream("GET", "/api/v1/events", params=resumed) as response:
        assert titles(events(response.iter_lines(), 2)) == ["two", "three"]
    # a reconnecting EventSource sends its newer Last-Event-ID to the same URL: the header wins
    newer = {"Last-Event-ID": second}
    with client.stream("GET", "/api/v1/events", params=resumed, headers=newer) as response:
        lines = response.iter_lines()
        assert titles(events(lines, 1)) == ["three"]
        client.post("/api/v1/posts", json={"title": "four"}, headers=alice.headers)
        assert titles(events(lines, 1)) == ["four"]


def test_a_bad_last_event_id_query_parameter_is_422(client: TestClient, alice: Account) -> None:
    query = {"ticket": new_ticket(client, alice), "last_event_id": "yesterday"}
    response = client.get("/api/v1/events", params=query)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_without_redis_a_ticket_is_503(settings: Settings, alice: Account, free_port: int) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port}/0"})
    with TestClient(create_app(broken)) as client:
        response = client.post("/api/v1/events/ticket", headers=alice.headers)
        assert response.status_code == 503
        assert response.json()["code"] == "service_unavailable"
        assert (
            client.get("/api/v1/events", params={"ticket": "apxt_" + "A" * 43}).status_code == 503
        )


def test_no_log_line_holds_a_ticket_or_a_token(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    password: str,
) -> None:
    server = start_server({**server_env, "APICTL_LOG_LEVEL": "debug", "APICTL_LOG_FORMAT": "json"})
    with httpx2.Client(base_url=server.url, timeout=10) as http:
        token = http.post(
            "/api/v1/auth/login", json={"email": alice.email, "password": password}
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        ticket = http.post("/api/v1/events/ticket", headers=bearer).json()["ticket"]
        with http.stream("GET", "/api/v1/events", params={"ticket": ticket}) as response:
            assert response.status_code == 200
        bad = {"ticket": ticket, "last_event_id": "yesterday"}
        assert http.get("/api/v1/events", params=bad).status_code == 422
        assert (
            http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {ticket}"}).status_code
            == 401
        )
        assert http.post("/api/v1/auth/logout", headers=bearer).status_code == 204
        assert http.get("/api/v1/events", params={"ticket": ticket}).status_code == 401
    _, log = server.stop()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("msg") == "request"]
    assert [r["status"] for r in requests if r["path"] == "/api/v1/events"] == [200, 422, 401]
    for secret in (ticket, token, ticket[5:], token[4:]):
        assert secret not in log
