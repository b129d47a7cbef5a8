"""Schema migrations on yoyo-migrations, made safe for replicas and honest about drift.

- One migrator at a time: a PostgreSQL session advisory lock on a connection of its own. The
  server drops it when the process dies, unlike yoyo's lock row, which we clear once we hold ours.
  Every connection goes to APICTL_DB_DIRECT_URL (a transaction pooler cannot hold a session lock).
- Checksums: yoyo remembers only a migration's id, so we record the SHA-256 of each applied file
  in `apictl_migration_checksums`; an edited migration then shows as drift.
- Lock timeout: each migration runs under `lock_timeout` (APICTL_MIGRATE_LOCK_TIMEOUT), so an
  ALTER TABLE waiting behind a long transaction gives way instead of queueing every query of its
  table behind its own lock request. It is tried again a few times, then fails naming the session
  that holds the lock (service.ops.migration_locks).
- Every failure is a `MigrationError` with one clear line (the migration id, the database's words).
"""

from __future__ import annotations

import hashlib
import math
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from yoyo import read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from service.config import DIRECT_URL_HINT, NO_DIRECT_URL, Settings, mask_url
from service.errors import MigrationError
from service.ops.migration_locks import RetryCallback, limit_lock_waits, retrying_lock_timeouts
from service.process.migration_state import migrations_dir

LOCK_KEY = 0x617069_63746C  # "apictl": shared by every apictl migrator of a database
LOCK_WAIT_SECONDS = 300
YOYO_TABLE = "_yoyo_migration"
CHECKSUMS_DDL = """
CREATE TABLE IF NOT EXISTS apictl_migration_checksums (
    migration_id text PRIMARY KEY,
    sha256       text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
)"""

State = Literal["applied", "pending", "drift", "missing"]
Action = Literal["apply", "rollback"]
StepCallback = Callable[[str, int, int], None]  # (migration id, index, total) before each step


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    id: str
    state: State
    applied_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlannedStep:
    id: str
    sql: str


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _rollback_path(path: str) -> Path:
    return Path(path).with_suffix(".rollback.sql")


class _Backend(PostgresqlPsycopgBackend):  # type: ignore[misc]
    """yoyo's psycopg 3 backend, minus a reverse-DNS lookup (socket.getfqdn) per log row, plus
    a lock timeout for migrations.

    yoyo applies or rolls back each migration on `copy()`, a connection of its own: only there
    are lock waits limited; the bookkeeping connection keeps no lock timeout.
    """

    lock_timeout: float  # seconds (set by Migrator._backend)
    migration_pid: int | None = None  # the server process of the migration being run

    def copy(self) -> _Backend:
        backend: _Backend = super().copy()
        limit_lock_waits(backend.connection, self.lock_timeout)
        self.migration_pid = backend.connection.info.backend_pid
        return backend

    def get_log_data(self, migration: Any = None, operation: str = "apply") -> dict[str, Any]:
        data: dict[str, Any] = super().get_log_data(None, operation)
        data.update(
            migration_id=migration.id if migration else None,
            migration_hash=migration.hash if migration else None,
            hostname=socket.gethostname(),
        )
        return data


class Migrator:
    """Status, plans, apply and roll back for one database and one migrations folder."""

    def __init__(self, settings: Settings) -> None:
        assert settings.database_url is not None, "resolve embedded servers first"
        if settings.direct_url is None:
            raise MigrationError(f"{NO_DIRECT_URL}; {DIRECT_URL_HINT}")
        self.url = settings.direct_url
        self.directory = migrations_dir(settings)
        self.connect_timeout = max(2, math.ceil(settings.db_acquire_timeout))  # libpq's minimum
        self.lock_timeout = settings.migrate_lock_timeout
        if not self.directory.is_dir():
            raise MigrationError(f"migrations folder not found: {self.directory}")

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise MigrationError(
                f"database unreachable at {mask_url(self.url)}: {reason}"
            ) from None

    def _backend(self) -> _Backend:
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        query.setdefault("connect_timeout", str(self.connect_timeout))
        uri = urlunsplit(parts._replace(scheme="postgresql+psycopg", query=urlencode(query)))
        backend = _Backend(parse_uri(uri), YOYO_TABLE)
        backend.lock_timeout = self.lock_timeout
        return backend

    @contextmanager
    def _locked(
        self, on_wait: Callable[[], None] | None = None
    ) -> Iterator[psycopg.Connection[Any]]:
        """Hold the migration lock; the server releases it if this process dies."""
        with self._connect() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
            if not (row and row[0]):
                if on_wait:
                    on_wait()
                conn.execute(f"SET lock_timeout = '{LOCK_WAIT_SECONDS}s'")
                try:
                    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                except psycopg.errors.LockNotAvailable:
                    raise MigrationError(
                        f"another migrator held the lock for over {LOCK_WAIT_SECONDS} s"
                    ) from None
            conn.execute(CHECKSUMS_DDL)
            yield conn

    # -- reading state -------------------------------------------------------------------------

    def status(self) -> list[MigrationStatus]:
        """Every migration on disk or applied, in order, with its state."""
        with self._connect() as conn:
            return self._status(conn)

    def _status(self, conn: psycopg.Connection[Any]) -> list[MigrationStatus]:
        applied: dict[str, datetime] = {}
        recorded: dict[str, str] = {}
        if conn.execute("SELECT to_regclass(%s)", (YOYO_TABLE,)).fetchone() != (None,):
            rows = conn.execute("SELECT migration_id, applied_at_utc FROM _yoyo_migration")
            applied = {mid: at.replace(tzinfo=UTC) for mid, at in rows}
        if conn.execute("SELECT to_regclass('apictl_migration_checksums')").fetchone() != (None,):
            rows = conn.execute("SELECT migration_id, sha256 FROM apictl_migration_checksums")
            recorded = dict(rows.fetchall())
        result = []
        for migration in read_migrations(str(self.directory)):
            mid = migration.id
            if mid not in applied:
                result.append(MigrationStatus(mid, "pending", None))
                continue
            changed = mid in recorded and recorded[mid] != _sha256(migration.path)
            result.append(MigrationStatus(mid, "drift" if changed else "applied", applied.pop(mid)))
        result += [MigrationStatus(mid, "missing", at) for mid, at in sorted(applied.items())]
        return result

    def plan_up(self) -> list[PlannedStep]:
        """What `up` would apply, with its SQL; changes nothing."""
        pending = {s.id for s in self.status() if s.state == "pending"}
        return [
            PlannedStep(m.id, Path(m.path).read_text())
            for m in read_migrations(str(self.directory))
            if m.id in pending
        ]

    def plan_down(self, steps: int) -> list[PlannedStep]:
        """What `down` would roll back, with its SQL; changes nothing."""
        with self._connect() as conn:
            targets = self._rollback_targets(conn, steps)
        return [PlannedStep(m.id, _rollback_path(m.path).read_text()) for m in targets]

    # -- changing state ------------------------------------------------------------------------

    def up(
        self,
        *,
        allow_drift: bool = False,
        on_step: StepCallback | None = None,
        on_wait: Callable[[], None] | None = None,
        on_retry: RetryCallback | None = None,
    ) -> list[str]:
        """Apply every pending migration, each in its own transaction; return their ids."""
        with self._locked(on_wait) as conn:
            drifted = [s.id for s in self._status(conn) if s.state in ("drift", "missing")]
            if drifted and not allow_drift:
                raise MigrationError(
                    "applied migrations changed or vanished since they were applied: "
                    + ", ".join(drifted)
                    + " (see `apictl migrate status`; --allow-drift to apply anyway)"
                )
            backend = self._prepared_backend()
            try:
                migrations = read_migrations(str(self.directory))
                self._record_unverified(conn, backend.to_rollback(migrations))
                pending = list(backend.to_apply(migrations))
                with backend.lock():
                    for index, migration in enumerate(pending):
                        if on_step:
                            on_step(migration.id, index, len(pending))
                        self._patiently(conn, backend, migration, "apply", on_retry)
                        self._record(conn, migration.id, _sha256(migration.path))
            finally:
                backend.connection.close()
        return [m.id for m in pending]

    def down(
        self,
        steps: int = 1,
        *,
        on_step: StepCallback | None = None,
        on_wait: Callable[[], None] | None = None,
        on_retry: RetryCallback | None = None,
    ) -> list[str]:
        """Roll back the last `steps` applied migrations; return their ids."""
        with self._locked(on_wait) as conn:
            targets = self._rollback_targets(conn, steps)
            backend = self._prepared_backend()
            try:
                with backend.lock():
                    for index, migration in enumerate(targets):
                        if on_step:
                            on_step(migration.id, index, len(targets))
                        self._patiently(conn, backend, migration, "rollback", on_retry)
                        conn.execute(
                            "DELETE FROM apictl_migration_checksums WHERE migration_id = %s",
                            (migration.id,),
                        )
            finally:
                backend.connection.close()
        return [m.id for m in targets]

    def _prepared_backend(self) -> _Backend:
        """A yoyo backend with its tables in place and any stale lock row (a killed run) gone."""
        backend = self._backend()
        backend.create_lock_table()
        backend.break_lock()  # safe: we hold the advisory lock, so no apictl migrator is running
        backend.ensure_internal_schema_updated()
        return backend

    def _rollback_targets(self, conn: psycopg.Connection[Any], steps: int) -> list[Any]:
        """The last `steps` applied migrations, newest first, each with a rollback file."""
        if steps < 1:
            raise MigrationError("--steps must be at least 1")
        applied = [s.id for s in self._status(conn) if s.state in ("applied", "drift", "missing")]
        if steps > len(applied):
            raise MigrationError(
                f"cannot roll back {steps} migration(s): only {len(applied)} applied; "
                "nothing was changed"
            )
        on_disk = {m.id: m for m in read_migrations(str(self.directory))}
        targets = list(reversed(applied))[:steps]
        unusable = [
            mid
            for mid in targets
            if mid not in on_disk or not _rollback_path(on_disk[mid].path).is_file()
        ]
        if unusable:
            raise MigrationError(f"no rollback file for {', '.join(unusable)}; nothing was changed")
        return [on_disk[mid] for mid in targets]

    def _patiently(
        self,
        conn: psycopg.Connection[Any],
        backend: _Backend,
        migration: Any,
        action: Action,
        on_retry: RetryCallback | None,
    ) -> None:
        """Apply or roll back one migration, tried again after each lock timeout."""
        step = backend.apply_one if action == "apply" else backend.rollback_one

        def run() -> None:
            try:
                step(migration)
            except psycopg.errors.LockNotAvailable:
                raise  # a lock timeout: retrying_lock_timeouts tries again
            except psycopg.Error as exc:
                raise MigrationError(_failure(migration.id, action, exc)) from None

        retrying_lock_timeouts(
            run,
            conn,
            backend,
            migration_id=migration.id,
            action=action,
            lock_timeout=self.lock_timeout,
            on_retry=on_retry,
        )

    @staticmethod
    def _record(conn: psycopg.Connection[Any], migration_id: str, digest: str) -> None:
        conn.execute(
            "INSERT INTO apictl_migration_checksums (migration_id, sha256) VALUES (%s, %s)"
            " ON CONFLICT (migration_id) DO UPDATE SET sha256 = EXCLUDED.sha256,"
            " recorded_at = now()",
            (migration_id, digest),
        )

    def _record_unverified(self, conn: psycopg.Connection[Any], applied: Any) -> None:
        """Trust-on-first-sight for applied migrations without a checksum (e.g. a crash between
        yoyo marking a migration and us recording it)."""
        known = {
            row[0] for row in conn.execute("SELECT migration_id FROM apictl_migration_checksums")
        }
        for migration in applied:
            if migration.id not in known:
                self._record(conn, migration.id, _sha256(migration.path))


def _failure(migration_id: str, action: str, exc: psycopg.Error) -> str:
    message = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    return f"{action} of migration {migration_id} failed: {message}; its changes were rolled back"
