"""`apictl migrate`: apply, inspect, roll back and create schema migrations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from apictl.errors import ExitCode
from apictl.output import console, fail, print_json, print_table, shown_path
from service.process.bundled import bundled_dir, is_source_checkout

if TYPE_CHECKING:  # the machinery itself is imported by the commands that use it (see migrator)
    from service.ops.migration_lint import Finding
    from service.ops.migration_locks import LockWait
    from service.ops.migrations import MigrationStatus, Migrator, PlannedStep, StepCallback

app = typer.Typer(
    help="Apply, inspect, roll back and create schema migrations (yoyo, SQL files).",
    invoke_without_command=True,
)

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and its SQL; change nothing.")
]
AllowDrift = Annotated[
    bool, typer.Option("--allow-drift", help="Apply even if applied migrations were edited.")
]


def migrator() -> Migrator:
    """A Migrator for the configured (or embedded) database.

    Imported here, not at the top: yoyo and psycopg would otherwise load with every command,
    `apictl serve` (the serving process) included.
    """
    from apictl.session import require_direct_url, resolve_servers
    from service.config import load_settings
    from service.ops.migrations import Migrator

    settings = load_settings()
    require_direct_url(settings)  # before starting embedded servers for nothing
    return Migrator(resolve_servers(settings))


@contextmanager
def step_progress(verb: str) -> Iterator[StepCallback]:
    """A progress bar fed by Migrator.up/down's step callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(verb, total=None)

        def on_step(migration_id: str, index: int, total: int) -> None:
            progress.update(
                task, description=f"{verb} {migration_id}", completed=index, total=total
            )

        yield on_step


def _waiting() -> None:
    console.print("[yellow]another migrator is running; waiting for its lock...[/]")


def _retrying(wait: LockWait) -> None:
    console.print(
        f"[yellow]{escape(str(wait))}; attempt {wait.attempt + 1} of {wait.attempts}"
        f" in {wait.retry_in:g} s...[/]"
    )


def _print_plan(title: str, steps: list[PlannedStep]) -> None:
    if not steps:
        console.print(f"{title}: nothing to do")
        return
    from rich.syntax import Syntax  # pygments: only for a dry run

    console.print(f"{title} ({len(steps)}):")
    for step in steps:
        console.rule(step.id)
        console.print(Syntax(step.sql.strip(), "sql", theme="ansi_dark"))


@app.callback()
def default(ctx: typer.Context, dry_run: DryRun = False, allow_drift: AllowDrift = False) -> None:
    """Apply pending migrations (same as `apictl migrate up`); safe when replicas run it at once.

    Safe when several replicas run it at once: a PostgreSQL advisory lock serialises them and
    is released even if a migrator is killed.
    """
    if ctx.invoked_subcommand is None:
        up(dry_run=dry_run, allow_drift=allow_drift)


@app.command()
def up(dry_run: DryRun = False, allow_drift: AllowDrift = False) -> None:
    """Apply every pending migration, each in its own transaction, under a PostgreSQL advisory
    lock: safe when replicas run it at once.

    Refuses to run over drift (an applied migration edited or deleted since) unless
    --allow-drift. A failing migration is rolled back whole and the command exits 1.
    A statement waits at most APICTL_MIGRATE_LOCK_TIMEOUT for a lock, so the service's queries
    queue behind it no longer than that; the migration is then tried again, 4 times in all,
    before the command exits 1 naming the session that holds the lock.
    """
    m = migrator()
    if dry_run:
        _print_plan("would apply", m.plan_up())
        return
    with step_progress("applying") as on_step:
        applied = m.up(
            allow_drift=allow_drift, on_step=on_step, on_wait=_waiting, on_retry=_retrying
        )
    if applied:
        console.print(f"[green]applied {len(applied)} migration(s):[/] {', '.join(applied)}")
    else:
        console.print("database is up to date")


@app.command()
def down(
    steps: Annotated[int, typer.Option(min=1, help="How many migrations to roll back.")] = 1,
    dry_run: DryRun = False,
) -> None:
    """Roll back the last N applied migrations (default 1), newest first; a lock held by
    another session is waited for as `up` does."""
    m = migrator()
    if dry_run:
        _print_plan("would roll back", m.plan_down(steps))
        return
    with step_progress("rolling back") as on_step:
        rolled = m.down(steps, on_step=on_step, on_wait=_waiting, on_retry=_retrying)
    console.print(f"[green]rolled back {len(rolled)} migration(s):[/] {', '.join(rolled)}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 0 up to date, 1 pending, 3 drift (for CI).")
    ] = False,
) -> None:
    """Every migration: applied (when), pending, drift (file changed since) or missing on disk;
    --check exits 0 up to date, 1 pending, 3 drift (for CI and init containers)."""
    statuses = migrator().status()
    if as_json:
        print_json([{"id": s.id, "state": s.state, "applied_at": s.applied_at} for s in statuses])
    else:
        print_table("migrations", ["id", "state", "applied at"], [_row(s) for s in statuses])
    if check:
        states = {s.state for s in statuses}
        if states & {"drift", "missing"}:
            raise typer.Exit(ExitCode.DRIFT)
        if "pending" in states:
            raise typer.Exit(ExitCode.PENDING)


_STATE_STYLE = {"applied": "green", "pending": "yellow", "drift": "bold red", "missing": "red"}


def _row(s: MigrationStatus) -> tuple[str, str, str]:
    applied = s.applied_at.strftime("%Y-%m-%d %H:%M:%S UTC") if s.applied_at else ""
    return s.id, f"[{_STATE_STYLE[s.state]}]{s.state}[/]", applied


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="What it does, in snake_case: add_post_tags")],
) -> None:
    """Write a new migration pair (NNNN_NAME.sql and .rollback.sql) from templates/."""
    if not _NAME.match(name):
        fail(
            f"invalid migration name {name!r}",
            hint="use snake_case: letters, digits, _",
            code=ExitCode.USAGE,
        )
    from apictl.templating import migration_files, next_migration, write_files
    from service.config import load_settings

    settings = load_settings()
    if settings.migrations_dir is None and not is_source_checkout():
        fail(
            "the migrations of an installed apictl are not yours to edit",
            hint="set APICTL_MIGRATIONS_DIR to your project's migrations folder",
        )
    directory = settings.migrations_dir or bundled_dir("migrations")
    write_files(migration_files(directory, *next_migration(directory, name)))


@app.command()
def lint(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            exists=True,
            help="Migration files or folders (default: the configured migrations folder)",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Flag risky PostgreSQL migration SQL (file:line, rule, hint) before it reaches a database;
    exit 1 on findings (CI runs it).

    \b
    index-not-concurrent          CREATE INDEX without CONCURRENTLY on an existing table
    not-null-without-default      ADD COLUMN ... NOT NULL without a DEFAULT
    add-column-rewrite            ADD COLUMN with a volatile DEFAULT, serial, IDENTITY or STORED
    column-type-change            ALTER COLUMN ... TYPE, except to text or unbounded varchar
    set-not-null-without-check    SET NOT NULL without a VALIDATE CONSTRAINT before it
    constraint-without-not-valid  ADD FOREIGN KEY or CHECK without NOT VALID
    validate-in-same-transaction  VALIDATE CONSTRAINT in the transaction that added it
    constraint-builds-index       ADD UNIQUE or PRIMARY KEY without USING INDEX
    vacuum-full                   VACUUM FULL
    cluster                       CLUSTER
    reindex-not-concurrent        REINDEX without CONCURRENTLY
    lock-table                    LOCK TABLE in a mode that blocks writes
    enum-value-in-transaction     ALTER TYPE ... ADD VALUE without `-- transactional: false`
    concurrently-in-transaction   CONCURRENTLY without `-- transactional: false`
    missing-rollback              no NNNN_name.rollback.sql beside the migration

    Tables created by the same migration are exempt: they are empty.
    """
    from service.config import load_settings
    from service.ops.migration_lint import lint_migration, sql_files
    from service.process.migration_state import migrations_dir

    paths = sql_files(files or [migrations_dir(load_settings())])
    findings = [finding for path in paths for finding in lint_migration(path)]
    if as_json:
        print_json([{**asdict(f), "path": shown_path(f.path)} for f in findings])
    else:
        _print_findings(findings, checked=len(paths))
    if findings:
        raise typer.Exit(ExitCode.FAILURE)


def _print_findings(findings: list[Finding], checked: int) -> None:
    for f in findings:
        console.print(
            f"{escape(shown_path(f.path))}:{f.line}: [bold red]{f.rule}[/] {escape(f.message)}\n"
            f"  [dim]hint:[/] {escape(f.hint)}",
            soft_wrap=True,
        )
    if findings:
        console.print(f"[red]{len(findings)} problem(s)[/] in {checked} migration file(s)")
    else:
        console.print(f"[green]{checked} migration file(s) checked: no problems[/]")
