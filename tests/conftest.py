"""pytest, a folder per package, on real PostgreSQL and Redis (shared helpers: fixtures/).

`APICTL_TEST_DATABASE_URL` / `APICTL_TEST_REDIS_URL` select existing servers (the Redis database
given is flushed after each test); otherwise the embedded servers are started in a temporary
directory. Each test gets its own database, cloned from a template in milliseconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx2
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from fixtures.accounts import PASSWORD, Account
from fixtures.browser import headless_chromium
from fixtures.pgbouncer import PgBouncer, running_pgbouncer
from fixtures.servers import APICTL, RunningServer, Servers, free_port, with_database
from service.app import create_app
from service.auth.passwords import Passwords
from service.config import Settings, load_settings
from service.ops.migrations import Migrator
from service.process.embedded import detach, start_postgres, start_redis

if TYPE_CHECKING:
    from selenium import webdriver

TEMPLATE_DB = f"apictl_template_{os.getpid()}"


def _admin(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    return free_port()


@pytest.fixture
def drop_database(servers: Servers) -> Callable[[str], None]:
    """Drop a test database out from under the service (a database outage)."""

    def drop(url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        _admin(servers.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return drop


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    data_dir = tmp_path_factory.mktemp("servers")
    pg = os.environ.get("APICTL_TEST_DATABASE_URL") or start_postgres(data_dir)
    rd = os.environ.get("APICTL_TEST_REDIS_URL") or start_redis(data_dir)
    _admin(pg, f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"', f'CREATE DATABASE "{TEMPLATE_DB}"')
    template = load_settings(_env_file=None, database_url=with_database(pg, TEMPLATE_DB))
    Migrator(template).up()  # every test database starts fully migrated
    yield Servers(pg, rd)
    _admin(pg, f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    detach(data_dir)  # stop any embedded servers now rather than trusting interpreter exit


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No APICTL_* / DATABASE_URL / REDIS_URL / OTEL_* of the developer's shell leaks into a
    test."""
    for name in list(os.environ):
        upper = name.upper()
        if (
            upper in ("DATABASE_URL", "REDIS_URL")
            or upper.startswith("OTEL_")
            or (upper.startswith("APICTL_") and not upper.startswith("APICTL_TEST_"))
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env, and .apictl/ lands in the test's own directory


@contextlib.contextmanager
def _fresh_database(servers: Servers, template: str) -> Iterator[str]:
    name = f"apictl_test_{uuid.uuid4().hex[:12]}"
    _admin(servers.postgres_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield with_database(servers.postgres_url, name)
    _admin(servers.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(servers: Servers) -> Iterator[str]:
    """A fully migrated database of this test's own, cloned from the template."""
    with _fresh_database(servers, TEMPLATE_DB) as url:
        yield url


@pytest.fixture
def empty_database_url(servers: Servers) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    with _fresh_database(servers, "template0") as url:
        yield url


@pytest.fixture
def redis_url(servers: Servers) -> Iterator[str]:
    yield servers.redis_url
    client = redis.Redis.from_url(servers.redis_url)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def pgbouncer(servers: Servers) -> Iterator[PgBouncer]:
    """A real PgBouncer in transaction mode in front of the test PostgreSQL (fixtures/
    pgbouncer.py); skipped without it, except in CI."""
    with running_pgbouncer(servers.postgres_url) as bouncer:
        yield bouncer


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path / ".apictl",
        db_pool_min=1,
        db_pool_max=5,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def apictl_path() -> str:
    """The installed `apictl` console script."""
    return APICTL


@pytest.fixture
def apictl() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `apictl` entry point: `apictl("check", "config", env={...})`."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [APICTL, *args],
            env=env if env is not None else dict(os.environ),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def server_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Environment for an `apictl` subprocess using this test's database and Redis."""
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start `apictl serve` on a free port (or `port`, to restart a server where it was) and
    wait until /health answers (at most 30 s)."""
    started: list[RunningServer] = []

    def start(
        env: dict[str, str], *args: str, wait: float = 30, port: int | None = None
    ) -> RunningServer:
        port = port or free_port()
        log = tmp_path / f"server-{len(started)}-{port}.log"  # a restart keeps the first log
        with log.open("w") as output:
            process = subprocess.Popen(
                [APICTL, "serve", "--port", str(port), *args],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        server = RunningServer(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"apictl serve exited early:\n{log.read_text()}")
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(f"{server.url}/health", timeout=1).status_code == 200:
                    return server
            time.sleep(0.1)
        raise AssertionError(f"apictl serve did not answer /health within {wait} s")

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium that reaches only loopback (fixtures/browser.py); skipped without
    Chromium, except in CI."""
    driver = headless_chromium(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


@pytest.fixture
def password() -> str:
    """The password of every make_account() user."""
    return PASSWORD


@pytest.fixture(scope="session")
def password_hash() -> str:
    """PASSWORD hashed with the service's own parameters (hashing once saves seconds)."""
    passwords = Passwords()
    try:
        return passwords.hasher.hash(PASSWORD)
    finally:
        passwords.close()


@pytest.fixture
def make_account(database_url: str, password_hash: str) -> Callable[..., Account]:
    """make_account("a@example.com", admin=True): a user (password PASSWORD) and a token."""

    def make(email: str, *, admin: bool = False) -> Account:
        token = "apx_" + secrets.token_urlsafe(32)
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO users (email, name, password_hash, is_admin)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (email, email.split("@")[0], password_hash, admin),
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO api_tokens (user_id, token_hash, kind, name, expires_at)"
                " VALUES (%s, %s, 'api', 'test', now() + interval '1 day')",
                (row[0], hashlib.sha256(token.encode()).digest()),
            )
        return Account(str(row[0]), email, token)

    return make


@pytest.fixture
def alice(make_account: Callable[..., Account]) -> Account:
    return make_account("alice@example.com")


@pytest.fixture
def bob(make_account: Callable[..., Account]) -> Account:
    return make_account("bob@example.com")


@pytest.fixture
def admin(make_account: Callable[..., Account]) -> Account:
    return make_account("root@example.com", admin=True)
