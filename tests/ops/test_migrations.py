"""`apictl migrate`: apply, roll back, status, drift, locking and failure, on a real database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import psycopg
import pytest

from service.ops.migrations import LOCK_KEY
from service.process.bundled import bundled_dir, is_source_checkout

Apictl = Callable[..., CompletedProcess[str]]
SHIPPED = [
    "0001_users",
    "0002_api_tokens",
    "0003_posts",
    "0004_event_outbox",
    "0005_idempotency_keys",
    "0006_webhooks",
]

CATALOG = [
    "SELECT table_name, column_name, data_type, is_nullable, column_default"
    " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
    "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
]


def catalog(url: str) -> list[list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return [conn.execute(query).fetchall() for query in CATALOG]


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def env(empty_database_url: str, redis_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": empty_database_url, "REDIS_URL": redis_url}


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """A private copy of the shipped migrations, free to edit."""
    target = tmp_path / "migrations"
    shutil.copytree(bundled_dir("migrations"), target)
    return target


def states(apictl: Apictl, env: dict[str, str]) -> dict[str, str]:
    result = apictl("migrate", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {row["id"]: row["state"] for row in json.loads(result.stdout)}


def test_shipped_migrations_are_found_by_the_installed_package() -> None:
    directory = bundled_dir("migrations")
    for mid in SHIPPED:
        assert (directory / f"{mid}.sql").is_file()
        assert (directory / f"{mid}.rollback.sql").is_file()
    if not is_source_checkout():  # a wheel: the files travel inside the package
        assert directory.parts[-3:] == ("service", "_data", "migrations")


def test_up_down_up_leaves_the_same_schema(
    apictl: Apictl, env: dict[str, str], empty_database_url: str
) -> None:
    assert apictl("migrate", "up", env=env).returncode == 0
    first = catalog(empty_database_url)
    assert {row[0] for row in first[0]} >= {"users", "api_tokens", "posts", "event_outbox"}

    down = apictl("migrate", "down", "--steps", str(len(SHIPPED)), env=env)
    assert down.returncode == 0, down.stderr
    assert ", ".join(reversed(SHIPPED)) in " ".join(down.stdout.split())
    tables = {row[0] for row in catalog(empty_database_url)[0]}
    assert not tables & {"users", "api_tokens", "posts", "event_outbox"}

    assert apictl("migrate", env=env).returncode == 0
    assert catalog(empty_database_url) == first


def test_status_check_exit_codes(apictl: Apictl, env: dict[str, str]) -> None:
    assert apictl("migrate", "status", "--check", env=env).returncode == 1
    assert states(apictl, env) == dict.fromkeys(SHIPPED, "pending")
    apictl("migrate", env=env)
    assert apictl("migrate", "status", "--check", env=env).returncode == 0
    assert states(apictl, env) == dict.fromkeys(SHIPPED, "applied")


def test_dry_run_prints_sql_and_changes_nothing(
    apictl: Apictl, env: dict[str, str], empty_database_url: str
) -> None:
    result = apictl("migrate", "up", "--dry-run", env=env)
    assert result.returncode == 0
    assert f"would apply ({len(SHIPPED)})" in result.stdout
    assert "CREATE TABLE IF NOT EXISTS users" in result.stdout
    assert query(empty_database_url, "SELECT to_regclass('users')") == [(None,)]
    apictl("migrate", env=env)
    down = apictl("migrate", "down", "--dry-run", env=env)
    assert "DROP TABLE IF EXISTS webhook_deliveries" in down.stdout
    assert states(apictl, env) == dict.fromkeys(SHIPPED, "applied")


def test_two_migrators_at_once_apply_each_migration_once(
    apictl: Apictl, env: dict[str, str], empty_database_url: str
) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: apictl("migrate", env=env), range(2)))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    applied = query(
        empty_database_url,
        "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1",
    )
    assert dict(applied) == dict.fromkeys(SHIPPED, 1)


def test_killed_migrator_leaves_no_lock_behind(
    apictl: Apictl,
    apictl_path: str,
    env: dict[str, str],
    migrations: Path,
    empty_database_url: str,
) -> None:
    slow = migrations / "0007_slow.sql"
    slow.write_text("SELECT pg_sleep(60);\n")
    (migrations / "0007_slow.rollback.sql").write_text("SELECT 1;\n")
    env = {**env, "APICTL_MIGRATIONS_DIR": str(migrations)}
    migrator = subprocess.Popen([apictl_path, "migrate"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not query(
        empty_database_url,
        "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'",
    ):
        assert time.monotonic() < deadline, "the slow migration never started"
        time.sleep(0.1)
    assert not _lock_is_free(empty_database_url)
    migrator.send_signal(signal.SIGKILL)
    migrator.wait()

    assert _lock_is_free(empty_database_url)
    slow.write_text("SELECT 1;\n")  # it never committed, so editing it is not drift
    began = time.monotonic()
    rerun = apictl("migrate", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert time.monotonic() - began < 8  # no wait on a stale yoyo lock row
    assert states(apictl, env) == dict.fromkeys([*SHIPPED, "0007_slow"], "applied")


def _lock_is_free(url: str) -> bool:
    # the connection closes right after, releasing the lock again if it was taken
    return bool(query(url, f"SELECT pg_try_advisory_lock({LOCK_KEY})")[0][0])


def test_failing_migration_is_rolled_back_whole(
    apictl: Apictl, env: dict[str, str], migrations: Path, empty_database_url: str
) -> None:
    (migrations / "0007_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n"
    )
    (migrations / "0007_broken.rollback.sql").write_text("DROP TABLE half_done;\n")
    env = {**env, "APICTL_MIGRATIONS_DIR": str(migrations)}
    result = apictl("migrate", env=env)
    assert result.returncode == 1
    assert "0007_broken" in result.stderr
    assert 'relation "no_such_table" does not exist' in result.stderr
    assert "Traceback" not in result.stderr
    assert query(empty_database_url, "SELECT to_regclass('half_done')") == [(None,)]
    assert states(apictl, env) == {**dict.fromkeys(SHIPPED, "applied"), "0007_broken": "pending"}


def test_edited_migration_is_drift_and_blocks_up(
    apictl: Apictl, env: dict[str, str], migrations: Path
) -> None:
    env = {**env, "APICTL_MIGRATIONS_DIR": str(migrations)}
    assert apictl("migrate", env=env).returncode == 0
    posts = migrations / "0003_posts.sql"
    posts.write_text(posts.read_text() + "\n-- edited after it was applied\n")
    (migrations / "0007_more.sql").write_text("CREATE TABLE more_things (id int);\n")
    (migrations / "0007_more.rollback.sql").write_text("DROP TABLE more_things;\n")

    assert apictl("migrate", "status", "--check", env=env).returncode == 3
    assert states(apictl, env)["0003_posts"] == "drift"
    refused = apictl("migrate", env=env)
    assert refused.returncode == 1
    assert "0003_posts" in refused.stderr
    assert "--allow-drift" in refused.stderr
    assert states(apictl, env)["0007_more"] == "pending"
    assert apictl("migrate", "--allow-drift", env=env).returncode == 0
    assert states(apictl, env)["0007_more"] == "applied"


def test_applied_migration_missing_on_disk_is_reported(
    apictl: Apictl, env: dict[str, str], migrations: Path
) -> None:
    env = {**env, "APICTL_MIGRATIONS_DIR": str(migrations)}
    apictl("migrate", env=env)
    (migrations / "0003_posts.sql").unlink()
    (migrations / "0003_posts.rollback.sql").unlink()
    assert states(apictl, env)["0003_posts"] == "missing"
    assert apictl("migrate", "status", "--check", env=env).returncode == 3


def test_rolling_back_more_than_applied_changes_nothing(
    apictl: Apictl, env: dict[str, str]
) -> None:
    apictl("migrate", env=env)
    result = apictl("migrate", "down", "--steps", str(len(SHIPPED) + 1), env=env)
    assert result.returncode == 1
    assert f"only {len(SHIPPED)} applied" in result.stderr
    assert states(apictl, env) == dict.fromkeys(SHIPPED, "applied")


def test_unreachable_database_is_one_line_within_the_timeout(
    apictl: Apictl, free_port: int
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://nobody:pw@127.0.0.1:{free_port}/nothing",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    began = time.monotonic()
    result = apictl("migrate", env=env)
    assert time.monotonic() - began < 3 + 5
    assert result.returncode == 1
    assert "database unreachable at postgresql://nobody:***@127.0.0.1" in result.stderr
    assert "pw@" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and its hint


def test_migrate_new_writes_the_next_pair(
    apictl: Apictl, env: dict[str, str], migrations: Path
) -> None:
    env = {**env, "APICTL_MIGRATIONS_DIR": str(migrations)}
    result = apictl("migrate", "new", "add_post_tags", env=env)
    assert result.returncode == 0, result.stderr
    apply, rollback = (
        migrations / "0007_add_post_tags.sql",
        migrations / "0007_add_post_tags.rollback.sql",
    )
    assert apply.is_file()
    assert rollback.is_file()
    assert "-- depends: 0006_webhooks" in apply.read_text()
    apply.write_text(apply.read_text() + "CREATE TABLE post_tags (tag text);\n")
    rollback.write_text(rollback.read_text() + "DROP TABLE post_tags;\n")
    assert apictl("migrate", env=env).returncode == 0
    assert apictl("migrate", "down", env=env).returncode == 0


@pytest.mark.parametrize("name", ["Bad-Name", "1starts_with_digit", "spaces here", ""])
def test_migrate_new_refuses_bad_names(
    apictl: Apictl, env: dict[str, str], migrations: Path, name: str
) -> None:
    before = sorted(migrations.iterdir())
    result = apictl("migrate", "new", name, env={**env, "APICTL_MIGRATIONS_DIR": str(migrations)})
    assert result.returncode == 2
    assert sorted(migrations.iterdir()) == before


def test_production_serve_refuses_pending_migrations(
    apictl: Apictl, env: dict[str, str], free_port: int
) -> None:
    production = {**env, "APICTL_ENV": "production"}
    result = apictl("serve", "--port", str(free_port), env=production)
    assert result.returncode == 1
    assert f"{len(SHIPPED)} migration(s) pending" in result.stderr
    assert "apictl migrate" in result.stderr


def test_production_serve_with_migrate_applies_then_serves(
    apictl: Apictl, env: dict[str, str], start_server: Callable[..., Any]
) -> None:
    server = start_server({**env, "APICTL_ENV": "production"}, "--migrate")
    assert apictl("check", "health", "--url", server.url, env=env).returncode == 0
    assert states(apictl, env) == dict.fromkeys(SHIPPED, "applied")


NEW_USER = "INSERT INTO users (email, name, password_hash) VALUES ({})"
HASH = "'$argon2id$v=19$stub'"


@pytest.mark.parametrize(
    "statement",
    [
        NEW_USER.format(f"'Upper@Example.com', 'x', {HASH}"),
        NEW_USER.format(f"'a@example.com', '', {HASH}"),
        NEW_USER.format(f"'a@example.com', ' padded ', {HASH}"),
        NEW_USER.format("'a@example.com', 'x', 'plaintext'"),
        NEW_USER.format(f"'not-an-email', 'x', {HASH}"),
        "INSERT INTO posts (author_id, title) SELECT id, '   ' FROM users",
        "INSERT INTO posts (author_id, title, body) SELECT id, 't', repeat('x', 50001) FROM users",
        "INSERT INTO api_tokens (user_id, token_hash, kind, name, expires_at)"
        " SELECT id, '\\x00', 'api', 'n', now() + interval '1 day' FROM users",
    ],
)
def test_schema_constraints_hold_without_the_api(database_url: str, statement: str) -> None:
    query(database_url, NEW_USER.format(f"'owner@example.com', 'Owner', {HASH}") + " RETURNING id")
    with pytest.raises(psycopg.errors.CheckViolation):
        query(database_url, statement + " RETURNING 1")


def test_emails_are_unique_whatever_their_case_as_stored(database_url: str) -> None:
    insert = NEW_USER.format(f"'a@example.com', 'A', {HASH}") + " RETURNING id"
    query(database_url, insert)
    with pytest.raises(psycopg.errors.UniqueViolation):
        query(database_url, insert)
