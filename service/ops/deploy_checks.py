"""Production-readiness findings for a configuration, like Django's `manage.py check --deploy`.

Settings are judged on their own first; then, when DATABASE_URL is set, the database is asked
for its connection limit and migration state (through APICTL_DB_DIRECT_URL when set), and Redis
is pinged. With APICTL_DB_POOLER=transaction, PgBouncer's admin console (`SHOW CONFIG`) gives the
limits the pools are judged against. A server that cannot be reached is a finding, never an
exception.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import redis

from service.config import DIRECT_URL_HINT, NO_DIRECT_URL, Settings, env_name, mask_url
from service.errors import MigrationError
from service.ops.migrations import Migrator
from service.process.open_files import hard_limit, reserved_files, stream_capacity
from service.tracing.environment import configured

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")  # worst first
WELL_KNOWN_PASSWORDS = frozenset(
    {"postgres", "password", "changeme", "secret", "admin", "root", "apictl", "123456", "test"}
)
MIN_PASSWORD_LENGTH = 12
POOL_HEADROOM = 0.8  # above this share of the server's connections, little is left for others
PROBE_TIMEOUT = 2.0
STREAM_LIMIT_HINT = (
    "raise the open-files limit (`ulimit -n`; LimitNOFILE= in a systemd unit; `--ulimit nofile=`"
    " for a container)"
)


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    severity: Severity
    message: str
    hint: str


def config_findings(problems: list[str]) -> list[Finding]:
    """Invalid settings, as findings: nothing else can be judged until they are fixed."""
    hint = "fix the variable (see `apictl check config`); the other checks need valid settings"
    return [Finding("config-invalid", "error", problem, hint) for problem in problems]


def deploy_findings(settings: Settings, workers: int) -> list[Finding]:
    """Every finding for `settings` served by `workers` processes in all, worst first."""
    findings = [
        *_environment(settings),
        *_cors(settings),
        *_logging(settings),
        *_docs(settings),
        *_api_limit(settings),
        *_passwords(settings),
        *_tracing(settings),
        _streams(settings),
    ]
    if settings.database_url is not None:
        findings += _database(settings, settings.database_url, workers)
    if settings.redis_url is not None:
        findings += _redis(settings.redis_url)
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


def _environment(settings: Settings) -> Iterator[Finding]:
    if settings.is_production:
        return
    yield Finding(
        "env-development",
        "warning",
        "APICTL_ENV is development: API docs are served, logs are for humans and embedded "
        "servers are allowed",
        "set APICTL_ENV=production where the service is deployed",
    )
    for name, url, server in (
        ("DATABASE_URL", settings.database_url, "PostgreSQL"),
        ("REDIS_URL", settings.redis_url, "Redis"),
    ):
        if url is None:
            yield Finding(
                f"embedded-{server.lower()}",
                "warning",
                f"{name} is unset: the embedded {server} in {settings.data_dir}/ serves, which "
                "is for development only",
                f"set {name} to your {server} server (production refuses to start without it)",
            )


def _cors(settings: Settings) -> Iterator[Finding]:
    if "*" in settings.cors_origins:
        yield Finding(
            "cors-wildcard",
            "warning",
            "APICTL_CORS_ORIGINS='*': any web site may call the API from its visitors' browsers",
            "list the origins of your own front ends instead",
        )


def _logging(settings: Settings) -> Iterator[Finding]:
    if not settings.is_production:
        return
    if settings.log_level == "debug":
        yield Finding(
            "debug-logging",
            "warning",
            "APICTL_LOG_LEVEL=debug in production: verbose logs cost throughput and disk",
            "use APICTL_LOG_LEVEL=info (the default)",
        )
    if not settings.json_logs:
        yield Finding(
            "console-logs",
            "warning",
            "APICTL_LOG_FORMAT=console in production: log collectors cannot parse the lines",
            "unset APICTL_LOG_FORMAT (production defaults to json) or set it to json",
        )


def _docs(settings: Settings) -> Iterator[Finding]:
    if settings.is_production and settings.docs_enabled:
        yield Finding(
            "docs-public",
            "info",
            "APICTL_DOCS=true in production: /docs, /redoc and /openapi.json describe every"
            " route to anyone",
            "unset APICTL_DOCS unless the API is meant to be public (production defaults to off)",
        )


def _api_limit(settings: Settings) -> Iterator[Finding]:
    if settings.is_production and settings.api_rate_limit is None:
        yield Finding(
            "api-rate-limit-off",
            "warning",
            "APICTL_API_RATE_LIMIT=off in production: one caller may use up the service",
            "set a limit per caller, e.g. APICTL_API_RATE_LIMIT=1200/minute (the default)",
        )


def _tracing(settings: Settings) -> Iterator[Finding]:
    if settings.is_production and not configured(os.environ):
        yield Finding(
            "tracing-off",
            "info",
            "no OTEL_EXPORTER_OTLP_ENDPOINT in production: requests are not traced, a slow one"
            " cannot be followed through its SQL and Redis calls",
            "set OTEL_EXPORTER_OTLP_ENDPOINT to your OpenTelemetry collector (OTLP/HTTP, e.g."
            " http://otel-collector:4318) and OTEL_TRACES_SAMPLER_ARG;"
            " see docs/operations/tracing.md",
        )


def _streams(settings: Settings) -> Finding:
    """Live event streams per worker against the open-files hard limit (`apictl serve` raises
    the soft limit to it), as this process sees it: run the check where the service runs."""
    files = hard_limit()
    capacity = stream_capacity(settings, files)
    room = (
        f"open files {files:,} (the hard limit) leave room for {capacity:,} live event streams"
        f" per worker ({reserved_files(settings):,} kept for its pools and requests)"
    )
    wanted = settings.max_streams
    if wanted is not None and wanted > capacity:
        return Finding(
            "stream-capacity",
            "warning",
            f"APICTL_MAX_STREAMS={wanted}, but {room}: a stream past that gets 503",
            f"{STREAM_LIMIT_HINT} or lower APICTL_MAX_STREAMS to {capacity:,}",
        )
    if capacity == 0:
        return Finding(
            "stream-capacity", "warning", f"{room}: every stream gets 503", STREAM_LIMIT_HINT
        )
    limit = "" if wanted is None else f"APICTL_MAX_STREAMS={wanted}; "
    return Finding(
        "stream-capacity",
        "info",
        limit + room,
        "past the limit a new stream gets 503; see docs/operations/deploying.md",
    )


def _passwords(settings: Settings) -> Iterator[Finding]:
    if not settings.is_production:
        return  # the embedded servers need none
    checks: tuple[tuple[str, str, Severity], ...] = (
        ("database_url", "database", "warning"),
        ("redis_url", "redis", "info"),  # often unauthenticated on a private network
    )
    for field, server, missing in checks:
        url = getattr(settings, field)
        name = env_name(field)
        parts = urlsplit(url)
        if parts.scheme == "unix":  # a socket file: its permissions guard it
            continue
        password = unquote(parts.password or "")
        if not password:
            yield Finding(
                f"{server}-password-missing",
                missing,
                f"{name} has no password: the server must trust every client that reaches it",
                "require a long random password (or client certificates) and put it in the URL",
            )
        elif password.lower() in WELL_KNOWN_PASSWORDS or len(password) < MIN_PASSWORD_LENGTH:
            yield Finding(
                f"{server}-password-weak",
                "error",
                f"{name} has a weak password (well known, or under {MIN_PASSWORD_LENGTH} "
                "characters)",
                "use a long random one, e.g. `openssl rand -base64 24`",
            )


def _database(settings: Settings, url: str, workers: int) -> list[Finding]:
    server = settings.direct_url or url  # PostgreSQL itself when known, else through the pooler
    try:
        with psycopg.connect(
            server, autocommit=True, connect_timeout=max(2, math.ceil(settings.db_acquire_timeout))
        ) as conn:
            row = conn.execute(
                "SELECT current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int"
                # PostgreSQL 16+ also reserves slots for pg_use_reserved_connections roles
                " + coalesce(current_setting('reserved_connections', true), '0')::int"
            ).fetchone()
    except psycopg.Error as exc:
        return [
            Finding(
                "database-unreachable",
                "error",
                f"database unreachable at {mask_url(server)}: {_reason(exc)}",
                "check DATABASE_URL and that PostgreSQL runs; the database checks were skipped",
            )
        ]
    assert row is not None
    if settings.db_pooler == "none":
        return [_pool(settings, workers, *row), *_migrations(settings)]
    if settings.direct_url is None:
        return [Finding("database-direct-url", "error", NO_DIRECT_URL, DIRECT_URL_HINT)]
    return [*_pgbouncer(settings, url, workers, *row), *_migrations(settings)]


def _reason(exc: psycopg.Error) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def _pool(settings: Settings, workers: int, max_connections: int, reserved: int) -> Finding:
    available = max_connections - reserved
    needed = settings.db_pool_max * workers
    sizing = (
        f"{workers} process(es) x APICTL_DB_POOL_MAX={settings.db_pool_max} = {needed} "
        f"connections; the server allows {available} (max_connections {max_connections} - "
        f"{reserved} reserved)"
    )
    hint = "lower APICTL_DB_POOL_MAX or the process count, add PgBouncer, or raise max_connections"
    if needed > available:
        return Finding("pool-size", "error", f"{sizing}: requests will fail to connect", hint)
    if needed > POOL_HEADROOM * available:
        left = available - needed
        return Finding("pool-size", "warning", f"{sizing}: {left} left for anything else", hint)
    return Finding("pool-size", "info", sizing, "--workers counts every process, on every pod")


def _pgbouncer_config(url: str) -> dict[str, str]:
    """PgBouncer's settings from its admin console (the `pgbouncer` database, simple queries
    only: hence the client-side cursor)."""
    console = urlunsplit(urlsplit(url)._replace(path="/pgbouncer"))
    with psycopg.connect(
        console, autocommit=True, connect_timeout=2, cursor_factory=psycopg.ClientCursor
    ) as conn:
        return {str(key): str(value) for key, value, *_ in conn.execute("SHOW CONFIG")}


def _pgbouncer(
    settings: Settings, url: str, workers: int, max_connections: int, reserved: int
) -> list[Finding]:
    """The pooler mode, and the pools against PgBouncer's limits and PostgreSQL's."""
    mode = Finding(
        "database-pooler",
        "info",
        f"APICTL_DB_POOLER=transaction: requests reach PostgreSQL through PgBouncer at "
        f"{mask_url(url)}; migrations and the event relay connect to APICTL_DB_DIRECT_URL",
        "PgBouncer must pool in transaction mode; see docs/operations/pgbouncer.md",
    )
    try:
        config = _pgbouncer_config(url)
    except psycopg.Error as exc:
        return [
            mode,
            Finding(
                "pgbouncer-limits-unknown",
                "warning",
                f"cannot read PgBouncer's limits (SHOW CONFIG): {_reason(exc)}",
                "add the DATABASE_URL user to PgBouncer's stats_users, or check by hand that"
                " processes x APICTL_DB_POOL_MAX <= max_client_conn",
            ),
        ]
    clients, max_clients = settings.db_pool_max * workers, int(config["max_client_conn"])
    servers = int(config["default_pool_size"]) + int(config["reserve_pool_size"])
    sizing = (
        f"{workers} process(es) x APICTL_DB_POOL_MAX={settings.db_pool_max} = {clients} client"
        f" connections; PgBouncer accepts {max_clients} (max_client_conn) and opens {servers}"
        " to PostgreSQL (default_pool_size + reserve_pool_size)"
    )
    if clients > max_clients:
        pool = Finding(
            "pool-size",
            "error",
            f"{sizing}: PgBouncer refuses the connections beyond max_client_conn",
            "lower APICTL_DB_POOL_MAX or the process count, or raise PgBouncer's max_client_conn",
        )
    elif clients > servers:
        pool = Finding(
            "pool-size",
            "info",
            f"{sizing}: past {servers} transactions at once, requests queue in PgBouncer (its"
            " query_wait_timeout), not for APICTL_DB_ACQUIRE_TIMEOUT",
            "raise default_pool_size for more concurrency, within PostgreSQL's max_connections",
        )
    else:
        pool = Finding("pool-size", "info", sizing, "--workers counts every process, on every pod")
    direct = servers + workers  # each process's relay holds one direct connection
    if direct <= max_connections - reserved:
        return [mode, pool]
    return [
        mode,
        pool,
        Finding(
            "pgbouncer-pool-size",
            "error",
            f"PgBouncer's {servers} server connections + {workers} relay connection(s) exceed"
            f" PostgreSQL's {max_connections - reserved} (max_connections - reserved)",
            "lower PgBouncer's default_pool_size or raise PostgreSQL's max_connections",
        ),
    ]


def _migrations(settings: Settings) -> Iterator[Finding]:
    try:
        statuses = Migrator(settings).status()
    except MigrationError as exc:
        yield Finding("migrations-unknown", "error", str(exc), "see `apictl migrate status`")
        return
    pending = [s.id for s in statuses if s.state == "pending"]
    changed = [s.id for s in statuses if s.state in ("drift", "missing")]
    if pending:
        yield Finding(
            "migrations-pending",
            "error" if settings.is_production else "warning",
            f"{len(pending)} migration(s) pending: {', '.join(pending)}",
            "run `apictl migrate` before the new version serves (production refuses to start)",
        )
    if changed:
        yield Finding(
            "migrations-drift",
            "error",
            f"applied migrations edited or missing on disk since: {', '.join(changed)}",
            "restore them as they were applied; see `apictl migrate status`",
        )


def _redis(url: str) -> Iterator[Finding]:
    client = redis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        yield Finding(
            "redis-unreachable",
            "warning",
            f"Redis unreachable at {mask_url(url)}: {exc}",
            "the API serves without it, but login limits are per process and events stop",
        )
    finally:
        client.close()
