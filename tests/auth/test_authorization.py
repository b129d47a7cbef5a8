"""The authorization matrix: every endpoint x caller (anonymous, owner, another user, admin).

Alice owns the objects. A refused call (4xx) must leave every row as it was; the matrix must
name every route of the built-in resources, so a new one cannot ship without its row here
(a scaffolded resource brings its own ownership tests).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from service.app import create_app
from service.config import Settings

ROLES = ("anonymous", "alice", "bob", "admin")
NEW_USER = {"email": "new@example.com", "name": "New", "password": "long enough secret"}

# method, path ({alice} = alice's user id, {post} = her post), body, status by role
MATRIX: list[tuple[str, str, dict[str, Any] | None, tuple[int, int, int, int]]] = [
    ("GET", "/api/v1/users/me", None, (401, 200, 200, 200)),
    ("GET", "/api/v1/users", None, (401, 403, 403, 200)),
    ("POST", "/api/v1/users", NEW_USER, (401, 403, 403, 201)),
    ("GET", "/api/v1/users/{alice}", None, (401, 200, 200, 200)),
    ("PATCH", "/api/v1/users/{alice}", {"name": "Changed"}, (401, 200, 403, 200)),
    ("PATCH", "/api/v1/users/{alice}", {"password": "another secret"}, (401, 200, 403, 200)),
    ("PATCH", "/api/v1/users/{alice}", {"is_admin": True}, (401, 403, 403, 200)),
    ("PATCH", "/api/v1/users/{alice}", {"is_active": False}, (401, 403, 403, 200)),
    # the route's access rule comes before the body: bob may not change alice, whatever he sends
    ("PATCH", "/api/v1/users/{alice}", {"email": "x@example.com"}, (401, 422, 403, 422)),
    ("DELETE", "/api/v1/users/{alice}", None, (401, 403, 403, 204)),
    ("GET", "/api/v1/posts", None, (401, 200, 200, 200)),
    ("POST", "/api/v1/posts", {"title": "t"}, (401, 201, 201, 201)),
    ("POST", "/api/v1/posts", {"title": "t", "author_id": "{alice}"}, (401, 422, 422, 422)),
    ("GET", "/api/v1/posts/{post}", None, (401, 200, 200, 200)),
    ("PATCH", "/api/v1/posts/{post}", {"title": "x"}, (401, 200, 403, 200)),
    ("PATCH", "/api/v1/posts/{post}", {"author_id": "{bob}"}, (401, 422, 422, 422)),
    ("DELETE", "/api/v1/posts/{post}", None, (401, 204, 403, 204)),
    ("POST", "/api/v1/events/ticket", None, (401, 201, 201, 201)),
    ("POST", "/api/v1/auth/logout", None, (401, 204, 204, 204)),
    ("POST", "/api/v1/auth/login", {"email": "alice@example.com", "password": "x" * 8},
     (401, 401, 401, 401)),
]  # fmt: skip
BUILT_IN = ("/api/v1/users", "/api/v1/posts", "/api/v1/auth", "/api/v1/events")
STREAMS = {("GET", "/api/v1/events")}  # never ends when allowed: anonymous checked below


def _snapshot(database_url: str) -> list[Any]:
    with psycopg.connect(database_url) as conn:
        users = conn.execute("SELECT * FROM users ORDER BY id").fetchall()
        posts = conn.execute("SELECT * FROM posts ORDER BY id").fetchall()
        tokens = conn.execute(  # not last_used_at: authenticating a refused call updates it
            "SELECT id, user_id, token_hash, kind, name, expires_at FROM api_tokens ORDER BY id"
        ).fetchall()
    return [users, posts, tokens]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    MATRIX,
    ids=[f"{m} {p} {sorted(b or {})}" for m, p, b, _ in MATRIX],
)
def test_matrix(
    client: TestClient,
    database_url: str,
    alice: Account,
    bob: Account,
    admin: Account,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    expected: tuple[int, int, int, int],
) -> None:
    callers = {"alice": alice, "bob": bob, "admin": admin}
    post = client.post("/api/v1/posts", json={"title": "alice's"}, headers=alice.headers)
    ids = {"alice": alice.id, "bob": bob.id, "post": post.json()["id"]}
    headers = callers[role].headers if role in callers else {}
    before = _snapshot(database_url)
    response = client.request(method, _fill(path, ids), json=_fill(body, ids), headers=headers)
    assert response.status_code == expected[ROLES.index(role)], response.text
    if response.status_code >= 400:
        assert _snapshot(database_url) == before, "a refused call changed data"


def test_the_matrix_names_every_api_route(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(BUILT_IN)
        for method in operations
    }
    named = {(m, p.replace("{alice}", "{user_id}").replace("{post}", "{post_id}"))
             for m, p, _, _ in MATRIX}  # fmt: skip
    assert routes == named | STREAMS


def test_the_event_stream_needs_a_token(client: TestClient) -> None:
    assert client.get("/api/v1/events").status_code == 401
