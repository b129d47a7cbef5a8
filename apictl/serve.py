"""`apictl serve`: the serving process's lifecycle, in order, one step per function.

settings -> embedded servers -> migrations -> open files -> announce -> serving (service.serving:
signals, workers, uvicorn), then exit 0 once SIGTERM has drained. What the steps resolved
reaches the worker (and migrator) processes in one hand-over (service.process.handover).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from apictl.errors import ExitCode
from apictl.output import console, fail

if TYPE_CHECKING:
    from service.config import Settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: APICTL_HOST)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: APICTL_PORT)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one per core)")] = 1,
    reload: Annotated[
        bool, typer.Option(help="Restart on code changes (development only)")
    ] = False,
    migrate: Annotated[
        bool, typer.Option("--migrate", help="Apply pending migrations first, even in production")
    ] = False,
    max_requests: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Replace each worker after about this many requests, failing none (needs"
            " --workers 2 or more; default: APICTL_MAX_REQUESTS, else never)",
        ),
    ] = None,
    max_requests_jitter: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Up to this many more requests, at random per worker, so workers are not"
            " replaced together (default: APICTL_MAX_REQUESTS_JITTER, else 0)",
        ),
    ] = None,
) -> None:
    """Serve the API with uvicorn; SIGTERM drains in-flight requests and exits 0.

    Without DATABASE_URL / REDIS_URL (development) it starts the embedded PostgreSQL and Redis
    first. In development pending migrations are applied before serving; in production it
    refuses to start while any are pending, unless --migrate. It raises the soft open-files
    limit to the hard one (each live event stream holds a socket) and says how many streams
    each worker can hold.

    SIGTERM drains: /ready answers 503 at once and every response closes its connection;
    serving goes on for APICTL_SHUTDOWN_DELAY seconds (5 in production, so load balancers
    take the instance out first), then it stops accepting, event streams end, in-flight
    requests and webhook deliveries get up to APICTL_SHUTDOWN_TIMEOUT seconds, and it exits 0.
    """
    from service import serving

    overrides: dict[str, object] = {"host": host, "port": port, "max_requests": max_requests}
    overrides["max_requests_jitter"] = max_requests_jitter
    if max_requests_jitter and max_requests is None:
        fail("--max-requests-jitter needs --max-requests", code=ExitCode.USAGE)
    settings = _settings(overrides, reload)
    if settings.max_requests is not None and workers < 2:
        fail(
            "--max-requests needs --workers 2 or more",
            hint="a single worker has no other to serve while it is replaced",
            code=ExitCode.USAGE,
        )
    own_servers = bool(settings.database_url and settings.redis_url)
    settings = _servers(settings)
    _migrations(settings, forced=migrate)
    _announce(settings, workers, *_raise_open_files())
    if own_servers and not reload:
        serving.exec_serving(workers)  # this process becomes the server, without the CLI
    serving.run(workers, reload)  # embedded servers: stay, to stop them on the way out


def _settings(options: dict[str, object], reload: bool) -> Settings:
    """Settings with the command line's options (those given), which the workers see too;
    logging configured by them."""
    from service.config import env_name, load_settings
    from service.process.logs import configure_logging

    overrides = {k: v for k, v in options.items() if v is not None}
    settings = load_settings(**overrides)
    for field in ("max_requests", "max_requests_jitter"):
        if field in overrides:  # the workers read their settings from the environment
            os.environ[env_name(field)] = str(overrides[field])
    if reload and settings.is_production:
        fail("--reload is for development", hint="unset it, or set APICTL_ENV=development")
    configure_logging(settings)
    return settings


def _servers(settings: Settings) -> Settings:
    """The port is free and both servers are resolved (embedded ones started); every process
    started from now on (migrator, workers) is handed what was resolved."""
    from apictl.session import require_direct_url, resolve_servers
    from service.process import handover

    require_direct_url(settings)  # the event relay's lock and LISTEN
    _ensure_port_free(settings.host, settings.port)
    settings = resolve_servers(settings)
    handover.write(settings)
    return settings


def _ensure_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="stop the other process or choose another port with --port or APICTL_PORT",
            )


def _migrations(settings: Settings, forced: bool) -> None:
    """Apply pending migrations (development or --migrate), or refuse to serve (production).

    The migrator runs as its own `apictl migrate` process, so yoyo and psycopg never load
    into the serving process (a third of its memory otherwise).
    """
    pending = _pending(settings)
    if not pending:
        return
    if settings.is_production and not forced:
        fail(
            f"{len(pending)} migration(s) pending: {', '.join(pending)}",
            hint="run `apictl migrate` first (or `apictl serve --migrate`)",
        )
    if subprocess.run([sys.executable, "-m", "apictl", "migrate"], check=False).returncode:
        fail("migrations failed; not serving", hint="see the migration error above")


def _pending(settings: Settings) -> list[str]:
    """The migrations not applied yet; exit 1 if the database does not answer."""
    import asyncpg

    from service.config import mask_url
    from service.process.migration_state import migration_ids, migrations_dir, pending_migrations

    url = settings.direct_url  # a plain connection's statement cache would not survive a pooler
    assert url is not None, "checked by _servers"

    async def pending() -> list[str]:
        conn = await asyncpg.connect(url, timeout=settings.db_acquire_timeout)
        try:
            return await pending_migrations(conn, migration_ids(migrations_dir(settings)))
        finally:
            await conn.close()

    try:
        return asyncio.run(pending())
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        fail(
            f"database unreachable at {mask_url(url)}: {exc}",
            hint="check DATABASE_URL and that PostgreSQL is running",
        )


def _raise_open_files() -> tuple[int, int]:
    """The soft open-files limit before and after raising it to the hard one, here, so that the
    workers inherit it: each live event stream holds a socket."""
    from service.process.open_files import current_limit, raise_limit

    before = current_limit()
    return before, raise_limit()


def _announce(settings: Settings, workers: int, files_before: int, files: int) -> None:
    from service.config import mask_url

    assert settings.database_url is not None
    assert settings.redis_url is not None
    console.print(
        f"apictl serving on [bold]http://{settings.host}:{settings.port}[/] "
        f"({settings.env}, {workers} worker(s))\n"
        f"  database {mask_url(settings.database_url)}\n  redis    {mask_url(settings.redis_url)}\n"
        f"  streams  {_streams(settings, files_before, files)}"
    )


def _streams(settings: Settings, files_before: int, files: int) -> str:
    """What the open-files limit leaves each worker for live event streams."""
    from service.process.open_files import reserved_files, stream_capacity, stream_limit

    raised = f"raised from {files_before:,} to " if files > files_before else ""
    limit = f"open files {raised}{files:,}"
    capacity = stream_capacity(settings, files)
    if capacity == 0:
        return (
            f"{limit}: [yellow]no live streams[/] (each worker needs"
            f" {reserved_files(settings):,} for its pools and requests); raise `ulimit -n`"
        )
    allowed = stream_limit(settings)
    if allowed < capacity:
        return f"{limit}: up to {allowed:,} live streams per worker (APICTL_MAX_STREAMS)"
    return f"{limit}: up to {capacity:,} live streams per worker"
