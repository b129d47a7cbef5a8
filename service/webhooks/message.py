"""What a webhook sends: the body of an event, and the Standard Webhooks headers that sign it.

The body is made once, when the event reaches the deliveries (the same bytes on every retry):
`{"type": ..., "timestamp": ..., "data": ...}`, the data exactly as the event stream carries it,
the timestamp the event's own (from its id: the Stream's milliseconds). Signing is the
`standardwebhooks` library's: receivers verify with the same code.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

import orjson
from standardwebhooks.webhooks import Webhook

from service import __version__

SECRET_PREFIX = "whsec_"  # noqa: S105 (the form of a secret, not one)
SECRET_BYTES = 32
USER_AGENT = f"apictl/{__version__}"


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (Standard Webhooks' form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def event_time(event_id: str) -> datetime:
    """When the event was appended to the Stream (its id's milliseconds)."""
    return datetime.fromtimestamp(int(event_id.partition("-")[0]) / 1000, UTC)


def body(event_id: str, event_type: str, data: str) -> str:
    """The JSON body of one event's deliveries (`data`: the event's JSON, kept as it is)."""
    stamp = event_time(event_id).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f'{{"type":{orjson.dumps(event_type).decode()},"timestamp":"{stamp}","data":{data}}}'


def headers(event_id: str, payload: str, signing: list[str], now: datetime) -> dict[str, str]:
    """The headers of one attempt: signed with every secret in `signing` (two while a rotated
    secret still signs), space-separated as the spec has it."""
    signatures = " ".join(Webhook(secret).sign(event_id, now, payload) for secret in signing)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
