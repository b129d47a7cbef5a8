"""Every error the app can produce answers with the unified body and an X-Request-ID."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from service.app import create_app
from service.config import Settings
from service.errors import Conflict

# Routes that exist only in these tests, to exercise body parsing and failures.
probe = APIRouter(prefix="/_test")


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int


@probe.post("/items")
async def create_item(item: Item) -> Item:
    return item


@probe.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@probe.get("/conflict")
async def conflict() -> None:
    raise Conflict("that email is taken")


@pytest.fixture(params=[1024], ids=["1KiB-limit"])
def api(settings: Settings, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"max_body_bytes": request.param}))
    app.include_router(probe)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["error"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_unknown_route_is_404(api: TestClient) -> None:
    assert_error(api.get("/no/such/route"), 404, "not_found")


def test_wrong_method_is_405_with_allow(api: TestClient) -> None:
    response = api.delete("/health")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


def test_malformed_json_is_422(api: TestClient) -> None:
    response = api.post(
        "/_test/items", content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    body = assert_error(response, 422, "validation_error")
    assert body["details"][0]["type"] == "json_invalid"


def test_invalid_utf8_is_422(api: TestClient) -> None:
    body = b'{"name": "\xff\xfe"}'
    response = api.post("/_test/items", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b'{"name": "x", "size": ' + b"[" * 100_000, "nested deeper than 32", "body"),
        (b'{"name": "x", "size": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32",
         "body.size" + ".0" * 31),
        (b'{"name": "x", "size": 99999999999999999999999}', "64 bits", "body.size"),
        (b'{"name": "x", "size": [1, 9223372036854775808]}', "64 bits", "body.size.1"),
        (b'{"name": "x", "size": ' + b"9" * 100_000 + b"}", "64 bits", "body"),
        (b'{"name": "x", "size": NaN}', "NaN", "body"),
        (b'{"name": "\\ud800", "size": 1}', "surrogate", "body.name"),
        (b'{"name": "\xc3\x28", "size": 1}', "UTF-8", "body"),
    ],
    ids=["100k-deep", "33-deep", "huge-int", "int64-plus-one", "100k-digits", "nan", "surrogate",
         "bad-utf8"],
)  # fmt: skip
@pytest.mark.parametrize("api", [1024 * 1024], ids=["1MiB-limit"], indirect=True)
def test_json_past_the_shared_limits_is_422(
    api: TestClient, body: bytes, reason: str, field: str
) -> None:
    response = api.post("/_test/items", content=body, headers={"content-type": "application/json"})
    details = assert_error(response, 422, "validation_error")["details"]
    assert reason in details[0]["message"]
    assert details[0]["field"] == field


def test_json_at_the_limits_passes(api: TestClient) -> None:
    nested = b"[" * 31 + b"]" * 31  # 32 levels with the object around it
    response = api.post(
        "/_test/items",
        content=b'{"name": "\\ud83d\\ude00", "size": -9223372036854775808, "x": ' + nested + b"}",
        headers={"content-type": "application/json"},
    )
    # the limits let it through; the model then refuses only the unknown field
    details = assert_error(response, 422, "validation_error")["details"]
    assert [d["field"] for d in details] == ["body.x"]
    ok = api.post("/_test/items", json={"name": "\U0001f600", "size": 2**63 - 1})
    assert ok.json() == {"name": "\U0001f600", "size": 2**63 - 1}


def test_validation_details_name_each_field(api: TestClient) -> None:
    response = api.post("/_test/items", json={"size": "big", "colour": "red"})
    body = assert_error(response, 422, "validation_error")
    fields = {detail["field"] for detail in body["details"]}
    assert fields == {"body.name", "body.size", "body.colour"}


def test_valid_body_passes(api: TestClient) -> None:
    response = api.post("/_test/items", json={"name": "x", "size": 3})
    assert response.status_code == 200
    assert response.json() == {"name": "x", "size": 3}


def test_declared_oversized_body_is_413(api: TestClient) -> None:
    response = api.post("/_test/items", json={"name": "x" * 2000, "size": 1})
    assert_error(response, 413, "payload_too_large")


def test_chunked_oversized_body_is_413(api: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'", "size": 1}'

    response = api.post(
        "/_test/items", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_unhandled_exception_is_500_without_internals(api: TestClient) -> None:
    response = api.get("/_test/boom")
    body = assert_error(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in body["error"]


def test_domain_error_keeps_its_message(api: TestClient) -> None:
    body = assert_error(api.get("/_test/conflict"), 409, "conflict")
    assert body["error"] == "that email is taken"


def test_caller_request_id_is_echoed(api: TestClient) -> None:
    response = api.get("/health", headers={"X-Request-ID": "abc-123.DEF_x"})
    assert response.headers["x-request-id"] == "abc-123.DEF_x"
    error = api.get("/nope", headers={"X-Request-ID": "trace-42"})
    assert error.json()["request_id"] == "trace-42"


@pytest.mark.parametrize("bad", [b"has space", b"x" * 129, b"semi;colon", "ünï".encode()])
def test_invalid_request_id_is_replaced(api: TestClient, bad: bytes) -> None:
    response = api.get("/health", headers={b"X-Request-ID": bad})
    rid = response.headers["x-request-id"]
    assert rid.encode() != bad
    assert 1 <= len(rid) <= 128


def test_request_ids_are_unique(api: TestClient) -> None:
    ids = {api.get("/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_large_responses_are_gzipped_small_ones_not(api: TestClient) -> None:
    large = api.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert large.headers["content-encoding"] == "gzip"
    assert large.json()["openapi"]  # the client decompressed it
    raw = api.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert len(gzip.compress(raw.content)) < len(raw.content)
    small = api.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_no_cors_headers_without_configured_origins(api: TestClient) -> None:
    response = api.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_answers_only_configured_origins(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["https://app.example"]}))
    with TestClient(app) as client:
        preflight = client.options(
            "/health",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        allowed = client.get("/health", headers={"Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_a_page_on_an_allowed_origin_can_edit_conditionally_and_retry_safely(
    settings: Settings,
) -> None:
    """Its fetch() may send If-Match and Idempotency-Key, and read ETag and the limit."""
    app = create_app(settings.model_copy(update={"cors_origins": ["https://app.example"]}))
    with TestClient(app) as client:
        preflight = client.options(
            "/api/v1/posts/00000000-0000-4000-8000-000000000001",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, if-match, idempotency-key",
            },
        )
        assert preflight.status_code == 200, preflight.text
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"if-match", "if-none-match", "idempotency-key"} <= set(allowed.split(", "))
        answer = client.get("/health", headers={"Origin": "https://app.example"})
        exposed = answer.headers["access-control-expose-headers"].lower().split(", ")
        assert {"etag", "ratelimit", "ratelimit-policy", "idempotent-replayed"} <= set(exposed)
