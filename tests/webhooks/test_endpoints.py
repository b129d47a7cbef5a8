"""Managing webhook endpoints: `apictl webhooks` and the admin API, and what they refuse."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fixtures.accounts import Account
from service.app import create_app
from service.config import Settings

Apictl = Callable[..., Any]


@pytest.fixture
def cli(apictl: Apictl, hook_env: dict[str, str]) -> Callable[..., Any]:
    return lambda *args: apictl("webhooks", *args, env=hook_env)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    private = settings.model_copy(update={"webhook_allow_private": True})
    with TestClient(create_app(private)) as test_client:
        yield test_client


def listed(cli: Callable[..., Any]) -> list[dict[str, Any]]:
    shown = cli("list", "--json")
    assert shown.returncode == 0, shown.stderr
    hooks: list[dict[str, Any]] = json.loads(shown.stdout)
    return hooks


def test_add_prints_the_secret_once_and_list_never_shows_it(cli: Callable[..., Any]) -> None:
    added = cli("add", "http://127.0.0.1:9/in", "--events", "post.created,post.deleted")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    assert len(secret) >= len("whsec_") + 32  # base64 of 32 bytes
    assert "shown only this once" in added.stderr
    [hook] = listed(cli)
    assert hook["events"] == ["post.created", "post.deleted"]
    assert hook["enabled"] is True
    assert secret not in cli("list", "--json").stdout + cli("list").stdout
    assert "secret" not in hook


def test_disable_enable_and_remove(cli: Callable[..., Any]) -> None:
    hook_id = json.loads(cli("add", "http://127.0.0.1:9/in", "--json").stdout)["id"]
    assert cli("disable", hook_id).returncode == 0
    [hook] = listed(cli)
    assert (hook["enabled"], hook["disabled_reason"]) == (False, "disabled by an admin")
    assert cli("enable", hook_id).returncode == 0
    [hook] = listed(cli)
    assert (hook["enabled"], hook["disabled_reason"]) == (True, None)
    assert cli("remove", hook_id).returncode == 0
    assert listed(cli) == []


def test_bad_input_is_one_line_and_writes_nothing(cli: Callable[..., Any]) -> None:
    unknown = cli("add", "http://127.0.0.1:9/in", "--events", "post.created,post.exploded")
    assert unknown.returncode == 1
    assert "unknown event type 'post.exploded'" in unknown.stderr
    assert "post.created" in unknown.stderr  # the known ones are listed
    for url, why in [
        ("ftp://example.com/x", "http:// or https://"),
        ("not a url", "http:// or https://"),
        ("https://user:pw@example.com/x", "credentials"),
    ]:
        refused = cli("add", url)
        assert refused.returncode == 2, refused.stderr
        assert why in refused.stderr
        assert "Traceback" not in refused.stderr
    assert listed(cli) == []
    assert cli("add", "http://127.0.0.1:9/in").returncode == 0
    duplicate = cli("add", "http://127.0.0.1:9/in")
    assert duplicate.returncode == 1
    assert "exists already" in duplicate.stderr
    missing = "00000000-0000-0000-0000-000000000000"
    for command in ("disable", "enable", "rotate-secret", "remove", "deliveries"):
        gone = cli(command, missing)
        assert gone.returncode == 1, command
        assert f"no webhook {missing}" in gone.stderr
    assert cli("disable", "not-an-id").returncode == 2
    hook_id = listed(cli)[0]["id"]
    bad_since = cli("replay", hook_id, "--since", "yesterday")
    assert bad_since.returncode == 1
    assert "not an event id" in bad_since.stderr
    assert len(listed(cli)) == 1


def test_private_addresses_are_refused_unless_allowed(
    apictl: Apictl, server_env: dict[str, str]
) -> None:
    for url, kind in [
        ("http://127.0.0.1:8080/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://10.1.2.3/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/x", "loopback"),
        ("http://0.0.0.0/x", "unspecified"),
        ("http://224.0.0.1/x", "multicast"),
    ]:
        refused = apictl("webhooks", "add", url, env=server_env)
        assert refused.returncode == 1, url
        assert f"a {kind} address" in refused.stderr, refused.stderr
        assert "APICTL_WEBHOOK_ALLOW_PRIVATE" in refused.stderr
    listed_ = apictl("webhooks", "list", "--json", env=server_env)
    assert json.loads(listed_.stdout) == []


def test_the_admin_api_manages_endpoints(api: TestClient, admin: Account, alice: Account) -> None:
    base = "/api/v1/webhooks"
    new = {"url": "http://127.0.0.1:9/in", "events": ["post.created"], "description": "crm"}
    assert api.post(base, json=new, headers=alice.headers).status_code == 403
    created = api.post(base, json=new, headers=admin.headers)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    item = f"{base}/{hook['id']}"
    shown = api.get(item, headers=admin.headers).json()
    assert "secret" not in shown
    assert shown["description"] == "crm"
    assert [h["id"] for h in api.get(base, headers=admin.headers).json()] == [hook["id"]]
    changed = api.patch(item, json={"enabled": False, "events": None}, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["enabled"], changed.json()["events"]) == (False, None)
    rotated = api.post(f"{item}/secret", headers=admin.headers).json()
    assert rotated["secret"] != hook["secret"]
    assert rotated["previous_valid_until"] is not None
    assert api.get(f"{item}/deliveries", headers=admin.headers).json() == []
    assert api.delete(item, headers=admin.headers).status_code == 204
    assert api.get(item, headers=admin.headers).status_code == 404


def test_the_admin_api_refuses_bad_input(api: TestClient, admin: Account) -> None:
    base = "/api/v1/webhooks"
    url = "http://127.0.0.1:9/in"
    unknown = api.post(base, json={"url": url, "events": ["nope.nope"]}, headers=admin.headers)
    assert unknown.status_code == 422
    assert "unknown event type" in unknown.json()["error"]
    assert api.post(base, json={"url": "ftp://x/"}, headers=admin.headers).status_code == 422
    assert api.post(base, json={"url": url, "extra": 1}, headers=admin.headers).status_code == 422
    assert api.get(base, headers=admin.headers).json() == []
    assert api.post(base, json={"url": url}, headers=admin.headers).status_code == 201
    duplicate = api.post(base, json={"url": url}, headers=admin.headers)
    assert duplicate.status_code == 409
    missing = f"{base}/00000000-0000-0000-0000-000000000000"
    assert api.get(missing, headers=admin.headers).status_code == 404
    assert api.patch(missing, json={"enabled": True}, headers=admin.headers).status_code == 404
    assert api.delete(missing, headers=admin.headers).status_code == 404
