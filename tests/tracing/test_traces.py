"""What a served apictl exports to a real OTLP/HTTP collector (docs/operations/tracing.md).

A request carrying a W3C `traceparent` is one SERVER span in the caller's trace, named by its
route template, with CLIENT spans for its SQL statements and Redis commands; its log lines carry
the trace id; nothing secret is in any byte exported.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable

import httpx2

from fixtures.accounts import Account
from fixtures.otlp import CLIENT, SERVER, STATUS_ERROR, ExportedSpan, running_collector
from fixtures.servers import DB_PASSWORD, RunningServer, free_port, with_password
from fixtures.webhook_receiver import receiving


def traceparent() -> tuple[str, str, dict[str, str]]:
    """A caller's trace id, its span id, and the header that sends both (sampled)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def traced_env(server_env: dict[str, str], collector_url: str) -> dict[str, str]:
    return {
        **server_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector_url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: spans leave soon after they end
        "APICTL_LOG_FORMAT": "json",
    }


def in_trace(spans: list[ExportedSpan], trace_id: str) -> list[ExportedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


def server_span(spans: list[ExportedSpan], trace_id: str) -> ExportedSpan:
    (found,) = [s for s in in_trace(spans, trace_id) if s.kind == SERVER]
    return found


def test_a_request_is_a_server_span_in_the_callers_trace_with_its_sql_and_redis(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    password: str,
) -> None:
    with running_collector() as collector:
        env = traced_env(server_env, collector.url)
        env["DATABASE_URL"] = with_password(env["DATABASE_URL"])
        env["OTEL_SERVICE_NAME"] = "shop-api"
        server = start_server(env)
        api = f"{server.url}/api/v1"
        login_trace, caller_span, header = traceparent()
        login = httpx2.post(
            f"{api}/auth/login?next=/secret-query",
            json={"email": alice.email, "password": password},
            headers=header,
        )
        assert login.status_code == 200
        token = login.json()["access_token"]
        read_trace, _, header = traceparent()
        me = httpx2.get(f"{api}/users/me", headers={**header, "Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        spans = collector.wait_for(
            lambda spans: bool(in_trace(spans, login_trace)) and bool(in_trace(spans, read_trace))
        )
        _, log = server.stop()

    login_span = server_span(spans, login_trace)
    assert login_span.name == "POST /api/v1/auth/login"
    assert login_span.parent_span_id == caller_span
    assert login_span.attributes == {
        "http.request.method": "POST",
        "http.route": "/api/v1/auth/login",
        "http.response.status_code": 200,
        "url.path": "/api/v1/auth/login",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
    }
    children = [s for s in in_trace(spans, login_trace) if s.parent_span_id == login_span.span_id]
    sql = [s for s in children if s.attributes.get("db.system.name") == "postgresql"]
    assert sql
    assert all(s.kind == CLIENT for s in sql)
    assert any("FROM users" in s.attributes["db.query.text"] for s in sql)
    redis = [s for s in children if s.attributes.get("db.system.name") == "redis"]
    assert [s.name for s in redis] == ["MULTI"]  # the login rate limit's counters
    assert redis[0].attributes["apictl.redis.commands"] == "SET INCRBY TTL SET INCRBY TTL"
    assert "password verify" in {s.name for s in children}

    read_span = server_span(spans, read_trace)
    assert read_span.name == "GET /api/v1/users/me"
    assert read_span.parent_span_id != ""  # the caller's
    assert {r["service.name"] for r in collector.resources()} == {"shop-api"}

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "apictl.access"]
    login_line = next(line for line in access if line["route"] == "/api/v1/auth/login")
    assert login_line["trace_id"] == login_trace
    assert login_line["span_id"] == login_span.span_id
    assert any(line.get("trace_id") == read_trace for line in access)

    exported = b"".join(collector.bodies)
    for secret in (token, alice.token, password, DB_PASSWORD, "Bearer", "secret-query"):
        assert secret.encode() not in exported, secret


def test_a_5xx_marks_the_span_as_error_and_a_write_is_relayed_in_a_trace_of_its_own(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    drop_database: Callable[[str], None],
) -> None:
    with running_collector() as collector:
        server = start_server(traced_env(server_env, collector.url))
        api = f"{server.url}/api/v1"
        write_trace, _, header = traceparent()
        made = httpx2.post(
            f"{api}/posts", json={"title": "traced"}, headers={**header, **alice.headers}
        )
        assert made.status_code == 201
        relayed = collector.wait_for(lambda spans: any(s.name == "relay events" for s in spans))
        drop_database(server_env["DATABASE_URL"])
        failed_trace, _, header = traceparent()
        answer = httpx2.get(f"{api}/posts/{made.json()['id']}", headers={**header, **alice.headers})
        assert answer.status_code == 503
        spans = collector.wait_for(lambda spans: bool(in_trace(spans, failed_trace)))

    (relay,) = [s for s in relayed if s.name == "relay events"]
    assert relay.trace_id != write_trace
    assert relay.parent_span_id == ""
    relay_children = {
        s.name for s in relayed if s.trace_id == relay.trace_id and s.span_id != relay.span_id
    }
    # appended to the Stream, then deleted and handed to webhooks in one statement (WITH ...)
    assert {"EVALSHA", "WITH"} <= relay_children
    failed = server_span(spans, failed_trace)
    assert failed.name == "GET /api/v1/posts/{post_id}"
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status == STATUS_ERROR
    assert server_span(relayed, write_trace).status != STATUS_ERROR


def test_each_webhook_attempt_is_a_trace_of_its_own(
    apictl: Callable[..., subprocess.CompletedProcess[str]],
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
) -> None:
    env = {**server_env, "APICTL_WEBHOOK_ALLOW_PRIVATE": "true"}
    with running_collector() as collector, receiving(free_port()) as receiver:
        added = apictl("webhooks", "add", receiver.url, env=env)
        assert added.returncode == 0, added.stderr
        server = start_server(traced_env(env, collector.url))
        made = httpx2.post(
            f"{server.url}/api/v1/posts", json={"title": "hooked"}, headers=alice.headers
        )
        assert made.status_code == 201
        receiver.wait_for(1)
        spans = collector.wait_for(
            lambda spans: any(s.name == "webhook deliveries recorded" for s in spans)
        )
    (attempt,) = [s for s in spans if s.name == "webhook delivery"]
    (recorded,) = [s for s in spans if s.name == "webhook deliveries recorded"]
    assert attempt.parent_span_id == recorded.parent_span_id == ""
    assert attempt.trace_id != recorded.trace_id
    children = {s.name for s in spans if s.trace_id == recorded.trace_id} - {recorded.name}
    assert "WITH" in children  # WITH delivered AS (UPDATE ...) ...
