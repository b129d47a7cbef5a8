"""The API rate limit: per caller, shared by instances, per process while Redis is down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
from fastapi.testclient import TestClient

from fixtures.accounts import PASSWORD, Account
from fixtures.servers import RunningServer, free_port
from service.app import create_app
from service.config import RateLimit, Settings

ME = "/api/v1/users/me"


def _fresh_window(period: int = 60, margin: float = 15) -> None:
    """Start a test well inside a fixed window, so that none ends half-way through it."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.1)


def test_past_the_limit_is_429_and_the_headers_count_down(
    settings: Settings, alice: Account, bob: Account
) -> None:
    limited = settings.model_copy(update={"api_rate_limit": RateLimit(5, 60)})
    _fresh_window()
    with TestClient(create_app(limited)) as client:
        answers = [client.get(ME, headers=alice.headers) for _ in range(6)]
        login = {"email": alice.email, "password": PASSWORD}
        logged_in = client.post("/api/v1/auth/login", json=login)
        others = client.get(ME, headers=bob.headers)
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert all(a.headers["ratelimit-policy"] == '"api";q=5;w=60' for a in answers)
    remaining = [int(a.headers["ratelimit"].split(";")[1].removeprefix("r=")) for a in answers]
    assert remaining == [4, 3, 2, 1, 0, 0]
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert logged_in.status_code == 200, "login has its own limit and does not count"
    assert "ratelimit" not in logged_in.headers
    assert others.status_code == 200, "each caller has a budget of its own"


def test_off_counts_nothing(settings: Settings, alice: Account) -> None:
    with TestClient(create_app(settings.model_copy(update={"api_rate_limit": None}))) as client:
        answer = client.get(ME, headers=alice.headers)
        document = client.get("/openapi.json").json()
    assert answer.status_code == 200
    assert "ratelimit" not in answer.headers
    assert "RateLimit" not in document["paths"]["/api/v1/users/me"]["get"]["responses"]["200"].get(
        "headers", {}
    ), "the document promises the fields only while the limit is on"


def test_the_openapi_document_declares_the_fields_where_they_are_sent(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        paths = client.get("/openapi.json").json()["paths"]
    me = paths["/api/v1/users/me"]["get"]["responses"]
    for status in ("200", "401", "429"):
        assert {"RateLimit-Policy", "RateLimit"} <= set(me[status]["headers"]), status
    assert "Retry-After" in me["429"]["headers"]
    assert "ETag" in paths["/api/v1/posts/{post_id}"]["get"]["responses"]["200"]["headers"]
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert "RateLimit" not in login["200"].get("headers", {}), "login is not counted"


def test_two_instances_together_admit_at_most_the_limit_and_10_percent(
    start_server: Callable[..., RunningServer], server_env: dict[str, str], alice: Account
) -> None:
    env = {**server_env, "APICTL_API_RATE_LIMIT": "200/minute"}
    servers = [start_server(env), start_server(env)]
    _fresh_window(margin=30)  # 600 requests on a loaded machine must not straddle two windows

    def send(n: int) -> int:
        return httpx2.get(f"{servers[n % 2].url}{ME}", headers=alice.headers).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(send, range(600)))
    print(f"\ntwo instances, limit 200/minute, 600 requests: {dict(statuses)}")
    assert set(statuses) == {200, 429}
    assert 200 <= statuses[200] <= 220


def test_redis_down_still_limits_per_process_and_ready_says_so(
    settings: Settings, alice: Account
) -> None:
    down = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "api_rate_limit": RateLimit(3, 60),
        }
    )
    _fresh_window()
    with TestClient(create_app(down)) as client:
        statuses = [client.get(ME, headers=alice.headers).status_code for _ in range(5)]
        ready = client.get("/ready").json()
        metrics = client.get("/metrics").text
    assert statuses == [200, 200, 200, 429, 429]
    assert ready["checks"]["redis"]["status"] == "degraded"
    assert "apictl_api_rate_limit_local 1.0" in metrics
