"""Compiled routes answer exactly as FastAPI does: a differential test over the whole API.

Two apps run side by side, one with compiled routes and one on FastAPI's own machinery, on two
databases cloned from one (same users, tokens and posts, same ids). Every request of the
corpus below (happy paths of every route, every 4xx, malformed bodies, bad ids, missing and
bad auth, others' rows) goes to both, in lockstep, and the two answers must be the same bytes:
status, headers and body. Only what the database or the clock makes anew per request differs
(the ids and timestamps of new rows, login tokens, stream tickets); those are masked, and a body
compares with content-length only when nothing in it was masked. Both get the same X-Request-ID.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from fixtures.accounts import PASSWORD, Account
from fixtures.servers import Servers, with_database
from service.app import create_app
from service.config import Settings
from service.http.routing import RouteTable, RunRoute

Request = tuple[str, str, dict[str, Any]]  # method, url, httpx2 keyword arguments
_UUID = rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TIMESTAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"
_NEW = (
    (re.compile(rb'"(access_token|next_cursor|ticket)":"[^"]*"'), rb'"\1":"<new>"'),
    (re.compile(_TIMESTAMP), b"<timestamp>"),
)


def _masked(body: bytes, known: set[bytes]) -> bytes:
    """`body` with what each database or clock makes anew replaced by placeholders."""
    body = re.sub(_UUID, lambda m: m[0] if m[0] in known else b"<new id>", body)
    for pattern, placeholder in _NEW:
        body = pattern.sub(placeholder, body)
    return body


def _headers(response: Response, masked: bool) -> list[tuple[str, str]]:
    """The headers; with a masked body, those derived from it as placeholders (and always the
    rate limit's state: both apps count into the one Redis window)."""
    derived = ("content-length", "etag", "ratelimit") if masked else ("ratelimit",)
    return [(k, "<derived>" if k in derived else v) for k, v in response.headers.multi_items()]


@pytest.fixture
def twin_database_url(
    servers: Servers, database_url: str, alice: Account, bob: Account, admin: Account
) -> Iterator[str]:
    """A clone of this test's database, made after its accounts: the same rows, the same ids."""
    source = urlsplit(database_url).path.lstrip("/")
    name = f"{source}_twin"
    with psycopg.connect(servers.postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    yield with_database(servers.postgres_url, name)
    with psycopg.connect(servers.postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _corpus(alice: Account, bob: Account, admin: Account, post: str) -> list[Request]:
    """Every route: its happy path and the ways a client gets it wrong, in an order that
    keeps both databases alike (creates before reads, deletes last)."""
    a, b, root = alice.headers, bob.headers, admin.headers
    bad_token = {"Authorization": "Bearer apx_not-a-token"}
    missing, malformed = str(uuid.uuid4()), "not-a-uuid"
    posts, users = "/api/v1/posts", "/api/v1/users"
    bodies: list[dict[str, Any]] = [
        {"json": {"title": "Hello", "body": "text"}},
        {"json": {"title": "Only a title"}},
        {"json": {"title": ""}},
        {"json": {"title": "x" * 201}},
        {"json": {"title": "t", "extra": 1}},
        {"json": {"title": 5}},
        {"json": {"title": "nul\x00"}},
        {"json": ["not", "an", "object"]},
        {"json": None},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"title=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        {"content": b'{"title": "no content type"}'},
        {},
    ]
    corpus: list[Request] = [
        ("POST", posts, {**body, "headers": {**a, **body.get("headers", {})}}) for body in bodies
    ]
    corpus += [
        ("POST", posts, {"json": {"title": "t"}}),
        ("POST", posts, {"json": {"title": "t"}, "headers": bad_token}),
        ("GET", f"{posts}/{post}", {"headers": a}),
        ("GET", f"{posts}/{post}", {"headers": b}),
        ("GET", f"{posts}/{post}", {}),
        ("GET", f"{posts}/{missing}", {"headers": a}),
        ("GET", f"{posts}/{malformed}", {"headers": a}),
        ("GET", f"{posts}/{malformed}", {}),
        ("GET", posts, {"headers": a}),
        ("GET", posts, {"headers": a, "params": {"limit": 2}}),
        ("GET", posts, {"headers": a, "params": {"author_id": alice.id, "limit": 1}}),
        ("GET", posts, {"headers": a, "params": {"limit": 0}}),
        ("GET", posts, {"headers": a, "params": {"limit": "ten"}}),
        ("GET", posts, {"headers": a, "params": {"cursor": "tampered"}}),
        ("GET", posts, {"headers": a, "params": {"author_id": malformed}}),
        ("PATCH", f"{posts}/{post}", {"headers": b, "json": {"title": "bob's now"}}),
        ("PATCH", f"{posts}/{post}", {"headers": a, "json": {"title": "Changed"}}),
        ("PATCH", f"{posts}/{post}", {"headers": a, "json": {"title": ""}}),
        ("PATCH", f"{posts}/{post}", {"headers": a, "json": {"nope": 1}}),
        ("PATCH", f"{posts}/{missing}", {"headers": a, "json": {"title": "x"}}),
        ("PATCH", f"{posts}/{post}", {"headers": root, "json": {"body": "moderated"}}),
        ("GET", f"{users}/me", {"headers": a}),
        ("GET", f"{users}/me", {"headers": bad_token}),
        ("GET", f"{users}/me", {"headers": {"Authorization": "Basic abc"}}),
        ("GET", f"{users}/{bob.id}", {"headers": a}),
        ("GET", f"{users}/{missing}", {"headers": a}),
        ("GET", f"{users}/{malformed}", {"headers": a}),
        ("GET", users, {"headers": a}),
        ("GET", users, {"headers": root, "params": {"limit": 2}}),
        (
            "POST",
            users,
            {
                "headers": a,
                "json": {"email": "new@example.com", "name": "N", "password": "long enough"},
            },
        ),
        (
            "POST",
            users,
            {"json": {"email": "new@example.com", "name": "N", "password": "long enough"}},
        ),
        (
            "POST",
            users,
            {
                "headers": root,
                "json": {"email": "new@example.com", "name": "N", "password": "long enough"},
            },
        ),
        (
            "POST",
            users,
            {
                "headers": root,
                "json": {"email": "NEW@example.com", "name": "N", "password": "long enough"},
            },
        ),
        (
            "POST",
            users,
            {"headers": root, "json": {"email": "bad", "name": "N", "password": "short"}},
        ),
        ("PATCH", f"{users}/{alice.id}", {"headers": a, "json": {"name": "Alice A."}}),
        ("PATCH", f"{users}/{alice.id}", {"headers": a, "json": {"is_admin": True}}),
        ("PATCH", f"{users}/{alice.id}", {"headers": b, "json": {"name": "hijacked"}}),
        ("PATCH", f"{users}/{malformed}", {"headers": a, "json": {"name": "x"}}),
        ("POST", "/api/v1/auth/login", {"json": {"email": alice.email, "password": PASSWORD}}),
        (
            "POST",
            "/api/v1/auth/login",
            {"json": {"email": alice.email, "password": "wrong password"}},
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {"json": {"email": "nobody@example.com", "password": "whatever1"}},
        ),
        ("POST", "/api/v1/auth/login", {"json": {"email": alice.email}}),
        ("GET", "/health", {}),
        ("GET", "/ready", {}),
        ("GET", "/nowhere", {}),
        ("PUT", f"{posts}/{post}", {"headers": a, "json": {}}),
        ("DELETE", f"{posts}/{post}", {"headers": b}),
        ("DELETE", f"{users}/{bob.id}", {"headers": a}),
        ("DELETE", f"{posts}/{post}", {"headers": a}),
        ("DELETE", f"{posts}/{post}", {"headers": a}),
        ("DELETE", f"{users}/{bob.id}", {"headers": root}),
        ("POST", "/api/v1/events/ticket", {"headers": a}),
        ("POST", "/api/v1/events/ticket", {}),
        ("POST", "/api/v1/events/ticket", {"headers": bad_token}),
        ("POST", "/api/v1/auth/logout", {"headers": b}),
        ("POST", "/api/v1/auth/logout", {"headers": a}),
        ("GET", f"{users}/me", {"headers": a}),
    ]
    return corpus


def _served(client: TestClient) -> RunRoute:
    """The compiled-routes middleware of a running app (what it counted)."""
    layer: Any = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, RunRoute):
        layer = getattr(layer, "app", None) or layer.wrapped
    return layer


def test_compiled_and_fastapi_answer_every_request_alike(
    settings: Settings, twin_database_url: str, alice: Account, bob: Account, admin: Account
) -> None:
    fastapi_settings = settings.model_copy(
        update={"database_url": twin_database_url, "compiled_routes": False}
    )
    with (
        TestClient(create_app(settings)) as compiled,
        TestClient(create_app(fastapi_settings)) as plain,
    ):
        made = compiled.post("/api/v1/posts", json={"title": "alice's"}, headers=alice.headers)
        twin = plain.post("/api/v1/posts", json={"title": "alice's"}, headers=alice.headers)
        known = {account.id.encode() for account in (alice, bob, admin)}
        post = made.json()["id"]
        # the same post in both databases: give the twin's the compiled side's id
        with psycopg.connect(twin_database_url, autocommit=True) as conn:
            conn.execute("UPDATE posts SET id = %s WHERE id = %s", (post, twin.json()["id"]))
        known.add(post.encode())
        differences = []
        for n, (method, url, given) in enumerate(_corpus(alice, bob, admin, post)):
            # one request id for both: the ids in headers and error bodies then match too
            options = {**given, "headers": {**given.get("headers", {}), "X-Request-ID": f"r{n}"}}
            answers = [client.request(method, url, **options) for client in (compiled, plain)]
            bodies = [_masked(answer.content, known) for answer in answers]
            masked = any(
                body != answer.content for body, answer in zip(bodies, answers, strict=True)
            )
            mine, theirs = (
                (answer.status_code, _headers(answer, masked), body)
                for answer, body in zip(answers, bodies, strict=True)
            )
            if mine != theirs:
                differences.append((method, url, mine, theirs))
        counts = _served(compiled)
    assert differences == []
    assert counts.served >= 40  # most of the corpus really ran compiled ...
    assert counts.handed_on >= 20  # ... and the invalid requests went to FastAPI


def test_every_route_but_the_streams_is_compiled(client: TestClient) -> None:
    runs_on_fastapi = {
        (tuple(sorted(entry.route.methods or ())), entry.route.path): entry.runs
        for entry in RouteTable(client.app.routes).entries  # type: ignore[attr-defined]
        if entry.compiled is None and entry.runs != "not an API route"
    }
    assert runs_on_fastapi == {
        (("GET",), "/api/v1/events"): "a custom response class",
        (("GET",), "/metrics"): "a custom response class",
    }
