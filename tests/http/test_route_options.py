"""Route options: declared once on the route, read by the request path and the OpenAPI document;
documentation text changes nothing; a misplaced declaration stops start-up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from service.app import create_app
from service.config import RateLimit, Settings
from service.deps import CurrentUser
from service.http.route_options import ApiRoute, route_options
from service.http.routing import RouteTable
from service.ops.route_table import route_table


def _notes_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/notes", route_class=ApiRoute)

    @router.get("/tagged")
    @route_options(etag=True)
    async def tagged(caller: CurrentUser) -> dict[str, str]:
        return {"note": "tagged"}

    # documented as if it had an ETag and an Idempotency-Key, declared with neither
    @router.get(
        "/documented",
        responses={200: {"headers": {"ETag": {"schema": {"type": "string"}}}}},
        openapi_extra={"parameters": [{"name": "Idempotency-Key", "in": "header"}]},
    )
    async def documented(caller: CurrentUser) -> dict[str, str]:
        return {"note": "documented"}

    @router.get("/free")
    @route_options(counted=False, compiled=False)
    async def free(caller: CurrentUser) -> dict[str, str]:
        return {"note": "free"}

    return router


@pytest.fixture(name="notes")
def notes_fixture(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"api_rate_limit": RateLimit(100, 60)}))
    app.include_router(_notes_router())
    with TestClient(app) as client:
        yield client


def test_a_declared_etag_tags_and_answers_304(notes: TestClient, alice: Account) -> None:
    first = notes.get("/api/v1/notes/tagged", headers=alice.headers)
    assert first.status_code == 200
    assert first.headers["etag"]
    again = notes.get(
        "/api/v1/notes/tagged", headers={**alice.headers, "If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


def test_documentation_text_turns_nothing_on(notes: TestClient, alice: Account) -> None:
    answer = notes.get("/api/v1/notes/documented", headers=alice.headers)
    assert answer.status_code == 200
    assert "etag" not in answer.headers
    assert answer.headers["cache-control"] == "no-store"
    assert "ratelimit" in answer.headers  # counted: the default of an API route


def test_a_route_declared_not_counted_is_not_counted(notes: TestClient, alice: Account) -> None:
    answer = notes.get("/api/v1/notes/free", headers=alice.headers)
    assert answer.status_code == 200
    assert "ratelimit" not in answer.headers


def test_options_show_in_openapi_and_apictl_routes(notes: TestClient) -> None:
    paths: dict[str, Any] = notes.get("/openapi.json").json()["paths"]
    tagged = paths["/api/v1/notes/tagged"]["get"]
    assert "ETag" in tagged["responses"]["200"]["headers"]
    assert "304" in tagged["responses"]
    assert [p["name"] for p in tagged["parameters"]] == ["If-None-Match"]
    assert "RateLimit" in tagged["responses"]["200"]["headers"]
    assert "headers" not in paths["/api/v1/notes/free"]["get"]["responses"]["200"]
    create = paths["/api/v1/posts"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"]]
    assert "Idempotent-Replayed" in create["responses"]["201"]["headers"]
    table = {r.path: r for r in route_table(notes.app)}  # type: ignore[arg-type]
    assert table["/api/v1/notes/tagged"].options == ["etag", "counted"]
    assert table["/api/v1/notes/free"].options == []
    assert table["/api/v1/notes/free"].runs == "declared compiled=False"
    assert table["/api/v1/posts"].options == ["idempotent", "counted"]
    assert table["/health"].options == ["constant"]
    assert table["/ready"].options == []


def test_options_on_a_router_without_api_route_stop_start_up() -> None:
    router = APIRouter()

    @router.get("/plain")
    @route_options(etag=True)
    async def plain() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router)
    with pytest.raises(RuntimeError, match="plain: its @route_options are not applied"):
        RouteTable(app.routes)


def test_options_above_the_route_decorator_stop_start_up() -> None:
    router = APIRouter(route_class=ApiRoute)

    @route_options(idempotent=True)
    @router.post("/upside-down")
    async def upside_down() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router)
    with pytest.raises(RuntimeError, match="put the decorator below the router's"):
        RouteTable(app.routes)
