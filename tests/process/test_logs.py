"""What the service writes to its log: the documented JSON access fields, and never a secret.

The server runs at DEBUG with JSON logs, a password in DATABASE_URL, and goes through logins
(right and wrong), token use, bad tokens, invalid bodies carrying the password, logout, and a
database outage with its tracebacks; nothing secret may appear anywhere in what it wrote.
The access fields are those of docs/operations/observability.md.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import httpx2

from fixtures.accounts import Account
from fixtures.servers import DB_PASSWORD, RunningServer, with_password

ACCESS_FIELDS = {"ts", "level", "msg", "request_id", "method", "route", "status", "duration_ms"}


def test_secrets_never_reach_the_log(
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    password: str,
    drop_database: Callable[[str], None],
    apictl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    env = {
        **server_env,
        "DATABASE_URL": with_password(server_env["DATABASE_URL"]),
        "APICTL_LOG_FORMAT": "json",
        "APICTL_LOG_LEVEL": "DEBUG",
    }
    server = start_server(env)
    api = f"{server.url}/api/v1"
    login = httpx2.post(f"{api}/auth/login", json={"email": alice.email, "password": password})
    token = login.json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    httpx2.post(f"{api}/auth/login", json={"email": alice.email, "password": "wrong-" + password})
    httpx2.post(f"{api}/auth/login", json={"email": alice.email, "password": password, "x": 1})
    httpx2.post(f"{api}/auth/login", content=f'{{"password": "{password}"', headers=bearer)
    httpx2.get(f"{api}/users/me", headers=bearer)
    httpx2.get(f"{api}/users/me", headers={"Authorization": f"Bearer {token}x"})
    httpx2.get(f"{api}/users/me", headers=alice.headers)
    httpx2.post(f"{api}/auth/logout", headers=bearer)
    httpx2.get(f"{api}/users/me", headers=bearer)  # revoked now
    api_token = apictl("token", "create", alice.email, env=env)
    assert api_token.returncode == 0, api_token.stderr
    created = api_token.stdout.split("apx_", 1)[1].split()[0]
    drop_database(server_env["DATABASE_URL"])  # outage: errors with tracebacks, 503s
    for _ in range(3):
        assert httpx2.get(f"{api}/users/me", headers=alice.headers).status_code == 503
    assert httpx2.get(f"{server.url}/ready").status_code == 503

    _, output = server.stop()
    output += api_token.stderr
    assert "Traceback" in output or '"exc"' in output, "the outage should have logged errors"
    for secret in (password, token, alice.token, "apx_" + created, DB_PASSWORD, "Bearer "):
        assert secret not in output, f"{secret[:12]}... reached the log"


def test_access_lines_carry_the_documented_fields(
    start_server: Callable[..., RunningServer], server_env: dict[str, str], alice: Account
) -> None:
    server = start_server({**server_env, "APICTL_LOG_FORMAT": "json"})
    me = httpx2.get(
        f"{server.url}/api/v1/users/me", headers={**alice.headers, "X-Request-ID": "who-1"}
    )
    assert me.status_code == 200
    _, output = server.stop()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = next(line for line in lines if line.get("request_id") == "who-1")
    assert access.keys() >= {*ACCESS_FIELDS, "user_id"}
    assert access["route"] == "/api/v1/users/me"
    assert access["user_id"] == alice.id
    assert access["status"] == 200
    assert isinstance(access["duration_ms"], float | int)
