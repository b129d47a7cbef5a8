"""`apictl serve`: run the API under uvicorn (uvloop + httptools), draining on SIGTERM."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Annotated

import typer

from apictl.output import console, fail

if TYPE_CHECKING:
    from service.config import Settings


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


async def _pending(settings: Settings) -> list[str]:
    import asyncpg

    from service.process.migration_state import migration_ids, migrations_dir, pending_migrations

    conn = await asyncpg.connect(settings.database_url, timeout=settings.db_acquire_timeout)
    try:
        return await pending_migrations(conn, migration_ids(migrations_dir(settings)))
    finally:
        await conn.close()


def _migrate_first(settings: Settings, forced: bool) -> None:
    """Apply pending migrations (development or --migrate), or refuse to serve (production).

    The migrator runs as its own `apictl migrate` process, so yoyo and psycopg never load
    into the serving process (a third of its memory otherwise).
    """
    import asyncpg

    from service.config import mask_url

    try:
        pending = asyncio.run(_pending(settings))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        fail(
            f"database unreachable at {mask_url(str(settings.database_url))}: {exc}",
            hint="check DATABASE_URL and that PostgreSQL is running",
        )
    if not pending:
        return
    if settings.is_production and not forced:
        fail(
            f"{len(pending)} migration(s) pending: {', '.join(pending)}",
            hint="run `apictl migrate` first (or `apictl serve --migrate`)",
        )
    if subprocess.run([sys.executable, "-m", "apictl", "migrate"], check=False).returncode:
        fail("migrations failed; not serving", hint="see the migration error above")


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
) -> None:
    """Serve the API with uvicorn.

    Without DATABASE_URL / REDIS_URL (development) it starts the embedded PostgreSQL and Redis
    first. In development pending migrations are applied before serving; in production it
    refuses to start while any are pending, unless --migrate. SIGTERM stops accepting, drains
    in-flight requests for up to APICTL_SHUTDOWN_TIMEOUT seconds, then exits 0.
    """
    import uvicorn

    from apictl.session import resolve_servers
    from service.config import env_name, load_settings, mask_url
    from service.http.protocol import LimitedHttpToolsProtocol
    from service.process.logs import configure_logging

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(**overrides)
    if reload and settings.is_production:
        fail("--reload is for development", hint="unset it, or set APICTL_ENV=development")
    configure_logging(settings)
    _ensure_port_free(settings.host, settings.port)
    settings = resolve_servers(settings)
    # Workers, the reloader's children and the migrator read settings from the environment:
    # hand them the resolved servers and the command-line overrides that way.
    for field in ("database_url", "redis_url", "host", "port"):
        os.environ[env_name(field)] = str(getattr(settings, field))
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # workers count into shared files, so /metrics adds them up whichever one answers
        metrics_dir = tempfile.TemporaryDirectory(prefix="apictl-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    _migrate_first(settings, migrate)
    assert settings.database_url is not None
    assert settings.redis_url is not None
    console.print(
        f"apictl serving on [bold]http://{settings.host}:{settings.port}[/] "
        f"({settings.env}, {workers} worker(s))\n"
        f"  database {mask_url(settings.database_url)}\n  redis    {mask_url(settings.redis_url)}"
    )
    # uvicorn re-raises SIGTERM/SIGINT once it has drained; a graceful stop then exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(
        "service.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        reload=reload,
        reload_dirs=["service"] if reload else None,
        loop="uvloop",
        http=LimitedHttpToolsProtocol,  # httptools, with deadlines and caps on headers
        log_config=None,
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is judged by the app against APICTL_TRUSTED_PROXIES
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
    )
