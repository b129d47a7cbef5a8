"""`apictl check deploy`: each production risk is a finding with its severity; exit 1 on errors."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from fixtures.pgbouncer import DEFAULT_POOL_SIZE, MAX_CLIENT_CONN, PgBouncer
from fixtures.servers import APICTL
from service.process.bundled import bundled_dir

Apictl = Callable[..., CompletedProcess[str]]
Findings = dict[str, list[dict[str, Any]]]  # by id: config-invalid comes once per problem
Check = Callable[..., tuple[int, Findings]]
HARD_FILES = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # what `apictl check deploy` inherits
STREAM_CAPACITY = HARD_FILES - (20 + 1 + 50 + 200)  # the database pool, relay, Redis, a reserve
STRONG = "b2Z4-long-random-pw-9q"  # the test servers trust local clients: any password works


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{password}@{host}"))


@pytest.fixture
def production(database_url: str, redis_url: str) -> dict[str, str]:
    """A production environment that passes every check (on this test's migrated database)."""
    return {
        **os.environ,
        "APICTL_ENV": "production",
        "DATABASE_URL": with_password(database_url, STRONG),
        "REDIS_URL": redis_url,
    }


@pytest.fixture
def check(apictl: Apictl) -> Check:
    """Run `apictl check deploy --json`: (exit code, findings by id)."""

    def run(env: dict[str, str], *args: str) -> tuple[int, Findings]:
        result = apictl("check", "deploy", "--json", *args, env=env)
        assert "Traceback" not in result.stderr
        findings: Findings = {}
        for finding in json.loads(result.stdout):
            assert set(finding) == {"id", "severity", "message", "hint"}
            findings.setdefault(finding.pop("id"), []).append(finding)
        return result.returncode, findings

    return run


def severities(findings: Findings) -> dict[str, str]:
    return {id_: f[0]["severity"] for id_, f in findings.items()}


def only(findings: Findings, id_: str) -> dict[str, Any]:
    """The one finding `id_`."""
    [finding] = findings[id_]
    return finding


def test_a_production_ready_configuration_passes(check: Check, production: dict[str, str]) -> None:
    code, findings = check(production)
    assert code == 0
    assert not {id_ for id_, s in severities(findings).items() if s != "info"}
    assert (
        "1 process(es) x APICTL_DB_POOL_MAX=20 = 20 connections"
        in only(findings, "pool-size")["message"]
    )


def test_development_with_embedded_servers_warns_without_failing(check: Check) -> None:
    code, findings = check(dict(os.environ))  # nothing set: what `apictl serve` would use
    assert code == 0
    assert severities(findings) == {
        "env-development": "warning",
        "embedded-postgresql": "warning",
        "embedded-redis": "warning",
        "stream-capacity": "info",
    }
    assert not Path(".apictl").exists()  # judging them started nothing


def test_production_without_servers_is_an_error(check: Check) -> None:
    code, findings = check({**os.environ, "APICTL_ENV": "production"})
    assert code == 1
    assert sorted(f["message"].split(" ")[0] for f in findings["config-invalid"]) == [
        "DATABASE_URL",
        "REDIS_URL",
    ]
    assert all(f["severity"] == "error" for f in findings["config-invalid"])
    assert "is required in production" in findings["config-invalid"][0]["message"]


@pytest.mark.parametrize(
    ("env", "finding", "severity"),
    [
        ({"APICTL_CORS_ORIGINS": "*"}, "cors-wildcard", "warning"),
        ({"APICTL_LOG_LEVEL": "debug"}, "debug-logging", "warning"),
        ({"APICTL_LOG_FORMAT": "console"}, "console-logs", "warning"),
        ({"DATABASE_URL": "postgres"}, "database-password-weak", "error"),
        ({"DATABASE_URL": "short"}, "database-password-weak", "error"),
        ({"DATABASE_URL": ""}, "database-password-missing", "warning"),
        ({"APICTL_DOCS": "true"}, "docs-public", "info"),
        ({"APICTL_API_RATE_LIMIT": "off"}, "api-rate-limit-off", "warning"),
    ],
    ids=[
        "cors",
        "debug",
        "console-logs",
        "well-known-password",
        "short-password",
        "no-password",
        "docs",
        "api-limit-off",
    ],
)
def test_each_risky_setting_is_a_finding(
    check: Check, production: dict[str, str], env: dict[str, str], finding: str, severity: str
) -> None:
    if "DATABASE_URL" in env:  # the value is the password to put in the production URL
        env = {"DATABASE_URL": with_password(production["DATABASE_URL"], env["DATABASE_URL"])}
    code, findings = check({**production, **env})
    assert only(findings, finding)["severity"] == severity
    assert only(findings, finding)["hint"]
    assert code == (1 if severity == "error" else 0)
    assert STRONG not in json.dumps(findings)


def test_cors_wildcard_with_credentials_is_an_error(
    check: Check, production: dict[str, str]
) -> None:
    env = {**production, "APICTL_CORS_ORIGINS": "*", "APICTL_CORS_ALLOW_CREDENTIALS": "true"}
    code, findings = check(env)
    assert code == 1
    assert "APICTL_CORS_ALLOW_CREDENTIALS" in only(findings, "config-invalid")["message"]


def server_connection_limit(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true), '0')::int"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_pool_beyond_the_servers_connections_is_an_error(
    check: Check, production: dict[str, str], database_url: str
) -> None:
    available = server_connection_limit(database_url)
    workers = available // 20 + 1  # 20 connections each (APICTL_DB_POOL_MAX default)
    code, findings = check(production, "--workers", str(workers))
    assert code == 1
    assert only(findings, "pool-size")["severity"] == "error"
    assert (
        f"= {workers * 20} connections; the server allows {available}"
        in (only(findings, "pool-size")["message"])
    )


def test_pool_near_the_servers_connections_is_a_warning(
    check: Check, production: dict[str, str], database_url: str
) -> None:
    available = server_connection_limit(database_url)
    env = {**production, "APICTL_DB_POOL_MIN": "1", "APICTL_DB_POOL_MAX": str(available - 1)}
    code, findings = check(env)
    assert code == 0
    assert only(findings, "pool-size")["severity"] == "warning"
    assert "1 left for anything else" in only(findings, "pool-size")["message"]


def test_unreachable_database_is_an_error_not_a_crash(
    check: Check, production: dict[str, str], free_port: int
) -> None:
    url = f"postgresql://app:{STRONG}@127.0.0.1:{free_port}/app"
    code, findings = check({**production, "DATABASE_URL": url})
    assert code == 1
    assert only(findings, "database-unreachable")["severity"] == "error"
    assert "pool-size" not in findings
    assert STRONG not in only(findings, "database-unreachable")["message"]


def test_pending_migrations_are_an_error_in_production(
    check: Check, production: dict[str, str], empty_database_url: str
) -> None:
    env = {**production, "DATABASE_URL": with_password(empty_database_url, STRONG)}
    code, findings = check(env)
    assert code == 1
    assert only(findings, "migrations-pending")["severity"] == "error"
    assert "6 migration(s) pending: 0001_users" in only(findings, "migrations-pending")["message"]


def test_drifted_migrations_are_an_error(
    check: Check, production: dict[str, str], tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(bundled_dir("migrations"), migrations)
    posts = migrations / "0003_posts.sql"
    posts.write_text(posts.read_text() + "\n-- edited after it was applied\n")
    code, findings = check({**production, "APICTL_MIGRATIONS_DIR": str(migrations)})
    assert code == 1
    assert only(findings, "migrations-drift")["severity"] == "error"
    assert "0003_posts" in only(findings, "migrations-drift")["message"]


def test_unreachable_redis_is_a_warning(
    check: Check, production: dict[str, str], free_port: int
) -> None:
    code, findings = check({**production, "REDIS_URL": f"redis://127.0.0.1:{free_port}/0"})
    assert code == 0
    assert only(findings, "redis-unreachable")["severity"] == "warning"


def test_findings_for_humans_worst_first(apictl: Apictl, production: dict[str, str]) -> None:
    env = {**production, "APICTL_LOG_LEVEL": "debug", "COLUMNS": "200"}
    env["DATABASE_URL"] = with_password(env["DATABASE_URL"], "postgres")
    result = apictl("check", "deploy", env=env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    error = next(i for i, line in enumerate(lines) if "database-password-weak" in line)
    warning = next(i for i, line in enumerate(lines) if "debug-logging" in line)
    assert error < warning
    assert "not ready: 1 error(s), 1 warning(s)" in result.stdout


@pytest.fixture
def behind_pgbouncer(
    production: dict[str, str], database_url: str, pgbouncer: PgBouncer
) -> dict[str, str]:
    """The production environment with DATABASE_URL through PgBouncer (transaction mode)."""
    direct = with_password(database_url, STRONG)
    return {
        **production,
        "DATABASE_URL": pgbouncer.url(direct),
        "APICTL_DB_POOLER": "transaction",
        "APICTL_DB_DIRECT_URL": direct,
    }


def test_pooler_mode_is_reported_with_pgbouncers_limits(
    check: Check, behind_pgbouncer: dict[str, str]
) -> None:
    code, findings = check(behind_pgbouncer)
    assert code == 0, findings
    assert "APICTL_DB_POOLER=transaction" in only(findings, "database-pooler")["message"]
    pool = only(findings, "pool-size")
    assert pool["severity"] == "info"
    assert f"PgBouncer accepts {MAX_CLIENT_CONN} (max_client_conn)" in pool["message"]
    assert f"opens {DEFAULT_POOL_SIZE} to PostgreSQL" in pool["message"]
    assert "requests queue in PgBouncer" in pool["message"]  # 20 clients on 4 servers


def test_pools_beyond_pgbouncers_max_client_conn_are_an_error(
    check: Check, behind_pgbouncer: dict[str, str]
) -> None:
    workers = MAX_CLIENT_CONN // 20 + 1  # 20 connections each (APICTL_DB_POOL_MAX default)
    code, findings = check(behind_pgbouncer, "--workers", str(workers))
    assert code == 1
    pool = only(findings, "pool-size")
    assert pool["severity"] == "error"
    assert f"= {workers * 20} client connections" in pool["message"]
    assert "refuses the connections beyond max_client_conn" in pool["message"]


def test_pooler_without_a_direct_url_is_an_error(
    check: Check, behind_pgbouncer: dict[str, str]
) -> None:
    env = {k: v for k, v in behind_pgbouncer.items() if k != "APICTL_DB_DIRECT_URL"}
    code, findings = check(env)
    assert code == 1
    direct = only(findings, "database-direct-url")
    assert direct["severity"] == "error"
    assert "APICTL_DB_DIRECT_URL is unset" in direct["message"]


def test_production_without_tracing_is_noted(check: Check, production: dict[str, str]) -> None:
    code, findings = check(production)
    assert code == 0
    assert only(findings, "tracing-off")["severity"] == "info"
    traced = {**production, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    _, findings = check(traced)
    assert "tracing-off" not in findings
    _, findings = check({**traced, "OTEL_SDK_DISABLED": "true"})
    assert "tracing-off" in findings


def test_stream_capacity_per_worker_is_noted(check: Check, production: dict[str, str]) -> None:
    code, findings = check(production)
    assert code == 0
    capacity = only(findings, "stream-capacity")
    assert capacity["severity"] == "info"
    assert f"open files {HARD_FILES:,} (the hard limit)" in capacity["message"]
    assert f"room for {STREAM_CAPACITY:,} live event streams per worker" in capacity["message"]
    _, findings = check({**production, "APICTL_MAX_STREAMS": "100"})
    assert only(findings, "stream-capacity")["severity"] == "info"
    assert only(findings, "stream-capacity")["message"].startswith("APICTL_MAX_STREAMS=100; ")


def test_max_streams_beyond_the_open_files_limit_is_a_warning(
    check: Check, production: dict[str, str]
) -> None:
    code, findings = check({**production, "APICTL_MAX_STREAMS": str(STREAM_CAPACITY + 1)})
    assert code == 0  # a warning: it serves, refusing the streams past the capacity with 503
    capacity = only(findings, "stream-capacity")
    assert capacity["severity"] == "warning"
    assert capacity["message"].startswith(f"APICTL_MAX_STREAMS={STREAM_CAPACITY + 1}, but ")
    assert f"room for {STREAM_CAPACITY:,} live event streams" in capacity["message"]
    for way in ("ulimit -n", "LimitNOFILE=", "--ulimit nofile=", "lower APICTL_MAX_STREAMS"):
        assert way in capacity["hint"]


def test_an_open_files_limit_too_low_for_any_stream_is_a_warning(
    production: dict[str, str],
) -> None:
    def lower() -> None:  # the hard limit a cramped deployment would have
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    result = subprocess.run(
        [APICTL, "check", "deploy"],
        env=production,
        preexec_fn=lower,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "stream-capacity" in result.stdout
    assert "1 warning(s), no errors" in result.stdout
