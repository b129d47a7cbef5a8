"""The `apictl` command: one Typer app, one sub-app per command group, errors mapped here.

Exit codes (see apictl.errors): 0 success; 1 failure (unhealthy, not found, conflict, bad
config); 2 usage error; 3 migration drift (`migrate status --check`).
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from apictl import (
    __version__,
    check,
    dbshell,
    events,
    introspect,
    migrate,
    scaffold,
    token,
    user,
    webhooks,
)
from apictl.errors import explain
from apictl.output import print_error
from apictl.serve import serve

app = typer.Typer(
    name="apictl",
    help="Run a production HTTP API: configure, migrate, administer, serve, probe, scaffold.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(serve)
app.command()(introspect.routes)
app.command()(introspect.openapi)
app.add_typer(migrate.app, name="migrate")
app.add_typer(user.app, name="user")
app.add_typer(token.app, name="token")
app.add_typer(check.app, name="check")
app.add_typer(scaffold.app, name="scaffold")
app.add_typer(dbshell.app, name="db")
app.add_typer(events.app, name="events")
app.add_typer(webhooks.app, name="webhooks")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"apictl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Run a production HTTP API: configure, migrate, administer, serve, probe, scaffold.

    Settings come from the environment and .env (see `apictl check config`). Without
    DATABASE_URL / REDIS_URL, development uses embedded PostgreSQL and Redis in APICTL_DATA_DIR.
    """


def main() -> None:
    """Console-script entry point: run the app, turn every error into one line and an exit code
    (the table is apictl.errors)."""
    try:
        app()
    except Exception as exc:
        failure = explain(exc)
        if failure.unexpected and "--debug" in sys.argv:
            traceback.print_exc()
        else:
            print_error(failure.message, hint=failure.outcome.hint)
        sys.exit(failure.outcome.code)
