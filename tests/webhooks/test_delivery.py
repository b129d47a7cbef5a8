"""Events reach webhook endpoints: signed as Standard Webhooks say, retried, never lost."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import psycopg

from fixtures.events import stream
from fixtures.servers import free_port
from fixtures.webhook_receiver import Receiver, receiving


def test_an_event_is_delivered_signed_with_the_stream_id_and_the_api_s_data(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    redis_url: str,
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
) -> None:
    hook = add_hook(receiver.url, "--events", "post.created")
    assert hook["secret"].startswith("whsec_")
    receiver.secrets = [hook["secret"]]
    server = start_server(hook_env)
    post_id = post_as(server.url, "hello hooks")
    [got] = receiver.wait_for(1)
    assert got.verified_with == [hook["secret"]]
    [event] = [e for e in stream(redis_url) if e.type == "post.created"]
    assert got.id == event.id  # the id SSE clients see
    assert got.message["type"] == "post.created"
    assert got.message["data"] == event.data
    assert got.message["data"]["id"] == post_id
    assert got.message["timestamp"].endswith("Z")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("apictl/")


def test_a_failed_delivery_is_retried_on_the_schedule_with_the_same_id(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    hook = add_hook(receiver.url)
    receiver.secrets = [hook["secret"]]
    receiver.answers = [500, 503]
    server = start_server(hook_env)  # schedule 1s,1s,2s
    post_as(server.url, "retried")
    first, second, third = receiver.wait_for(3)
    assert first.id == second.id == third.id
    assert [r.answered for r in (first, second, third)] == [500, 503, 200]
    assert all(r.verified_with for r in (first, second, third))
    assert 0.85 <= second.at - first.at <= 2.0  # 1 s +-10 %, and the claim's poll
    # each attempt is signed anew: its own timestamp
    assert int(third.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
    shown = json.loads(apictl("webhooks", "deliveries", hook["id"], "--json", env=hook_env).stdout)
    [delivery] = shown
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
        "delivered", 3, 200,
    )  # fmt: skip
    assert delivery["next_attempt_at"] is None


def test_retry_after_is_honoured_up_to_the_following_step(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
) -> None:
    add_hook(receiver.url)
    receiver.answers = [429, 429]
    receiver.headers = {"Retry-After": "3"}
    server = start_server({**hook_env, "APICTL_WEBHOOK_RETRY_SCHEDULE": "1s,2s,30s"})
    post_as(server.url, "later")
    first, second, third = receiver.wait_for(3, within=15)
    assert 1.8 <= second.at - first.at <= 3.0  # asked 3 s: held to the next step, 2 s
    assert 2.8 <= third.at - second.at <= 4.5  # asked 3 s: below the next step, 30 s: 3 s


def test_a_receiver_down_then_back_gets_the_event(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
) -> None:
    port = free_port()
    hook = add_hook(f"http://127.0.0.1:{port}/hooks")
    server = start_server(hook_env)
    post_as(server.url, "while down")
    time.sleep(1.5)  # the first attempt (and maybe the second) found nobody
    with receiving(port) as receiver:
        receiver.secrets = [hook["secret"]]
        [got] = receiver.wait_for(1, within=10)
        assert got.verified_with
        assert got.message["data"]["title"] == "while down"


def test_410_disables_the_endpoint_at_once(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    hook = add_hook(receiver.url)
    receiver.answers = [410]
    server = start_server(hook_env)
    post_as(server.url, "gone")
    receiver.wait_for(1)
    listed = _wait_for_endpoint(apictl, hook_env, hook["id"], lambda h: not h["enabled"])
    assert "410" in listed["disabled_reason"]
    post_as(server.url, "not sent")
    time.sleep(2.5)
    assert len(receiver.received) == 1  # nothing more, no retry
    shown = json.loads(apictl("webhooks", "deliveries", "--json", env=hook_env).stdout)
    assert [d["status"] for d in shown] == ["failed"]


def test_an_endpoint_failing_for_five_days_is_disabled(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    database_url: str,
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    hook = add_hook(receiver.url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute'"
        )
    receiver.answers = [500]
    server = start_server(hook_env)
    post_as(server.url, "one failure too many")
    receiver.wait_for(1)
    listed = _wait_for_endpoint(apictl, hook_env, hook["id"], lambda h: not h["enabled"])
    assert listed["disabled_reason"] == "every delivery failed for 5 days"
    time.sleep(1.5)
    assert len(receiver.received) == 1  # its retry is not sent while disabled


def test_a_delivery_is_failed_after_the_last_attempt(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    hook = add_hook(receiver.url)
    receiver.answers = [500] * 10
    server = start_server({**hook_env, "APICTL_WEBHOOK_RETRY_SCHEDULE": "1s"})
    post_as(server.url, "twice then never")
    receiver.wait_for(2)
    time.sleep(2)
    assert len(receiver.received) == 2  # the first attempt and the one retry
    [delivery] = json.loads(
        apictl("webhooks", "deliveries", hook["id"], "--json", env=hook_env).stdout
    )
    assert (delivery["status"], delivery["attempts"]) == ("failed", 2)
    assert delivery["last_error"].startswith("HTTP 500")
    metrics = httpx2.get(f"{server.url}/metrics").text
    assert 'apictl_webhook_deliveries_total{result="retried"} 1.0' in metrics
    assert 'apictl_webhook_deliveries_total{result="failed"} 1.0' in metrics


def test_a_rotated_secret_and_the_previous_one_both_verify(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    hook = add_hook(receiver.url)
    rotated = apictl("webhooks", "rotate-secret", hook["id"], "--json", env=hook_env)
    assert rotated.returncode == 0, rotated.stderr
    new_secret = json.loads(rotated.stdout)["secret"]
    assert new_secret != hook["secret"]
    assert new_secret.startswith("whsec_")
    receiver.secrets = [hook["secret"], new_secret]
    server = start_server(hook_env)
    post_as(server.url, "both")
    [got] = receiver.wait_for(1)
    assert got.verified_with == [hook["secret"], new_secret]
    assert len(got.headers["webhook-signature"].split(" ")) == 2


def test_redirects_are_not_followed(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    hook = add_hook(receiver.url)
    receiver.answers = [307] * 10
    receiver.headers = {"Location": receiver.url + "/elsewhere"}
    server = start_server(hook_env)
    post_as(server.url, "moved")
    receiver.wait_for(2)
    assert {r.headers.get("host") for r in receiver.received} == {receiver.url.split("/")[2]}
    assert all(r.answered == 307 for r in receiver.received)  # never a request to /elsewhere
    [delivery] = json.loads(
        apictl("webhooks", "deliveries", hook["id"], "--json", env=hook_env).stdout
    )
    assert delivery["status"] == "pending"
    assert "redirect" in delivery["last_error"]
    assert "not followed" in delivery["last_error"]


def test_a_private_address_is_refused_at_delivery_too(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    # added while private addresses were allowed; the server now refuses them (as it would a
    # name that resolves elsewhere once added: the address connected to is checked)
    hook = add_hook(receiver.url.replace("127.0.0.1", "localhost"))
    server = start_server({**hook_env, "APICTL_WEBHOOK_ALLOW_PRIVATE": "false"})
    post_as(server.url, "not to localhost")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = json.loads(
            apictl("webhooks", "deliveries", hook["id"], "--json", env=hook_env).stdout
        )
        if shown and shown[0]["last_error"]:
            break
        time.sleep(0.2)
    assert "refused" in shown[0]["last_error"]
    assert "loopback" in shown[0]["last_error"]
    assert receiver.received == []


def _wait_for_endpoint(
    apictl: Callable[..., Any],
    env: dict[str, str],
    hook_id: str,
    done: Callable[[dict[str, Any]], bool],
    within: float = 10,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        hooks: list[dict[str, Any]] = json.loads(
            apictl("webhooks", "list", "--json", env=env).stdout
        )
        [listed] = [h for h in hooks if h["id"] == hook_id]
        if done(listed) or time.monotonic() > deadline:
            return listed
        time.sleep(0.2)


def test_replay_sends_kept_events_again_and_ready_stays_200_meanwhile(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    redis_url: str,
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    hook = add_hook(receiver.url, "--events", "post.created")
    server = start_server(hook_env)
    for n in range(3):
        post_as(server.url, f"post {n}")
    receiver.wait_for(3)
    first, *later = [e.id for e in stream(redis_url) if e.type == "post.created"]
    receiver.answers = [500] * 100  # failing from now on: the service does not mind
    replayed = apictl("webhooks", "replay", hook["id"], "--since", first, "--json", env=hook_env)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) == {
        "endpoint_id": hook["id"], "queued": 2, "truncated": False,
    }  # fmt: skip
    again = receiver.wait_for(5)[3:]
    assert sorted(r.id for r in again) == sorted(later)
    assert httpx2.get(f"{server.url}/ready").status_code == 200
    metrics = httpx2.get(f"{server.url}/metrics").text
    assert 'apictl_webhook_deliveries_total{result="delivered"} 3.0' in metrics
    assert "apictl_webhook_backlog" in metrics
