"""`apictl routes` and `apictl openapi`: the app described from itself, checked against the app."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from service.deps import AdminUser, admin_principal
from service.ops.route_table import route_table

Apictl = Callable[..., CompletedProcess[str]]

SOME_ID = "00000000-0000-4000-8000-000000000000"


def routes_json(apictl: Apictl) -> list[dict[str, Any]]:
    result = apictl("routes", "--json")
    assert result.returncode == 0, result.stderr
    routes: list[dict[str, Any]] = json.loads(result.stdout)
    return routes


def by_endpoint(routes: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, r["path"]): r for r in routes for method in r["methods"] if method != "HEAD"}


# The docs' API table, "who" column (docs/api/index.md), one row per endpoint, in the words of
# `apictl routes`:
# anyone -> none; "admin (anyone if APICTL_OPEN_SIGNUP)" -> admin unless open signup;
# "self (name, password) or admin (all)" -> self or admin; "author or admin" -> owner or admin.
DOCUMENTED_WHO = {
    ("GET", "/health"): "none",
    ("GET", "/ready"): "none",
    ("GET", "/metrics"): "none",
    ("POST", "/api/v1/auth/login"): "none",
    ("POST", "/api/v1/auth/logout"): "token",
    ("POST", "/api/v1/users"): "admin unless open signup",
    ("GET", "/api/v1/users/me"): "token",
    ("GET", "/api/v1/users/{user_id}"): "token",
    ("GET", "/api/v1/users"): "admin",
    ("PATCH", "/api/v1/users/{user_id}"): "self or admin",
    ("DELETE", "/api/v1/users/{user_id}"): "admin",
    ("GET", "/api/v1/posts"): "token",
    ("POST", "/api/v1/posts"): "token",
    ("GET", "/api/v1/posts/{post_id}"): "token",
    ("PATCH", "/api/v1/posts/{post_id}"): "owner or admin",
    ("DELETE", "/api/v1/posts/{post_id}"): "owner or admin",
    ("GET", "/api/v1/events"): "token or ticket",  # ?ticket=: docs/api/events.md
    ("POST", "/api/v1/events/ticket"): "token",  # docs/api/events.md
    ("POST", "/api/v1/webhooks"): "admin",  # docs/api/webhooks.md
    ("GET", "/api/v1/webhooks"): "admin",
    ("GET", "/api/v1/webhooks/{webhook_id}"): "admin",
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): "admin",
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): "admin",
    ("POST", "/api/v1/webhooks/{webhook_id}/secret"): "admin",
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): "admin",
    ("POST", "/api/v1/webhooks/{webhook_id}/replay"): "admin",
    ("GET", "/openapi.json"): "none",
    ("GET", "/docs"): "none",
    ("GET", "/redoc"): "none",  # offline: docs/api/index.md
}


def test_routes_are_exactly_the_documented_endpoints_with_their_access_rules(
    apictl: Apictl,
) -> None:
    routes = by_endpoint(routes_json(apictl))
    assert {key: route["auth"] for key, route in routes.items()} == {
        **DOCUMENTED_WHO,
        ("GET", "/docs/oauth2-redirect"): "none",  # Swagger UI's own page
        ("GET", "/docs/assets/{name}"): "none",  # the docs pages' scripts, styles and icon
    }
    assert routes[("GET", "/api/v1/posts")]["handler"] == "service.posts.routes:list_posts"
    assert routes[("GET", "/api/v1/posts")]["summary"] == "Posts, newest first"


def test_routes_auth_matches_what_the_service_enforces(
    apictl: Apictl, client: TestClient, alice: Account
) -> None:
    """Without a token every `token`/`admin` route is 401 and no `none` route is; with a
    non-admin token every `admin` route is 403."""
    for (method, path), route in by_endpoint(routes_json(apictl)).items():
        url = re.sub(r"\{[^}]+\}", SOME_ID, path)
        anonymous = client.request(method, url).status_code
        if route["auth"] == "none":
            assert anonymous != 401, (method, path)
        else:
            assert anonymous == 401, (method, path)
        if route["auth"] in ("admin", "admin unless open signup"):
            assert client.request(method, url, headers=alice.headers).status_code == 403


def test_routes_reads_auth_from_router_level_dependencies_too() -> None:
    router = APIRouter(prefix="/reports", dependencies=[Depends(admin_principal)])

    @router.get("")
    async def list_reports() -> list[str]:
        return []

    @router.get("/mine")
    async def my_reports(caller: AdminUser) -> list[str]:
        return []

    app = FastAPI()
    app.include_router(router)
    table = {route.path: route for route in route_table(app) if route.path.startswith("/reports")}
    assert {path: route.auth for path, route in table.items()} == {
        "/reports": "admin",
        "/reports/mine": "admin",
    }
    assert table["/reports"].handler.endswith("<locals>.list_reports")


def test_routes_table_for_humans(apictl: Apictl) -> None:
    result = apictl("routes", env={**os.environ, "COLUMNS": "180"})
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    line = next(row for row in rows if "/api/v1/users " in row and "GET" in row)
    assert "admin" in line
    assert "service.users.routes:list_users" in line


def test_openapi_to_stdout_is_the_served_document(apictl: Apictl, client: TestClient) -> None:
    result = apictl("openapi")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "/api/v1/posts" in document["paths"]
    served = client.get("/openapi.json").json()
    differing = sorted(
        f"{path} {method}"
        for path in {*document["paths"], *served["paths"]}
        for method in {**document["paths"].get(path, {}), **served["paths"].get(path, {})}
        if document["paths"].get(path, {}).get(method) != served["paths"].get(path, {}).get(method)
    )
    assert differing == []  # named, so that a difference says where it is
    assert document == served


def test_openapi_out_writes_the_file_and_says_where(apictl: Apictl, tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    result = apictl("openapi", "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout
    assert "/api/v1/posts" in json.loads(target.read_text())["paths"]


def test_openapi_out_unwritable_is_one_line(apictl: Apictl, tmp_path: Path) -> None:
    result = apictl("openapi", "--out", str(tmp_path / "missing" / "openapi.json"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot write")
    assert "Traceback" not in result.stderr
