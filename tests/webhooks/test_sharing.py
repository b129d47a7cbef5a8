"""Several instances share the deliveries: each made once, none lost to a SIGKILL, and a slow
endpoint never holds up another."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fixtures.servers import free_port
from fixtures.webhook_receiver import Receiver, receiving


def test_two_instances_deliver_each_event_once(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    endpoint = add_hook(receiver.url)
    a, b = start_server(hook_env), start_server(hook_env)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: post_as((a.url, b.url)[n % 2], f"post {n}"), range(40)))
    receiver.wait_for(40)
    time.sleep(2)  # room for a duplicate to show up
    counts = Counter(r.id for r in receiver.received)
    assert len(counts) == 40
    assert set(counts.values()) == {1}
    listed = apictl("webhooks", "deliveries", endpoint["id"], "--json", env=hook_env)
    recorded = json.loads(listed.stdout)
    assert sorted(d["event_id"] for d in recorded) == sorted(counts)
    assert {d["status"] for d in recorded} == {"delivered"}


@pytest.mark.faults  # kills a server of its own: run once, not per database
def test_a_delivery_survives_its_instance_killed_between_attempts(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
) -> None:
    add_hook(receiver.url)
    receiver.answers = [500]
    env = {**hook_env, "APICTL_WEBHOOK_RETRY_SCHEDULE": "3s"}
    first = start_server(env)
    post_as(first.url, "outlives its server")
    receiver.wait_for(1)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    start_server(env)
    failed, delivered = receiver.wait_for(2, within=15)
    assert delivered.id == failed.id
    assert delivered.answered == 200


@pytest.mark.faults  # kills a server of its own: run once, not per database
def test_a_delivery_survives_its_instance_killed_mid_attempt(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
) -> None:
    add_hook(receiver.url)
    receiver.delay = 1.0  # the first attempt is still waiting for its answer when the kill comes
    first = start_server(hook_env)
    post_as(first.url, "in flight")
    deadline = time.monotonic() + 10
    while not receiver.arrived and time.monotonic() < deadline:
        time.sleep(0.01)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    receiver.delay = 0
    start_server(hook_env)  # takes the delivery when the dead one's lease ends (2 s + 5 s)
    got = receiver.wait_for(2, within=20)
    assert got[0].id == got[1].id  # sent twice: at least once, with the same webhook-id


def _wait_until_arrived(receiver: Receiver) -> None:
    deadline = time.monotonic() + 10
    while not receiver.arrived and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.arrived, "no attempt reached the receiver"


def test_a_stopping_instance_finishes_its_attempt_and_records_it(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
    apictl: Callable[..., Any],
) -> None:
    endpoint = add_hook(receiver.url)
    receiver.delay = 1.0  # still waiting for its answer when SIGTERM comes
    server = start_server(hook_env)
    post_as(server.url, "in flight across the stop")
    _wait_until_arrived(receiver)
    code, output = server.stop()
    assert code == 0, output
    listed = apictl("webhooks", "deliveries", endpoint["id"], "--json", env=hook_env)
    assert [d["status"] for d in json.loads(listed.stdout)] == ["delivered"]
    start_server(hook_env)
    time.sleep(3)  # a leased, unrecorded attempt would be made again by this one
    assert len(receiver.received) == 1


def test_an_attempt_cut_short_by_the_stop_is_made_again_at_once(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    receiver: Receiver,
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
) -> None:
    add_hook(receiver.url)
    receiver.delay = 1.5  # longer than the stop waits (0.2 s), shorter than the timeout (2 s)
    first = start_server({**hook_env, "APICTL_SHUTDOWN_TIMEOUT": "0.2"})
    post_as(first.url, "cut short")
    _wait_until_arrived(receiver)
    code, output = first.stop()
    assert code == 0, output
    assert "cut short by the stop" in output
    receiver.delay = 0
    start_server(hook_env)
    restarted = time.monotonic()
    got = receiver.wait_for(2, within=10)
    # its lease (2 s + 5 s from the claim) was let go: the next instance made it within its poll
    assert time.monotonic() - restarted < 3
    assert got[0].id == got[1].id


def test_a_slow_endpoint_does_not_hold_up_a_fast_one(
    start_server: Callable[..., Any],
    hook_env: dict[str, str],
    add_hook: Callable[..., dict[str, Any]],
    post_as: Callable[[str, str], str],
) -> None:
    with receiving(free_port()) as slow, receiving(free_port()) as fast:
        slow.delay = 1.5  # within the 2 s timeout: delivered, slowly
        add_hook(slow.url)
        add_hook(fast.url)
        server = start_server(hook_env)
        posted = time.monotonic()
        for n in range(30):
            post_as(server.url, f"post {n}")
        fast.wait_for(30, within=10)
        fast_done = time.monotonic() - posted
        assert len(slow.received) < 30, "the slow one is still being served"
        slow.wait_for(30, within=20)
        slow_done = time.monotonic() - posted
        assert fast_done < 3.0
        assert slow_done > 4.0  # 10 at a time, 1.5 s each
