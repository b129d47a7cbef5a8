"""Webhook shapes at the boundaries (HTTP bodies, CLI arguments) and the rules for their fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from service.validation import STRICT_BODY, no_nul

MAX_URL = 2000


def check_url(value: str) -> str:
    """An absolute http(s) URL with a host, <= 2,000 characters, no credentials or fragment."""
    url = no_nul(value).strip()
    if len(url) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (put a token in the path or query)")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return url


def check_description(value: str) -> str:
    text = no_nul(value).strip()
    if len(text) > 500:
        raise ValueError("must be at most 500 characters")
    return text


Url = Annotated[str, AfterValidator(check_url)]
Description = Annotated[str, AfterValidator(check_description)]
EventTypes = Annotated[
    list[str] | None,
    Field(description="Event types to receive (`post.created`, ...); none listed: every type"),
]


class NewWebhook(BaseModel):
    """POST /api/v1/webhooks and `apictl webhooks add`."""

    model_config = STRICT_BODY
    url: Url
    events: EventTypes = None
    description: Description = ""


class WebhookChanges(BaseModel):
    """PATCH /api/v1/webhooks/{id}: only the fields given change."""

    model_config = STRICT_BODY
    url: Url | None = None
    events: EventTypes = None
    description: Description | None = None
    enabled: bool | None = None


class Webhook(BaseModel):
    """An endpoint as the API shows it: never its secret."""

    id: UUID
    url: str
    events: list[str] | None = Field(description="None: every event type")
    description: str
    enabled: bool
    disabled_reason: str | None = Field(description="Why it was disabled, when it was")
    failing_since: datetime | None = Field(description="Since when every delivery failed")
    created_at: datetime


class NewSecret(BaseModel):
    """A secret, shown this once: sign-checking code needs it (`whsec_` + base64)."""

    id: UUID
    secret: str
    previous_valid_until: datetime | None = Field(
        None, description="When the secret this one replaces stops signing too"
    )


class CreatedWebhook(Webhook):
    """The endpoint just added, with its secret: the only time the secret is shown."""

    secret: str


class Delivery(BaseModel):
    """One event's delivery to one endpoint: what `webhooks deliveries` shows."""

    id: int
    endpoint_id: UUID
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="None once delivered or failed")
    last_attempt_at: datetime | None
    last_status: int | None = Field(description="The HTTP status of the last attempt")
    last_error: str | None
    created_at: datetime


class Replayed(BaseModel):
    """What `webhooks replay` queued."""

    endpoint_id: UUID
    queued: int
    truncated: bool = Field(description="Events after `since` are no longer kept: not all replayed")
