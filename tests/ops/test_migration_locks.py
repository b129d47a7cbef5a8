"""Migrations never stall the service: a lock they cannot get is given up within
APICTL_MIGRATE_LOCK_TIMEOUT, tried again, then reported with the session holding it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from service.config import load_settings
from service.ops.migration_locks import LockWait
from service.ops.migrations import Migrator
from service.process.bundled import bundled_dir

Apictl = Callable[..., CompletedProcess[str]]
ADD_VIEWS = "-- Post views.\n-- depends: 0006_webhooks\n\nALTER TABLE posts ADD COLUMN views int;\n"
WAITING_ALTER = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE posts%'"
)


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """The shipped migrations (all applied to `database_url`) and 0007_post_views, pending."""
    target = tmp_path / "migrations"
    shutil.copytree(bundled_dir("migrations"), target)
    (target / "0007_post_views.sql").write_text(ADD_VIEWS)
    (target / "0007_post_views.rollback.sql").write_text("ALTER TABLE posts DROP COLUMN views;\n")
    return target


@pytest.fixture
def env(database_url: str, redis_url: str, migrations: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "APICTL_MIGRATIONS_DIR": str(migrations),
        "APICTL_MIGRATE_LOCK_TIMEOUT": "0.5",
    }


@pytest.fixture
def report_job(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A reporting session that read `posts` and sits idle in its transaction, holding ACCESS
    SHARE on it until it ends."""
    conn = psycopg.connect(database_url, application_name="report-job")
    conn.execute("SELECT count(*) FROM posts").fetchall()
    yield conn
    conn.close()


def states(apictl: Apictl, env: dict[str, str]) -> dict[str, str]:
    result = apictl("migrate", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {row["id"]: row["state"] for row in json.loads(result.stdout)}


def test_a_blocked_migration_gives_way_to_readers_then_names_the_blocker(
    apictl_path: str,
    apictl: Apictl,
    env: dict[str, str],
    database_url: str,
    report_job: psycopg.Connection[Any],
    client: TestClient,
    alice: Account,
) -> None:
    migrator = subprocess.Popen(
        [apictl_path, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    latencies, during_a_wait = [], 0
    try:
        while migrator.poll() is None:
            during_a_wait += query(database_url, WAITING_ALTER)[0][0]
            began = time.monotonic()
            response = client.get("/api/v1/posts", headers=alice.headers)
            latencies.append(time.monotonic() - began)
            assert response.status_code == 200
    finally:
        if migrator.poll() is None:  # a failed assertion: no migrator outlives the test
            migrator.kill()
        stdout, stderr = migrator.communicate()

    assert during_a_wait >= 1, "no request was made while the migration waited for its lock"
    assert max(latencies) < 1, latencies  # queued behind the ALTER for one lock timeout at most
    assert migrator.returncode == 1
    assert "Traceback" not in stderr
    pid = report_job.info.backend_pid
    error = " ".join(stderr.split())
    assert "apply of migration 0007_post_views gave up after 4 attempts" in error
    assert f"a lock on posts held by pid {pid} (report-job, idle in transaction," in error
    assert f"SELECT pg_terminate_backend({pid})" in error
    assert "attempt 4 of 4 in 0.4 s" in " ".join(stdout.split())

    assert states(apictl, env)["0007_post_views"] == "pending"
    assert query(
        database_url, "SELECT count(*) FROM _yoyo_log WHERE migration_id LIKE '0007%'"
    ) == [(0,)]
    views = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'views'"
    assert query(database_url, views) == [(0,)]

    report_job.rollback()  # the report is done
    applied = apictl("migrate", env=env)
    assert applied.returncode == 0, applied.stderr
    assert states(apictl, env)["0007_post_views"] == "applied"
    assert query(database_url, views) == [(1,)]


def test_a_migration_goes_through_once_the_holder_is_done(
    database_url: str, migrations: Path, report_job: psycopg.Connection[Any]
) -> None:
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        migrations_dir=migrations,
        migrate_lock_timeout=0.3,
    )
    waits: list[LockWait] = []

    def report_done(wait: LockWait) -> None:
        waits.append(wait)
        report_job.rollback()

    assert Migrator(settings).up(on_retry=report_done) == ["0007_post_views"]
    [wait] = waits
    assert (wait.migration_id, wait.attempt, wait.attempts) == ("0007_post_views", 1, 4)
    assert wait.retry_in == pytest.approx(0.3 * 0.2)
    assert wait.holder is not None
    assert wait.holder.pid == report_job.info.backend_pid
    assert (wait.holder.application_name, wait.holder.state, wait.holder.relation) == (
        "report-job",
        "idle in transaction",
        "posts",
    )


def test_concurrently_waits_for_older_transactions_without_the_lock_timeout(
    apictl: Apictl, env: dict[str, str], migrations: Path, database_url: str
) -> None:
    """CREATE INDEX CONCURRENTLY waits for every older snapshot (here a pg_dump's), blocking
    no query; cut short by the lock timeout it would leave an INVALID index behind."""
    (migrations / "0007_post_views.sql").write_text(
        "-- transactional: false\n-- depends: 0006_webhooks\n\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_title ON posts (title);\n"
    )
    (migrations / "0007_post_views.rollback.sql").write_text("DROP INDEX IF EXISTS posts_title;\n")
    dump = psycopg.connect(database_url, application_name="pg_dump")
    dump.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    dump.execute("SELECT count(*) FROM users").fetchall()
    threading.Timer(1.5, dump.close).start()

    began = time.monotonic()
    result = apictl("migrate", env={**env, "APICTL_MIGRATE_LOCK_TIMEOUT": "0.2"})
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 1.5  # it waited for the dump, beyond the lock timeout
    assert "attempt" not in result.stdout
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'posts_title'::regclass"
    assert query(database_url, valid) == [(True,)]


def test_a_bad_lock_timeout_is_a_configuration_error(apictl: Apictl, env: dict[str, str]) -> None:
    result = apictl("migrate", env={**env, "APICTL_MIGRATE_LOCK_TIMEOUT": "0"})
    assert result.returncode == 1
    assert "APICTL_MIGRATE_LOCK_TIMEOUT: Input should be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr
