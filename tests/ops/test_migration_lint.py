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
HEADER = "-- a migration\n-- depends: 0006_webhooks\n\n"
NOT_STATEMENTS = (  # the risky words, in comments, a string and a function body
    "-- CREATE INDEX a ON posts (b);\n/* ALTER TYPE mood ADD VALUE 'x'; */\n"
    "INSERT INTO notes VALUES ('CREATE INDEX a ON posts (b); ALTER TYPE m ADD VALUE');\n"
    "DO $$ BEGIN EXECUTE 'ALTER TABLE posts ADD COLUMN c int NOT NULL'; END $$;\n"
)
NON_TRANSACTIONAL = "-- a migration\n-- transactional: false\n-- depends: 0006_webhooks\n\n"


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
    assert "12 migration file(s) checked: no problems" in result.stdout


def risk(sql: str, rule: str, line: int = 4, *, id: str) -> Any:
    """One flagged case: the rule expected, at the line (of the statement) given."""
    return pytest.param(sql, rule, line, id=id)


RISKS = [
    risk(
        HEADER + "CREATE INDEX posts_title ON posts (title);\n",
        "index-not-concurrent",
        id="index",
    ),
    risk(
        HEADER + "CREATE UNIQUE INDEX ON public.posts (lower(title));",
        "index-not-concurrent",
        id="unnamed-index",
    ),
    risk(
        HEADER + "ALTER TABLE posts\n  ADD COLUMN views int DEFAULT 0 NOT NULL,\n"
        "  ADD COLUMN slug text NOT NULL CHECK (slug <> '');\n",
        "not-null-without-default",
        id="not-null",
    ),
    risk(HEADER + "ALTER TYPE mood ADD VALUE 'meh';\n", "enum-value-in-transaction", id="enum"),
    risk(
        HEADER + "CREATE INDEX CONCURRENTLY posts_title ON posts (title);\n",
        "concurrently-in-transaction",
        id="create-concurrently",
    ),
    risk(
        HEADER + "\n\nDROP INDEX CONCURRENTLY posts_title;\n",
        "concurrently-in-transaction",
        6,
        id="drop-concurrently",
    ),
    risk(
        HEADER + "REINDEX (VERBOSE, CONCURRENTLY) INDEX posts_pkey;\n",
        "concurrently-in-transaction",
        id="reindex-concurrently-option",
    ),
    risk(
        HEADER + "ALTER TABLE posts ADD COLUMN ref uuid DEFAULT gen_random_uuid();\n",
        "add-column-rewrite",
        id="volatile-default",
    ),
    risk(
        HEADER + "ALTER TABLE posts ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY;\n",
        "add-column-rewrite",
        id="identity",
    ),
    risk(HEADER + "ALTER TABLE posts ADD n bigserial;\n", "add-column-rewrite", id="serial"),
    risk(
        HEADER + "ALTER TABLE posts ALTER COLUMN title TYPE varchar(300);\n",
        "column-type-change",
        id="type",
    ),
    risk(
        HEADER + "ALTER TABLE posts ALTER body SET DATA TYPE varchar(100) USING left(body, 100);",
        "column-type-change",
        id="set-data-type",
    ),
    risk(
        HEADER + "ALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n",
        "set-not-null-without-check",
        id="set-not-null",
    ),
    risk(
        HEADER + "ALTER TABLE posts\n  ADD CONSTRAINT posts_author FOREIGN KEY (author_id)"
        " REFERENCES users (id);\n",
        "constraint-without-not-valid",
        id="foreign-key",
    ),
    risk(
        HEADER + "ALTER TABLE posts ADD CHECK (char_length(body) < 9000);\n",
        "constraint-without-not-valid",
        id="check",
    ),
    risk(
        HEADER + "ALTER TABLE posts ADD CONSTRAINT posts_body CHECK (body <> '') NOT VALID;\n"
        "ALTER TABLE posts VALIDATE CONSTRAINT posts_body;\n",
        "validate-in-same-transaction",
        5,
        id="validate-at-once",
    ),
    risk(
        HEADER + "ALTER TABLE posts ADD CONSTRAINT posts_t UNIQUE (title);\n",
        "constraint-builds-index",
        id="unique",
    ),
    risk(
        HEADER + "ALTER TABLE ONLY posts ADD PRIMARY KEY (id);\n",
        "constraint-builds-index",
        id="primary-key",
    ),
    risk(HEADER + "VACUUM (FULL, ANALYZE) posts;\n", "vacuum-full", id="vacuum-full"),
    risk(HEADER + "VACUUM FULL;\n", "vacuum-full", id="vacuum-full-everything"),
    risk(HEADER + "CLUSTER posts USING posts_created_at_id;\n", "cluster", id="cluster"),
    risk(HEADER + "REINDEX TABLE posts;\n", "reindex-not-concurrent", id="reindex"),
    risk(HEADER + "LOCK TABLE posts;\n", "lock-table", id="lock"),
    risk(HEADER + "LOCK posts IN SHARE MODE;\n", "lock-table", id="lock-share"),
]


@pytest.mark.parametrize(("sql", "rule", "line"), RISKS)
def test_each_risk_is_flagged_where_it_is(
    apictl: Apictl, tmp_path: Path, sql: str, rule: str, line: int
) -> None:
    path = write(tmp_path, "0007_risky", sql)
    code, findings = lint(apictl, path)
    assert code == 1
    assert [(f["rule"], f["line"]) for f in findings] == [(rule, line)]
    assert findings[0]["path"] == "0007_risky.sql"  # relative to the working directory
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
        "  ADD COLUMN seen_at timestamptz NOT NULL DEFAULT now(),\n"  # stable: no rewrite
        "  ADD CONSTRAINT views_positive CHECK (views >= 0) NOT VALID;\n",
        HEADER + "CREATE TABLE tags (id int);\n"
        "ALTER TABLE tags ALTER COLUMN id TYPE bigint, ALTER COLUMN id SET NOT NULL,\n"
        "  ADD PRIMARY KEY (id), ADD CONSTRAINT tags_positive CHECK (id > 0),\n"
        "  ADD COLUMN n bigserial;\n"
        "CLUSTER tags USING tags_pkey;\nREINDEX TABLE tags;\nLOCK TABLE tags;\nVACUUM FULL tags;\n",
        HEADER + "ALTER TABLE posts\n"
        "  ADD CONSTRAINT posts_author FOREIGN KEY (author_id) REFERENCES users (id) NOT VALID,\n"
        "  ADD CONSTRAINT posts_body_present CHECK (body IS NOT NULL) NOT VALID;\n",
        # the next migration: the checks validated, SET NOT NULL skips its scan
        HEADER + "ALTER TABLE posts VALIDATE CONSTRAINT posts_body_present;\n"
        "ALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n",
        # each statement is a transaction of its own: VALIDATE no longer holds the ADD's lock
        NON_TRANSACTIONAL
        + "ALTER TABLE posts ADD CONSTRAINT posts_b CHECK (body <> '') NOT VALID;\n"
        "ALTER TABLE posts VALIDATE CONSTRAINT posts_b;\n",
        HEADER + "ALTER TABLE posts ADD CONSTRAINT posts_t UNIQUE USING INDEX posts_t;\n",
        # a new column to backfill in batches and swap in; a varchar(n) turned text in place
        HEADER + "ALTER TABLE posts ADD COLUMN title_long varchar(300);\n"
        "ALTER TABLE posts ALTER COLUMN title TYPE text, ALTER COLUMN body TYPE varchar;\n",
        NON_TRANSACTIONAL + "REINDEX TABLE CONCURRENTLY posts;\n"
        "REINDEX (CONCURRENTLY) INDEX posts_pkey;\nVACUUM (ANALYZE) posts;\n"
        "LOCK TABLE posts IN ROW EXCLUSIVE MODE;\n",
    ],
    ids=[
        "not-statements",
        "new-tables",
        "non-transactional",
        "filled-columns",
        "new-table-rewrites",
        "not-valid",
        "validated-later",
        "validated-at-once-outside-a-transaction",
        "unique-using-index",
        "new-column-and-in-place-types",
        "online-rebuilds",
    ],
)
def test_safe_migrations_are_not_flagged(apictl: Apictl, tmp_path: Path, sql: str) -> None:
    assert lint(apictl, write(tmp_path, "0007_safe", sql)) == (0, [])


def test_help_lists_every_rule(apictl: Apictl) -> None:
    help_text = apictl("migrate", "lint", "--help", env={**os.environ, "COLUMNS": "200"}).stdout
    for rule in {case.values[1] for case in RISKS} | {"missing-rollback"}:
        assert f" {rule} " in help_text, rule


def test_missing_rollback_is_flagged(apictl: Apictl, tmp_path: Path) -> None:
    path = write(tmp_path, "0007_one_way", HEADER + "SELECT 1;\n", rollback=None)
    code, findings = lint(apictl, path)
    assert code == 1
    assert [(f["rule"], f["line"]) for f in findings] == [("missing-rollback", 1)]
    assert "0007_one_way.rollback.sql" in findings[0]["message"]


def test_a_rollback_runs_under_its_migrations_directive(apictl: Apictl, tmp_path: Path) -> None:
    undo = "DROP INDEX CONCURRENTLY IF EXISTS posts_t;\n"
    write(tmp_path, "0007_index", NON_TRANSACTIONAL + "SELECT 1;\n", rollback=undo)
    write(tmp_path, "0007_index", HEADER + "SELECT 1;\n", rollback=undo)
    code, findings = lint(apictl, tmp_path)
    assert code == 1
    assert [(Path(f["path"]).name, f["rule"]) for f in findings] == [
        ("0007_index.rollback.sql", "concurrently-in-transaction")
    ]


def test_without_files_the_configured_folder_is_linted_for_humans(
    apictl: Apictl, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"  # the test runs in tmp_path
    shutil.copytree(bundled_dir("migrations"), migrations)
    write(migrations, "0007_index", HEADER + "CREATE INDEX posts_t ON posts (title);\n")
    env = {**os.environ, "APICTL_MIGRATIONS_DIR": str(migrations)}
    result = apictl("migrate", "lint", env=env)
    assert result.returncode == 1
    assert "migrations/0007_index.sql:4: index-not-concurrent" in result.stdout
    assert "hint: use CREATE INDEX CONCURRENTLY" in result.stdout
    assert "1 problem(s) in 14 migration file(s)" in result.stdout


def test_a_missing_file_is_a_usage_error(apictl: Apictl, tmp_path: Path) -> None:
    result = apictl(
        "migrate", "lint", str(tmp_path / "0007_nothing.sql"), env={**os.environ, "COLUMNS": "400"}
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
    write(migrations, "0007_index", HEADER + index)
    assert apictl("migrate", "lint", env=env).returncode == 1
    refused = apictl("migrate", env=env)
    assert refused.returncode == 1
    assert "cannot run inside a transaction block" in refused.stderr

    write(migrations, "0007_index", NON_TRANSACTIONAL + index)
    assert apictl("migrate", "lint", env=env).returncode == 0
    applied = apictl("migrate", env=env)
    assert applied.returncode == 0, applied.stderr


def test_the_advised_forms_lint_clean_and_apply(
    apictl: Apictl, tmp_path: Path, empty_database_url: str, redis_url: str
) -> None:
    """The hints' forms in several steps are real PostgreSQL: constraints NOT VALID, validated
    by the next migration before SET NOT NULL; a unique index built CONCURRENTLY, then made the
    constraint."""
    migrations = tmp_path / "migrations"
    shutil.copytree(bundled_dir("migrations"), migrations)
    write(
        migrations,
        "0007_checks",
        HEADER + "ALTER TABLE posts\n"
        "  ADD CONSTRAINT posts_author FOREIGN KEY (author_id) REFERENCES users (id) NOT VALID,\n"
        "  ADD CONSTRAINT posts_body_present CHECK (body IS NOT NULL) NOT VALID;\n",
    )
    write(
        migrations,
        "0007_validated",
        "-- depends: 0007_checks\n\nALTER TABLE posts VALIDATE CONSTRAINT posts_author;\n"
        "ALTER TABLE posts VALIDATE CONSTRAINT posts_body_present;\n"
        "ALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n",
    )
    write(
        migrations,
        "0008_index",
        "-- transactional: false\n-- depends: 0007_validated\n\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS posts_id_title ON posts (id, title);\n",
    )
    write(
        migrations,
        "0009_key",
        "-- depends: 0008_index\n\n"
        "ALTER TABLE posts ADD CONSTRAINT posts_id_title UNIQUE USING INDEX posts_id_title;\n",
    )
    env = {
        **os.environ,
        "DATABASE_URL": empty_database_url,
        "REDIS_URL": redis_url,
        "APICTL_MIGRATIONS_DIR": str(migrations),
    }
    linted = apictl("migrate", "lint", env=env)
    assert linted.returncode == 0, linted.stdout
    applied = apictl("migrate", env=env)
    assert applied.returncode == 0, applied.stderr
