"""Settings from the environment and .env, every problem reported at once.

`DATABASE_URL` and `REDIS_URL` keep their conventional names; every other setting is `APICTL_*`.
`load_settings()` raises `ConfigError` listing every bad variable with an example of a good value.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "APICTL_"
ENV_FILE = ".env"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# What `apictl serve` resolved, as JSON of exactly these fields, for the processes it starts
# (service.process.handover writes it; load_settings reads it, so settings own its format)
HANDOVER_VARIABLE = "APICTL_HANDOVER"
HANDOVER_FIELDS = ("database_url", "redis_url", "host", "port")
PRODUCTION_SHUTDOWN_DELAY = 5.0  # seconds: time for load balancers to take a draining one out
# seconds between a webhook delivery's attempts: Standard Webhooks' schedule
WEBHOOK_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


def parse_duration(text: str | int) -> int:
    """Seconds in a duration such as `90`, `15m`, `24h` or `30d`; ValueError if malformed."""
    if isinstance(text, int):
        return text
    match = _DURATION.match(text)
    if not match:
        raise ValueError("must be a duration like 3600, 90s, 15m, 24h or 30d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `count` events per `period` seconds."""

    count: int
    period: int

    def __str__(self) -> str:
        unit = next(name for name, secs in _PERIOD_SECONDS.items() if secs == self.period)
        return f"{self.count}/{unit}"


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ConfigError(Exception):
    """One or more settings are invalid; `problems` holds one line per bad variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    """Every setting of the service; docs/reference/configuration.md is generated from it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    env: Literal["development", "production"] = Field(
        "development",
        description="`development` or `production` (production refuses embedded servers)",
        examples=["production"],
    )
    host: str = Field("127.0.0.1", description="address to listen on", examples=["0.0.0.0"])
    port: int = Field(8080, ge=1, le=65535, description="port to listen on", examples=[8080])
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info",
        description="lowest level logged: `debug`, `info`, `warning`, `error`, `critical`",
        examples=["info"],
    )
    log_format: Literal["json", "console"] | None = Field(
        None,
        description="`json` or `console`",
        examples=["json"],
        json_schema_extra={"docs_default": "`json` in production, else `console`"},
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma list of allowed origins; empty: no CORS headers",
        examples=["https://app.example.com,https://admin.example.com"],
    )
    cors_allow_credentials: bool = Field(
        False,
        description="send `Access-Control-Allow-Credentials` (refused with `*`)",
        examples=["false"],
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1,
        description="largest request body accepted; a larger one gets 413",
        examples=[1048576],
    )
    body_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds to receive a request body (a slower one gets 408)",
        examples=[30],
    )
    compiled_routes: bool = Field(
        True,
        description="run declared routes from plans made at start-up (false: FastAPI's own"
        " per-request machinery, same answers, slower)",
        examples=[True],
    )
    docs: bool | None = Field(
        None,
        description="serve the API docs (`/docs`, `/redoc`) and `/openapi.json`",
        examples=["false"],
        json_schema_extra={"docs_default": "`false` in production, else `true`"},
    )
    db_pool_min: int = Field(5, ge=0, description="connections kept open per process", examples=[5])
    db_pool_max: int = Field(20, ge=1, description="most connections per process", examples=[20])
    db_acquire_timeout: float = Field(
        3.0, gt=0, description="seconds to wait for a pool connection (then 503)", examples=[3]
    )
    db_idle_timeout: float = Field(
        600.0, gt=0, description="seconds before an idle connection is closed", examples=[600]
    )
    db_max_lifetime: float = Field(
        1800.0, gt=0, description="seconds before a connection is replaced", examples=[1800]
    )
    db_command_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds per statement (also PostgreSQL `statement_timeout`)",
        examples=[10],
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma list of proxy addresses/networks whose `X-Forwarded-For` counts",
        examples=["10.0.0.0/8,127.0.0.1"],
    )
    token_ttl: int = Field(
        86400,
        gt=0,
        description="lifetime of login tokens (`3600`, `90m`, `24h`, `30d`)",
        examples=["24h"],
    )
    open_signup: bool = Field(
        False, description="anyone may create a user (`POST /api/v1/users`)", examples=["false"]
    )
    login_rate_limit: Annotated[RateLimit, NoDecode] = Field(
        RateLimit(10, 60), description="login attempts per IP and email", examples=["10/minute"]
    )
    api_rate_limit: Annotated[RateLimit | None, NoDecode] = Field(
        RateLimit(1200, 60),
        description="requests per caller (token's user, else client address) to the API's"
        " routes (all but login); `off` disables",
        examples=["1200/minute"],
    )
    event_backlog_limit: int = Field(
        100_000,
        ge=0,
        description="events that may wait in the outbox (Redis unreachable) before writes are"
        " refused with 503; 0 = no limit",
        examples=[100_000],
    )
    max_streams: int | None = Field(
        None,
        ge=1,
        description="live event streams (`GET /api/v1/events`) each worker holds at most; a"
        " new one past that, or past what the open-files limit leaves room for, gets 503",
        examples=[10_000],
        json_schema_extra={"docs_default": "unset: as many as the open-files limit allows"},
    )
    shutdown_delay: float | None = Field(
        None,
        ge=0,
        description="seconds a worker keeps serving after SIGTERM, `/ready` answering 503"
        " `draining`, so load balancers take it out before it stops accepting",
        examples=[5],
        json_schema_extra={"docs_default": "`5` in production, else `0`"},
    )
    shutdown_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds in-flight requests, then webhook deliveries, may take to finish once"
        " a worker stops accepting",
        examples=[10],
    )
    max_requests: int | None = Field(
        None,
        ge=1,
        description="replace each worker after about this many requests (needs 2+ workers)",
        examples=[100_000],
        json_schema_extra={"docs_default": "unset: never"},
    )
    max_requests_jitter: int = Field(
        0,
        ge=0,
        description="up to this many more requests, at random per worker, so workers are not"
        " all replaced at once",
        examples=[10_000],
    )
    webhook_timeout: float = Field(
        15.0,
        gt=0,
        allow_inf_nan=False,
        description="seconds a webhook endpoint has to answer a delivery with a 2xx (else it"
        " is tried again later)",
        examples=[15],
    )
    webhook_retry_schedule: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(WEBHOOK_RETRY_SCHEDULE),
        description="comma list of durations between a webhook delivery's attempts (each"
        " +-10 % at random); after the last one the delivery has failed",
        examples=["5s,5m,30m,2h,5h,10h,10h"],
        json_schema_extra={"docs_default": "`5s,5m,30m,2h,5h,10h,10h`"},
    )
    webhook_allow_private: bool = Field(
        False,
        description="let webhooks reach loopback, private, link-local and other non-public"
        " addresses (refused by default: a webhook must not be a way into your network)",
        examples=["false"],
    )
    data_dir: Path = Field(
        Path(".apictl"),
        description="where the embedded PostgreSQL and Redis keep their data",
        examples=[".apictl"],
    )
    migrations_dir: Path | None = Field(
        None,
        description="folder of yoyo SQL migrations",
        json_schema_extra={"docs_default": "the migrations shipped with apictl"},
        examples=["./migrations"],
    )
    migrate_lock_timeout: float = Field(
        5.0,
        gt=0,
        allow_inf_nan=False,
        description="seconds a migration statement may wait for a table lock before it gives"
        " way to the service's queries and is tried again (PostgreSQL `lock_timeout`)",
        examples=[5],
    )
    database_url: str | None = Field(
        None,
        validation_alias="DATABASE_URL",
        description=(
            "PostgreSQL URL: `postgresql://user:password@host:5432/db` (production needs it)"
        ),
        json_schema_extra={"docs_default": "embedded (development)"},
        examples=["postgresql://app:secret@db:5432/app"],
    )
    db_pooler: Literal["none", "transaction"] = Field(
        "none",
        description="`transaction`: DATABASE_URL is a PgBouncer in transaction pooling mode"
        " (no statement cache, each connection block one transaction)",
        examples=["transaction"],
    )
    db_direct_url: str | None = Field(
        None,
        description="PostgreSQL itself, never a pooler: for the migrations' and the event"
        " relay's session locks and LISTEN",
        json_schema_extra={
            "docs_default": "DATABASE_URL (required with APICTL_DB_POOLER=transaction)"
        },
        examples=["postgresql://app:secret@db:5432/app"],
    )
    redis_url: str | None = Field(
        None,
        validation_alias="REDIS_URL",
        description="Redis URL: `redis://host:6379/0` (production needs it)",
        json_schema_extra={"docs_default": "embedded (development)"},
        examples=["redis://redis:6379/0"],
    )

    @field_validator("env", "log_level", "log_format", "db_pooler", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        """APICTL_LOG_LEVEL=DEBUG and APICTL_ENV=Production mean what they say."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("token_ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        if isinstance(value, str):
            steps = [parse_duration(item) for item in _split_commas(value)]
            if not steps:
                raise ValueError("must list at least one duration, like 5s,5m,30m")
            return steps
        return value

    @field_validator("login_rate_limit", "api_rate_limit", mode="before")
    @classmethod
    def _rate(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and info.field_name == "api_rate_limit" and value == "off":
            return None
        if isinstance(value, str):
            match = _RATE.match(value)
            if not match or int(match.group(1)) < 1:
                raise ValueError("must look like 10/minute (per second, minute, hour or day)")
            return RateLimit(int(match.group(1)), _PERIOD_SECONDS[match.group(2)])
        return value

    @field_validator("database_url", "db_direct_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = []
        if self.db_pool_min > self.db_pool_max:
            problems.append("APICTL_DB_POOL_MIN must not exceed APICTL_DB_POOL_MAX")
        if self.max_requests_jitter and self.max_requests is None:
            problems.append("APICTL_MAX_REQUESTS_JITTER needs APICTL_MAX_REQUESTS")
        if "*" in self.cors_origins and self.cors_allow_credentials:
            problems.append(
                "APICTL_CORS_ORIGINS='*' cannot be combined with APICTL_CORS_ALLOW_CREDENTIALS"
            )
        if self.is_production:
            problems += [
                f"{name} is required in production (embedded servers are for development)"
                for name, url in (
                    ("DATABASE_URL", self.database_url),
                    ("REDIS_URL", self.redis_url),
                )
                if url is None
            ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def direct_url(self) -> str | None:
        """Where session-level features (advisory locks, LISTEN) connect: APICTL_DB_DIRECT_URL,
        else DATABASE_URL unless that is a transaction pooler (then None: they must refuse)."""
        if self.db_pooler == "transaction":
            return self.db_direct_url
        return self.db_direct_url or self.database_url

    @property
    def missing_direct_url(self) -> bool:
        """Behind a transaction pooler with no APICTL_DB_DIRECT_URL (known before servers are
        resolved)."""
        return self.db_pooler == "transaction" and self.db_direct_url is None

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format is None and self.is_production)

    @property
    def drain_delay(self) -> float:
        """APICTL_SHUTDOWN_DELAY, or its default for the environment."""
        if self.shutdown_delay is not None:
            return self.shutdown_delay
        return PRODUCTION_SHUTDOWN_DELAY if self.is_production else 0.0

    @property
    def docs_enabled(self) -> bool:
        return self.docs if self.docs is not None else not self.is_production


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def _describe(error: Any) -> str:
    loc = error["loc"]
    msg = str(error["msg"]).removeprefix("Value error, ")
    if not loc:  # a cross-field rule from _consistent: it names its variables itself
        return msg
    field = _FIELD_BY_ALIAS.get(str(loc[0]), str(loc[0]))
    info = Settings.model_fields.get(field)
    name = env_name(field) if info else field
    example = f"; example: {name}={info.examples[0]}" if info and info.examples else ""
    value = error["input"]
    if field in SECRET_FIELDS and isinstance(value, str):
        value = mask_url(value)
    return f"{name}: {msg} (got {value!r}){example}"


_FIELD_BY_ALIAS = {
    info.validation_alias: field
    for field, info in Settings.model_fields.items()
    if isinstance(info.validation_alias, str)
}
SECRET_FIELDS = ("database_url", "db_direct_url", "redis_url")
NO_DIRECT_URL = (
    "APICTL_DB_POOLER=transaction and APICTL_DB_DIRECT_URL is unset: advisory locks and LISTEN"
    " need a direct connection to PostgreSQL"
)
DIRECT_URL_HINT = (
    "set APICTL_DB_DIRECT_URL to PostgreSQL itself (not PgBouncer),"
    " e.g. postgresql://app:secret@db:5432/app"
)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise ConfigError naming every bad variable.

    In a process started by `apictl serve` its hand-over (service.process.handover) comes
    first, then `overrides`.
    """
    try:
        return Settings(**{**handed_over(), **overrides})
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors(include_url=False):
            problems += _describe(error).split("; ") if not error["loc"] else [_describe(error)]
        raise ConfigError(problems) from None


def handed_over() -> dict[str, object]:
    """The fields `apictl serve` handed over, as overrides for `load_settings`; empty when none
    were."""
    text = os.environ.get(HANDOVER_VARIABLE)
    if not text:
        return {}
    handed: dict[str, object] = json.loads(text)
    return {field: value for field, value in handed.items() if field in HANDOVER_FIELDS}


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe to print and log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


def setting_sources(settings: Settings) -> dict[str, str]:
    """Where each setting came from: `env`, `.env` or `default`."""
    environ = {key.upper() for key in os.environ}
    file_keys = (
        {key.upper() for key in dotenv_values(ENV_FILE)} if Path(ENV_FILE).is_file() else set()
    )
    sources = {}
    for field in Settings.model_fields:
        name = env_name(field)
        if name in environ:
            sources[field] = "env"
        elif name in file_keys:
            sources[field] = ".env"
        else:
            sources[field] = "default" if field not in settings.model_fields_set else "argument"
    return sources
