"""Settings: defaults, every bad variable reported at once, secrets masked (through the CLI)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from service.config import ConfigError, RateLimit, Settings, load_settings, mask_url

Apictl = Callable[..., CompletedProcess[str]]


def test_defaults_match_the_spec() -> None:
    settings = load_settings(_env_file=None)
    assert settings.env == "development"
    assert settings.port == 8080
    assert settings.max_body_bytes == 1024 * 1024
    assert (settings.db_pool_min, settings.db_pool_max) == (5, 20)
    assert settings.db_acquire_timeout == 3
    assert settings.db_command_timeout == 10
    assert settings.token_ttl == 24 * 3600
    assert settings.login_rate_limit == RateLimit(10, 60)
    assert settings.shutdown_timeout == 10
    assert settings.migrate_lock_timeout == 5
    assert settings.open_signup is False
    assert settings.cors_origins == []
    assert settings.json_logs is False


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APICTL_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("APICTL_TOKEN_TTL", "30d")
    monkeypatch.setenv("APICTL_LOGIN_RATE_LIMIT", "5/hour")
    monkeypatch.setenv("APICTL_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db/app")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.token_ttl == 30 * 86400
    assert settings.login_rate_limit == RateLimit(5, 3600)
    assert settings.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert settings.database_url == "postgresql://u:pw@db/app"


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {
        "APICTL_PORT": "eighty",
        "APICTL_DB_POOL_MAX": "0",
        "APICTL_LOG_LEVEL": "loud",
        "APICTL_TOKEN_TTL": "forever",
        "APICTL_TRUSTED_PROXIES": "not-an-ip",
        "DATABASE_URL": "mysql://root:topsecret@db/app",
        "APICTL_DB_POOLER": "session",
        "APICTL_DB_DIRECT_URL": "mysql://root:topsecret@db/app",
    }
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    problems = caught.value.problems
    assert len(problems) == len(bad)
    for name in bad:
        assert any(problem.startswith(f"{name}:") for problem in problems), name
    assert all("example:" in problem for problem in problems)
    assert "topsecret" not in str(caught.value)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "inf"])
def test_a_migration_lock_timeout_must_be_a_positive_number_of_seconds(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("APICTL_MIGRATE_LOCK_TIMEOUT", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    [problem] = caught.value.problems
    assert problem.startswith("APICTL_MIGRATE_LOCK_TIMEOUT: ")
    assert problem.endswith(f"(got {value!r}); example: APICTL_MIGRATE_LOCK_TIMEOUT=5")


def test_the_direct_url_is_database_url_unless_behind_a_transaction_pooler() -> None:
    database, direct = "postgresql://app@pgbouncer:6432/app", "postgresql://app@db:5432/app"
    assert Settings(_env_file=None, database_url=database).direct_url == database  # type: ignore[call-arg]
    pooled = Settings(_env_file=None, database_url=database, db_pooler="transaction")  # type: ignore[call-arg]
    assert (pooled.direct_url, pooled.missing_direct_url) == (None, True)
    pooled = pooled.model_copy(update={"db_direct_url": direct})
    assert (pooled.direct_url, pooled.missing_direct_url) == (direct, False)


def test_production_requires_real_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APICTL_ENV", "production")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert "DATABASE_URL is required in production" in text
    assert "REDIS_URL is required in production" in text


def test_production_defaults_to_json_logs() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="production",
        database_url="postgresql://db/app",
        redis_url="redis://cache:6379/0",
    )
    assert settings.json_logs is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"db_pool_min": 30, "db_pool_max": 20}, "APICTL_DB_POOL_MIN must not exceed"),
        ({"cors_origins": ["*"], "cors_allow_credentials": True}, "cannot be combined"),
    ],
)
def test_inconsistent_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_env_file=None, **overrides)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APICTL_PORT=9001\n")  # the test runs in tmp_path
    assert load_settings().port == 9001


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert mask_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert mask_url("postgresql://db/app") == "postgresql://db/app"


def test_check_config_cli_lists_every_problem_and_exits_1(apictl: Apictl) -> None:
    env = {**os.environ, "APICTL_PORT": "0", "REDIS_URL": "http://x", "APICTL_LOG_FORMAT": "xml"}
    result = apictl("check", "config", env=env)
    assert result.returncode == 1
    for name in ("APICTL_PORT", "REDIS_URL", "APICTL_LOG_FORMAT"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_cli_json_shows_sources_and_masks_secrets(
    apictl: Apictl, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("APICTL_PORT=9002\n")
    env = {**os.environ, "DATABASE_URL": "postgresql://app:hunter2@db/app"}
    result = apictl("check", "config", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["variable"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["APICTL_PORT"] == {"variable": "APICTL_PORT", "value": "9002", "source": ".env"}
    assert rows["DATABASE_URL"]["value"] == "postgresql://app:***@db/app"
    assert rows["DATABASE_URL"]["source"] == "env"
    assert rows["APICTL_SHUTDOWN_TIMEOUT"]["source"] == "default"
    assert "hunter2" not in result.stdout
