"""`apictl user` and `apictl token` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

Apictl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def env(server_env: dict[str, str]) -> dict[str, str]:
    return server_env


@pytest.fixture
def cli(apictl_path: str, env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """apictl with this test's database, and optionally something on stdin."""

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [apictl_path, *args], input=stdin, env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    return run


def users(cli: Apictl) -> dict[str, dict[str, Any]]:
    result = cli("user", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {user["email"]: user for user in json.loads(result.stdout)}


def test_create_show_and_list(cli: Apictl) -> None:
    created = cli(
        "user", "create", "--email", "Ada@Example.com", "--name", " Ada ", "--admin",
        "--password-stdin", stdin="analytical engine\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created ada@example.com" in created.stdout
    shown = json.loads(cli("user", "show", "ADA@example.com", "--json").stdout)
    assert (shown["email"], shown["name"], shown["is_admin"]) == ("ada@example.com", "Ada", True)
    assert "password" not in json.dumps(shown)
    assert set(users(cli)) == {"ada@example.com"}


def test_duplicate_email_exits_1(cli: Apictl) -> None:
    args = ["user", "create", "--email", "a@example.com", "--name", "A", "--password-stdin"]
    assert cli(*args, stdin="password one\n").returncode == 0
    again = cli(*args[:2], "--email", "A@EXAMPLE.COM", *args[4:], stdin="password two\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_invalid_input_exits_2_and_creates_nothing(cli: Apictl) -> None:
    result = cli(
        "user", "create", "--email", "nope", "--name", "", "--password-stdin", stdin="short\n"
    )
    assert result.returncode == 2
    for field in ("email:", "name:", "password:"):
        assert field in result.stderr
    assert users(cli) == {}


def test_prompted_password_must_be_typed_twice(cli: Apictl) -> None:
    mismatch = cli(
        "user", "create", "--email", "p@example.com", "--name", "P",
        stdin="first password\nsecond password\nfirst password\nfirst password\n",
    )  # fmt: skip
    assert mismatch.returncode == 0, mismatch.stderr
    assert "do not match" in (mismatch.stdout + mismatch.stderr).lower()
    assert "first password" not in mismatch.stdout  # hidden input is never echoed


def test_ensure_reports_created_unchanged_updated(cli: Apictl) -> None:
    base = ["user", "ensure", "--email", "ops@example.com", "--name", "Ops", "--password-stdin"]
    assert cli(*base, stdin="bootstrap pw\n").stdout.startswith("created")
    assert cli(*base, stdin="bootstrap pw\n").stdout.startswith("unchanged")
    assert cli("user", "ensure", "--email", "ops@example.com", "--name", "Ops").stdout.startswith(
        "unchanged"
    )
    renamed = cli("user", "ensure", "--email", "ops@example.com", "--name", "Ops Team", "--admin")
    assert renamed.returncode == 0
    assert renamed.stdout.startswith("updated")
    assert users(cli)["ops@example.com"]["is_admin"] is True
    assert cli(*base, stdin="another password\n").stdout.startswith("updated")
    missing = cli("user", "ensure", "--email", "new@example.com", "--name", "New")
    assert missing.returncode == 1
    assert "password" in missing.stderr


def test_tokens_are_shown_once_and_work_until_revoked(
    cli: Apictl, start_server: Callable[..., Any], env: dict[str, str]
) -> None:
    cli("user", "create", "--email", "bot@example.com", "--name", "Bot", "--password-stdin",
        stdin="robot password\n")  # fmt: skip
    created = cli("token", "create", "bot@example.com", "--name", "deploy", "--ttl", "7d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("apx_")
    assert "\n" not in token
    assert "shown only this once" in created.stderr

    listed = json.loads(cli("token", "list", "bot@example.com", "--json").stdout)
    assert len(listed) == 1
    assert listed[0]["name"] == "deploy"
    assert listed[0]["kind"] == "api"
    assert token not in json.dumps(listed)

    server = start_server(env)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx2.get(f"{server.url}/api/v1/users/me", headers=headers).status_code == 200
    revoked = cli("token", "revoke", listed[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert httpx2.get(f"{server.url}/api/v1/users/me", headers=headers).status_code == 401
    assert json.loads(cli("token", "list", "--json").stdout) == []

    again = cli("token", "revoke", listed[0]["id"])
    assert again.returncode == 1
    assert "not found" in again.stderr
    assert cli("token", "revoke", "not-a-uuid").returncode == 2
    assert cli("token", "create", "bot@example.com", "--ttl", "soon").returncode == 2


def test_set_password_and_deactivation_revoke_tokens(cli: Apictl) -> None:
    cli("user", "create", "--email", "c@example.com", "--name", "C", "--password-stdin",
        stdin="first password\n")  # fmt: skip
    cli("token", "create", "c@example.com")
    assert len(json.loads(cli("token", "list", "--json").stdout)) == 1
    assert cli("user", "set-password", "c@example.com", "--password-stdin",
               stdin="second password\n").returncode == 0  # fmt: skip
    assert json.loads(cli("token", "list", "--json").stdout) == []
    cli("token", "create", "c@example.com")
    assert cli("user", "update", "c@example.com", "--inactive").returncode == 0
    assert json.loads(cli("token", "list", "--json").stdout) == []
    assert users(cli)["c@example.com"]["is_active"] is False
    assert cli("user", "update", "c@example.com").returncode == 2  # nothing to change


def test_delete_needs_confirmation_or_yes(cli: Apictl) -> None:
    cli("user", "create", "--email", "d@example.com", "--name", "D", "--password-stdin",
        stdin="delete me please\n")  # fmt: skip
    declined = cli("user", "delete", "d@example.com", stdin="n\n")
    assert declined.returncode == 1
    assert "d@example.com" in users(cli)
    assert cli("user", "delete", "d@example.com", "--yes").returncode == 0
    assert users(cli) == {}
    gone = cli("user", "delete", "d@example.com", "--yes")
    assert gone.returncode == 1
    assert "no user with email d@example.com" in gone.stderr


def test_commands_before_migrate_say_so(apictl: Apictl, empty_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = apictl("user", "list", env=env)
    assert result.returncode == 1
    assert "apictl migrate" in result.stderr
