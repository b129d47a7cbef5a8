"""/api/v1/posts: the CRUD contract (tests/fixtures/crud.py) with the values of posts."""

from __future__ import annotations

from typing import Any, ClassVar

from fixtures.crud import MISSING, CrudContract, Maker


class TestPosts(CrudContract):
    table = "posts"
    owner = "author_id"
    makers: ClassVar[dict[str, Maker]] = {
        "posts": ("/api/v1/posts", {"title": "Hello", "body": "text"}, {}),
    }
    changed: ClassVar[dict[str, Any]] = {"title": "Second"}  # the body stays as it was
    edges: ClassVar[dict[str, Any]] = {"title": "x" * 200, "body": "y" * 50_000}
    invalid: ClassVar[list[tuple[str, Any]]] = [
        ("title", ""),
        ("title", "   "),
        ("title", "x" * 201),
        ("title", "nul\x00"),
        ("title", 5),
        ("title", None),
        ("title", MISSING),
        ("body", "x" * 50_001),
        ("body", "nul\x00"),
    ]
