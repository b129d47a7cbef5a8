"""Webhook tests: a real receiver (fixtures/webhook_receiver.py) and served apictl processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fixtures.accounts import Account
from fixtures.servers import free_port
from fixtures.webhook_receiver import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(free_port()) as running:
        yield running


@pytest.fixture
def hook_env(server_env: dict[str, str]) -> dict[str, str]:
    """A server's environment for webhook tests: loopback receivers allowed, retries in
    seconds, the API limit out of the way."""
    return {
        **server_env,
        "APICTL_WEBHOOK_ALLOW_PRIVATE": "true",
        "APICTL_WEBHOOK_RETRY_SCHEDULE": "1s,1s,2s",
        "APICTL_WEBHOOK_TIMEOUT": "2",
    }


@pytest.fixture
def add_hook(apictl: Callable[..., Any], hook_env: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """`apictl webhooks add URL ... --json`: the endpoint, its secret included."""
    import json

    def add(url: str, *options: str) -> dict[str, Any]:
        done = apictl("webhooks", "add", url, *options, "--json", env=hook_env)
        assert done.returncode == 0, done.stderr
        created: dict[str, Any] = json.loads(done.stdout)
        return created

    return add


@pytest.fixture
def post_as(alice: Account) -> Callable[[str, str], str]:
    """POST a post as alice to the server at `url`: its id."""
    import httpx2

    def post(url: str, title: str) -> str:
        answer = httpx2.post(
            f"{url}/api/v1/posts", json={"title": title, "body": "text"}, headers=alice.headers
        )
        assert answer.status_code == 201, answer.text
        post_id: str = answer.json()["id"]
        return post_id

    return post
