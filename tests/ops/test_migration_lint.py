"""`apictl migrate lint`: risky migration SQL flagged with file:line, rule and hint; exit 1."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from service.process.bundled import bundled_dir

Apictl = Callable[..., CompletedProcess[str]]
HEADER = "-- a migration\n-- depends: 0005_idempotency_keys\n\n"
NOT_STATEMENTS = (  # the risky words, in comments, a string and a function body
    "-- CREATE INDEX a ON posts (b);\n/* ALTER TYPE mood ADD VALUE 'x'; */\n"
    "INSERT INTO notes VALUES ('CREATE INDEX a ON posts (b); ALTER TYPE m ADD VALUE');\n"
    "DO $$ BEGIN EXECUTE 'ALTER TABLE posts ADD COLUMN c int NOT NULL'; END $$;\n"
)
NON_TRANSACTIONAL = "-- a migration\n-- transactional: false\n-- depends: 0005_idempotency_keys\n\n"


def write(directory: Path, name: str, sql: str, *, rollback: str | None = "SELECT 1;\n") -> Path:
    path = directory / f"{name}.sql"
    path.write_text(sql)
    if rollback is not None:
        (directory / f"{name}.rollback.sql").write_text(rollback)
    return path


def lint(apictl: Apictl, *paths: Path) -> tuple[int, list[dict[str, Any]]]:
    result = apictl("migrate", "lint", "--json", *map(str, paths))
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_shipped_migrations_lint_clean(apictl: Apictl) -> None:
    result = apictl("migrate", "lint")
    assert result.returncode == 0, result.stdout
    assert "10 migration file(s) checked: no problems" in result.stdout


@pytest.mark.parametrize(
    ("sql", "rule", "line"),
    [
        (HEADER + "CREATE INDEX posts_title ON posts (title);\n", "index-not-concurrent", 4),
        (HEADER + "CREATE UNIQUE INDEX ON public.posts (lower(title));", "index-not-concurrent", 4),
        (
            HEADER + "ALTER TABLE posts\n  ADD COLUMN views int DEFAULT 0 NOT NULL,\n"
            "  ADD COLUMN slug text NOT NULL CHECK (slug <> '');\n",
            "not-null-without-default",
            4,
        ),
        (HEADER + "ALTER TYPE mood ADD VALUE 'meh';\n", "enum-value-in-transaction", 4),
        (
            HEADER + "CREATE INDEX CONCURRENTLY posts_title ON posts (title);\n",
            "concurrently-in-transaction",
            4,
        ),
        (HEADER + "\n\nDROP INDEX CONCURRENTLY posts_title;\n", "concurrently-in-transaction", 6),
    ],
    ids=["index", "unnamed-index", "not-null", "enum", "create-concurrently", "drop-concurrently"],
)
def test_each_risk_is_flagged_where_it_is(
    apictl: Apictl, tmp_path: Path, sql: str, rule: str, line: int
) -> None:
    path = write(tmp_path, "0006_risky", sql)
    code, findings = lint(apictl, path)
    assert code == 1
    assert [(f["rule"], f["line"]) for f in findings] == [(rule, line)]
    assert findings[0]["path"] == "0006_risky.sql"  # relative to the working directory
    assert findings[0]["message"]
    assert findings[0]["hint"]


@pytest.mark.parametrize(
    "sql",
    [
        HEADER + NOT_STATEMENTS,
        # tables created by this very migration are empty: no lock worth avoiding
        HEADER + "CREATE TABLE IF NOT EXISTS tags (id int);\n"
        "CREATE INDEX tags_id ON tags (id);\nALTER TABLE tags ADD COLUMN name text NOT NULL;\n",
        # what the hints advise
        NON_TRANSACTIONAL + "CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_t ON posts (title);\n"
        "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh';\n",
        HEADER + "ALTER TABLE posts ADD COLUMN views int NOT NULL DEFAULT 0,\n"
        "  ADD COLUMN note text CHECK (note IS NOT NULL),\n"
        "  ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY NOT NULL,\n"
        "  ADD CONSTRAINT views_positive CHECK (views >= 0);\n",
    ],
    ids=["not-statements", "new-tables", "non-transactional", "filled-columns"],
)
def test_safe_migrations_are_not_flagged(apictl: Apictl, tmp_path: Path, sql: str) -> None:
    assert lint(apictl, write(tmp_path, "0006_safe", sql)) == (0, [])


def test_missing_rollback_is_flagged(apictl: Apictl, tmp_path: Path) -> None:
    path = write(tmp_path, "0006_one_way", HEADER + "SELECT 1;\n", rollback=None)
    code, findings = lint(apictl, path)
    assert code == 1
    assert [(f["rule"], f["line"]) for f in findings] == [("missing-rollback", 1)]
    assert "0006_one_way.rollback.sql" in findings[0]["message"]


def test_a_rollback_runs_under_its_migrations_directive(apictl: Apictl, tmp_path: Path) -> None:
    undo = "DROP INDEX CONCURRENTLY IF EXISTS posts_t;\n"
    write(tmp_path, "0006_index", NON_TRANSACTIONAL + "SELECT 1;\n", rollback=undo)
    write(tmp_path, "0006_index", HEADER + "SELECT 1;\n", rollback=undo)
    code, findings = lint(apictl, tmp_path)
    assert code == 1
    assert [(Path(f["path"]).name, f["rule"]) for f in findings] == [
        ("0006_index.rollback.sql", "concurrently-in-transaction")
    ]


def test_without_files_the_configured_folder_is_linted_for_humans(
    apictl: Apictl, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"  # the test runs in tmp_path
    shutil.copytree(bundled_dir("migrations"), migrations)
    write(migrations, "0006_index", HEADER + "CREATE INDEX posts_t ON posts (title);\n")
    env = {**os.environ, "APICTL_MIGRATIONS_DIR": str(migrations)}
    result = apictl("migrate", "lint", env=env)
    assert result.returncode == 1
    assert "migrations/0006_index.sql:4: index-not-concurrent" in result.stdout
    assert "hint: use CREATE INDEX CONCURRENTLY" in result.stdout
    assert "1 problem(s) in 12 migration file(s)" in result.stdout


def test_a_missing_file_is_a_usage_error(apictl: Apictl, tmp_path: Path) -> None:
    result = apictl(
        "migrate", "lint", str(tmp_path / "0006_nothing.sql"), env={**os.environ, "COLUMNS": "400"}
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_what_lint_flags_is_what_postgresql_refuses(
    apictl: Apictl, tmp_path: Path, empty_database_url: str, redis_url: str
) -> None:
    """CONCURRENTLY in a transactional migration fails at run time; as the hint says, it
    applies once marked `-- transactional: false`, and lint is then clean."""
    migrations = tmp_path / "migrations"
    shutil.copytree(bundled_dir("migrations"), migrations)
    env = {
        **os.environ,
        "DATABASE_URL": empty_database_url,
        "REDIS_URL": redis_url,
        "APICTL_MIGRATIONS_DIR": str(migrations),
    }
    index = "CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_title ON posts (title);\n"
    write(migrations, "0006_index", HEADER + index)
    assert apictl("migrate", "lint", env=env).returncode == 1
    refused = apictl("migrate", env=env)
    assert refused.returncode == 1
    assert "cannot run inside a transaction block" in refused.stderr

    write(migrations, "0006_index", NON_TRANSACTIONAL + index)
    assert apictl("migrate", "lint", env=env).returncode == 0
    applied = apictl("migrate", env=env)
    assert applied.returncode == 0, applied.stderr
