"""/api/v1/posts: CRUD, keyset pages under concurrent inserts, ownership."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

Account = Any  # tests.conftest.Account


def write(client: TestClient, who: Account, title: str = "Hello", body: str = "text") -> Any:
    response = client.post(
        "/api/v1/posts", json={"title": title, "body": body}, headers=who.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_create_read_update_delete(client: TestClient, alice: Account) -> None:
    post = write(client, alice, "First", "Body")
    assert set(post) == {"id", "author_id", "title", "body", "created_at", "updated_at"}
    assert post["author_id"] == alice.id
    assert client.get(f"/api/v1/posts/{post['id']}", headers=alice.headers).json() == post
    changed = client.patch(
        f"/api/v1/posts/{post['id']}", json={"title": "Second"}, headers=alice.headers
    )
    assert changed.status_code == 200
    assert (changed.json()["title"], changed.json()["body"]) == ("Second", "Body")
    assert changed.json()["updated_at"] > post["updated_at"]
    assert client.delete(f"/api/v1/posts/{post['id']}", headers=alice.headers).status_code == 204
    gone = client.get(f"/api/v1/posts/{post['id']}", headers=alice.headers)
    assert gone.status_code == 404
    for method in ("patch", "delete"):
        again = client.request(
            method, f"/api/v1/posts/{post['id']}", json={"title": "x"}, headers=alice.headers
        )
        assert again.status_code == 404


def test_author_is_the_caller_whatever_the_body_says(
    client: TestClient, alice: Account, bob: Account
) -> None:
    smuggled = client.post(
        "/api/v1/posts", json={"title": "t", "author_id": bob.id}, headers=alice.headers
    )
    assert smuggled.status_code == 422
    assert write(client, alice)["author_id"] == alice.id


def test_only_author_or_admin_may_change_a_post(
    client: TestClient, alice: Account, bob: Account, admin: Account
) -> None:
    post = write(client, alice)
    url = f"/api/v1/posts/{post['id']}"
    assert client.patch(url, json={"title": "mine now"}, headers=bob.headers).status_code == 403
    assert client.delete(url, headers=bob.headers).status_code == 403
    assert client.get(url, headers=bob.headers).json()["title"] == "Hello"
    assert client.patch(url, json={"title": "moderated"}, headers=admin.headers).status_code == 200
    assert client.delete(url, headers=admin.headers).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "body.title"),
        ({"title": "   "}, "body.title"),
        ({"title": "x" * 201}, "body.title"),
        ({"title": "t", "body": "x" * 50_001}, "body.body"),
        ({"title": "nul\x00"}, "body.title"),
        ({"title": "t", "body": "nul\x00"}, "body.body"),
        ({"body": "no title"}, "body.title"),
        ({"title": 5}, "body.title"),
    ],
)
def test_invalid_posts_are_422(
    client: TestClient, alice: Account, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/posts", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert field in {d["field"] for d in response.json()["details"]}


def test_edge_sizes_are_accepted(client: TestClient, alice: Account) -> None:
    post = write(client, alice, "x" * 200, "y" * 50_000)
    assert len(post["body"]) == 50_000


def test_pages_cover_every_post_once_while_others_insert(
    client: TestClient, alice: Account, bob: Account
) -> None:
    existing = {write(client, alice, f"old {i}")["id"] for i in range(11)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/posts", params=params, headers=alice.headers).json()
        seen += [post["id"] for post in page["items"]]
        write(client, bob, "inserted between pages")
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == existing


def test_newest_first_and_author_filter(client: TestClient, alice: Account, bob: Account) -> None:
    a1, b1, a2 = write(client, alice, "a1"), write(client, bob, "b1"), write(client, alice, "a2")
    everything = client.get("/api/v1/posts", headers=alice.headers).json()
    assert [p["id"] for p in everything["items"]] == [a2["id"], b1["id"], a1["id"]]
    assert everything["next_cursor"] is None
    only_alice = client.get(
        "/api/v1/posts", params={"author_id": alice.id, "limit": 1}, headers=alice.headers
    ).json()
    assert [p["id"] for p in only_alice["items"]] == [a2["id"]]
    rest = client.get(
        "/api/v1/posts",
        params={"author_id": alice.id, "cursor": only_alice["next_cursor"]},
        headers=alice.headers,
    ).json()
    assert [p["id"] for p in rest["items"]] == [a1["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"cursor": "tampered"},
        {"cursor": "WyIyMDI2LTAxLTAxIiwgIngiXQ"},  # valid base64 of garbage
        {"author_id": "not-a-uuid"},
    ],
)
def test_bad_list_parameters_are_422(
    client: TestClient, alice: Account, params: dict[str, Any]
) -> None:
    response = client.get("/api/v1/posts", params=params, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_malformed_and_unknown_ids(client: TestClient, alice: Account) -> None:
    assert client.get("/api/v1/posts/123", headers=alice.headers).status_code == 422
    assert client.get(f"/api/v1/posts/{uuid.uuid4()}", headers=alice.headers).status_code == 404


def test_posts_need_a_token(client: TestClient) -> None:
    assert client.get("/api/v1/posts").status_code == 401
    assert client.post("/api/v1/posts", json={"title": "t"}).status_code == 401
