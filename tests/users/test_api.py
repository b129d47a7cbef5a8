"""/api/v1/users: creation, reading, pages, changes and deletion, with their authorization."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx2
import psycopg
import pytest
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from service.app import create_app
from service.config import Settings

USER_FIELDS = {"id", "email", "name", "is_admin", "is_active", "created_at"}


def new_user(**overrides: Any) -> dict[str, Any]:
    return {"email": "new@example.com", "name": "New", "password": "long enough", **overrides}


def test_admin_creates_a_user(client: TestClient, admin: Account) -> None:
    body = new_user(email="  Carol@Example.COM ", name="  Carol  ")
    response = client.post("/api/v1/users", json=body, headers=admin.headers)
    assert response.status_code == 201
    user = response.json()
    assert set(user) == USER_FIELDS  # never a password or its hash
    assert user["email"] == "carol@example.com"
    assert user["name"] == "Carol"
    assert (user["is_admin"], user["is_active"]) == (False, True)
    assert user["created_at"].endswith("Z") or "+" in user["created_at"]
    fetched = client.get(f"/api/v1/users/{user['id']}", headers=admin.headers)
    assert fetched.json() == user


def test_duplicate_email_in_any_case_is_409(client: TestClient, admin: Account) -> None:
    assert client.post("/api/v1/users", json=new_user(), headers=admin.headers).status_code == 201
    again = client.post(
        "/api/v1/users", json=new_user(email="NEW@example.com"), headers=admin.headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"


def test_only_admins_create_users_without_open_signup(client: TestClient, alice: Account) -> None:
    anonymous = client.post("/api/v1/users", json=new_user())
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/v1/users", json=new_user(), headers=alice.headers).status_code == 403


def test_open_signup_lets_anyone_create(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"open_signup": True}))) as client:
        response = client.post("/api/v1/users", json=new_user())
        assert response.status_code == 201
        assert response.json()["is_admin"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (new_user(email="not-an-email"), "body.email"),
        (new_user(email="a@" + "x" * 250 + ".com"), "body.email"),
        (new_user(email="a\x00b@example.com"), "body.email"),
        (new_user(name="   "), "body.name"),
        (new_user(name="x" * 101), "body.name"),
        (new_user(name="nul\x00name"), "body.name"),
        (new_user(password="short"), "body.password"),
        (new_user(password="x" * 129), "body.password"),
        (new_user(password="nul\x00password"), "body.password"),
        (new_user(name=42), "body.name"),
        (new_user(is_admin=True), "body.is_admin"),
        ({"email": "a@example.com", "password": "long enough"}, "body.name"),
    ],
)
def test_invalid_user_is_422_naming_the_field(
    client: TestClient, admin: Account, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/users", json=body, headers=admin.headers)
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "validation_error"
    assert field in {detail["field"] for detail in error["details"]}


def test_sql_metacharacters_are_stored_literally(client: TestClient, admin: Account) -> None:
    name = "Robert'); DROP TABLE users;-- \\ % _ $1"
    created = client.post("/api/v1/users", json=new_user(name=name), headers=admin.headers)
    assert created.status_code == 201
    assert (
        client.get(f"/api/v1/users/{created.json()['id']}", headers=admin.headers).json()["name"]
        == name
    )
    assert client.get("/api/v1/users/me", headers=admin.headers).status_code == 200


def test_me_and_lookup(client: TestClient, alice: Account, bob: Account) -> None:
    me = client.get("/api/v1/users/me", headers=alice.headers)
    assert me.status_code == 200
    assert me.json()["email"] == "alice@example.com"
    other = client.get(f"/api/v1/users/{bob.id}", headers=alice.headers)
    assert other.json()["email"] == "bob@example.com"
    missing = client.get(f"/api/v1/users/{uuid.uuid4()}", headers=alice.headers)
    assert missing.status_code == 404
    malformed = client.get("/api/v1/users/not-a-uuid", headers=alice.headers)
    assert malformed.status_code == 422
    assert malformed.json()["details"][0]["field"] == "path.user_id"


def test_admin_pages_cover_every_user_exactly_once(
    client: TestClient, admin: Account, make_account: Callable[..., Account]
) -> None:
    emails = {f"u{i}@example.com" for i in range(7)} | {"root@example.com"}
    for email in emails - {"root@example.com"}:
        make_account(email)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/users", params=params, headers=admin.headers).json()
        assert len(page["items"]) <= 3
        seen += [user["email"] for user in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(seen) == sorted(emails)


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"cursor": "garbage!"}, {"cursor": "W10"}]
)
def test_bad_page_parameters_are_422(
    client: TestClient, admin: Account, params: dict[str, Any]
) -> None:
    response = client.get("/api/v1/users", params=params, headers=admin.headers)
    assert response.status_code == 422


def test_listing_users_is_for_admins(client: TestClient, alice: Account) -> None:
    assert client.get("/api/v1/users", headers=alice.headers).status_code == 403


def test_self_may_change_name_but_not_role(
    client: TestClient, alice: Account, database_url: str
) -> None:
    renamed = client.patch(
        f"/api/v1/users/{alice.id}", json={"name": "Alice A."}, headers=alice.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Alice A."
    for smuggled in ({"is_admin": True}, {"is_active": False}, {"name": "x", "is_admin": True}):
        refused = client.patch(f"/api/v1/users/{alice.id}", json=smuggled, headers=alice.headers)
        assert refused.status_code == 403
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT name, is_admin, is_active FROM users WHERE id = %s", (alice.id,)
        ).fetchone()
    assert row == ("Alice A.", False, True)


def test_nobody_changes_another_user_but_an_admin(
    client: TestClient, alice: Account, bob: Account, admin: Account
) -> None:
    assert (
        client.patch(f"/api/v1/users/{bob.id}", json={"name": "x"}, headers=alice.headers)
    ).status_code == 403
    promoted = client.patch(
        f"/api/v1/users/{bob.id}", json={"is_admin": True}, headers=admin.headers
    )
    assert promoted.status_code == 200
    assert promoted.json()["is_admin"] is True
    # bob's cached principal is refreshed: he can now list users
    assert client.get("/api/v1/users", headers=bob.headers).status_code == 200
    missing = client.patch(
        f"/api/v1/users/{uuid.uuid4()}", json={"name": "x"}, headers=admin.headers
    )
    assert missing.status_code == 404


def test_password_change_revokes_tokens_and_the_new_password_works(
    client: TestClient, alice: Account
) -> None:
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    changed = client.patch(
        f"/api/v1/users/{alice.id}", json={"password": "a new secret"}, headers=alice.headers
    )
    assert changed.status_code == 200
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 401
    login = client.post(
        "/api/v1/auth/login", json={"email": alice.email, "password": "a new secret"}
    )
    assert login.status_code == 200


def test_deactivation_revokes_tokens_and_blocks_login(
    client: TestClient, alice: Account, admin: Account, password: str
) -> None:
    credentials = {"email": alice.email, "password": password}
    assert client.post("/api/v1/auth/login", json=credentials).status_code == 200
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    client.patch(f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers)
    assert client.get("/api/v1/users/me", headers=alice.headers).status_code == 401
    assert client.post("/api/v1/auth/login", json=credentials).status_code == 401


def test_only_admins_delete_and_deletion_ends_tokens(
    client: TestClient, alice: Account, bob: Account, admin: Account
) -> None:
    assert client.delete(f"/api/v1/users/{bob.id}", headers=alice.headers).status_code == 403
    assert client.get("/api/v1/users/me", headers=bob.headers).status_code == 200
    assert client.delete(f"/api/v1/users/{bob.id}", headers=admin.headers).status_code == 204
    assert client.get(f"/api/v1/users/{bob.id}", headers=admin.headers).status_code == 404
    assert client.get("/api/v1/users/me", headers=bob.headers).status_code == 401
    assert client.delete(f"/api/v1/users/{bob.id}", headers=admin.headers).status_code == 404


def test_fifty_concurrent_creates_of_one_email(
    start_server: Callable[..., Any], server_env: dict[str, str], admin: Account
) -> None:
    server = start_server(server_env)

    async def race() -> list[int]:
        async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/api/v1/users",
                        json=new_user(email="Same@Example.com" if i % 2 else "same@example.com"),
                        headers=admin.headers,
                    )
                    for i in range(50)
                )
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(race())
    assert statuses.count(201) == 1
    assert statuses.count(409) == 49


def test_a_user_is_tagged_and_if_match_guards_changes(
    client: TestClient, alice: Account, admin: Account
) -> None:
    one = f"/api/v1/users/{alice.id}"
    me = client.get("/api/v1/users/me", headers=alice.headers)
    assert me.headers["etag"] == client.get(one, headers=admin.headers).headers["etag"]
    tag = me.headers["etag"]
    cached = client.get("/api/v1/users/me", headers={**alice.headers, "If-None-Match": tag})
    assert cached.status_code == 304

    renamed = client.patch(
        one, json={"name": "Alice A."}, headers={**alice.headers, "If-Match": tag}
    )
    assert renamed.status_code == 200
    assert renamed.headers["etag"] != tag
    stale = client.patch(one, json={"name": "Lost"}, headers={**alice.headers, "If-Match": tag})
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert client.get(one, headers=alice.headers).json()["name"] == "Alice A."

    refused = client.delete(one, headers={**admin.headers, "If-Match": tag})
    assert refused.status_code == 412
    assert client.get(one, headers=admin.headers).status_code == 200
    current = {**admin.headers, "If-Match": renamed.headers["etag"]}
    assert client.delete(one, headers=current).status_code == 204
