"""Lock timeouts of a migration: its statements give way to the service, are tried again, and
a migration that never gets its lock fails naming the session that holds it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, Self

import psycopg

from service.errors import MigrationError
from service.ops.migration_lint_rules import runs_concurrently

# The waits between attempts of a migration that timed out on a lock, as fractions of the lock
# timeout (1 s, 2 s, 4 s at the default 5 s): a shorter timeout asks for a quicker verdict
LOCK_RETRY_BACKOFF = (0.2, 0.4, 0.8)
# The oldest transaction among the sessions a migration's connection waits for, and what for
LOCK_HOLDER = """
SELECT b.pid, b.application_name, b.state, b.xact_start, w.relation::regclass::text
FROM pg_locks w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking (pid)
JOIN pg_stat_activity b ON b.pid = blocking.pid
WHERE w.pid = %s AND NOT w.granted
ORDER BY b.xact_start NULLS LAST
LIMIT 1"""


@dataclass(frozen=True, slots=True)
class LockHolder:
    """A session holding a lock a migration waited for, as pg_stat_activity shows it."""

    pid: int
    application_name: str
    state: str | None  # None: the migrating role may not see other roles' sessions
    since: datetime | None  # when its transaction began
    relation: str | None  # what the migration waited to lock (None: a row or transaction)

    def __str__(self) -> str:
        since = self.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if self.since else ""
        details = [
            self.application_name or "no application_name",
            self.state or "state hidden",
            *([f"transaction open since {since}"] if since else []),
        ]
        return f"pid {self.pid} ({', '.join(details)})"


@dataclass(frozen=True, slots=True)
class LockWait:
    """An attempt at a migration that timed out waiting for a lock."""

    migration_id: str
    attempt: int
    attempts: int
    timeout: float  # seconds it waited: the lock timeout
    holder: LockHolder | None  # None: it ended before it could be seen
    retry_in: float | None  # seconds to the next attempt; None: this was the last

    @property
    def lock(self) -> str:
        """The lock waited for and its holder, as a phrase."""
        if self.holder is None:
            return "a lock whose holder ended before it could be seen"
        on = f" on {self.holder.relation}" if self.holder.relation else ""
        return f"a lock{on} held by {self.holder}"

    def __str__(self) -> str:
        return f"{self.migration_id} waited {self.timeout:g} s for {self.lock}"


RetryCallback = Callable[[LockWait], None]


class MigrationBackend(Protocol):
    """The yoyo backend a migration runs on, as the watcher sees it."""

    migration_pid: int | None  # the server process of the migration being run, once it has one


class _MigrationCursor(psycopg.Cursor[Any]):
    """The cursor yoyo runs a migration's statements on: CONCURRENTLY ones run without
    lock_timeout. They wait holding SHARE UPDATE EXCLUSIVE, which queues no reader or writer,
    for every older transaction (a pg_dump included); a timeout there would leave an INVALID
    index behind, which `IF NOT EXISTS` would then keep."""

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Self:
        if not (isinstance(query, str) and runs_concurrently(query)):
            return super().execute(query, *args, **kwargs)
        # on cursors of their own: this one's result is the statement's, which yoyo prints
        setting = self.connection.execute("SHOW lock_timeout").fetchone()
        self.connection.execute("SET lock_timeout = 0")
        try:
            return super().execute(query, *args, **kwargs)
        finally:  # in a failed transaction (refused: CONCURRENTLY) the rollback restores it
            if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                self.connection.execute("SELECT set_config('lock_timeout', %s, false)", setting)


def limit_lock_waits(connection: psycopg.Connection[Any], lock_timeout: float) -> None:
    """Set `lock_timeout` (seconds) for the session of `connection`, a migration's, so it holds
    inside a migration's transaction and for each statement of a non-transactional one alike."""
    milliseconds = max(1, round(lock_timeout * 1000))  # 0 would mean no timeout
    connection.execute("SELECT set_config('lock_timeout', %s, false)", (f"{milliseconds}ms",))
    connection.cursor_factory = _MigrationCursor


def retrying_lock_timeouts(
    run: Callable[[], None],
    conn: psycopg.Connection[Any],
    backend: MigrationBackend,
    *,
    migration_id: str,
    action: str,
    lock_timeout: float,
    on_retry: RetryCallback | None,
) -> None:
    """Run one migration's apply or rollback (`run`), again after each lock timeout (its
    transaction rolled back, so nothing of it stays) until LOCK_RETRY_BACKOFF runs out.

    The session it waits for is looked up from `conn` while it waits, to be named."""
    waits = [lock_timeout * fraction for fraction in LOCK_RETRY_BACKOFF]
    for attempt, retry_in in enumerate([*waits, None], start=1):
        backend.migration_pid = None
        with _watching(conn, backend, interval=min(0.1, lock_timeout / 5)) as seen:
            try:
                run()
                return
            except psycopg.errors.LockNotAvailable:
                holder = seen[-1] if seen else None
        wait = LockWait(migration_id, attempt, len(waits) + 1, lock_timeout, holder, retry_in)
        if wait.retry_in is None:
            raise MigrationError(_locked_out(action, wait))
        if on_retry:
            on_retry(wait)
        time.sleep(wait.retry_in)


@contextmanager
def _watching(
    conn: psycopg.Connection[Any], backend: MigrationBackend, *, interval: float
) -> Iterator[list[LockHolder]]:
    """The session the migration running on `backend` waits for, looked up from `conn` every
    `interval` seconds: once its statement times out, the wait and its evidence are gone."""
    seen: list[LockHolder] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval):
            if backend.migration_pid is None:
                continue
            try:
                row = conn.execute(LOCK_HOLDER, (backend.migration_pid,)).fetchone()
            except psycopg.Error:
                return  # the migration's own connection fails too, and says why
            if row:
                seen[:] = [LockHolder(*row)]

    watcher = threading.Thread(target=watch, name="migration-lock-watch", daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def _locked_out(action: str, last: LockWait) -> str:
    advice = "try again"
    if last.holder:
        advice = (
            f"end that session with SELECT pg_terminate_backend({last.holder.pid})"
            " or try again once it is done"
        )
    return (
        f"{action} of migration {last.migration_id} gave up after {last.attempts} attempts, each"
        f" waiting {last.timeout:g} s for {last.lock}; its changes were rolled back; {advice}"
    )
