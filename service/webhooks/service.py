"""Webhook endpoints, shared by the admin API and `apictl webhooks`: one place for their rules.

An endpoint receives every event of the types it lists (none listed: every type) while it is
enabled. Its secret is shown when it is added and when it is rotated, never again; after a
rotation the previous secret keeps signing beside the new one for ROTATION_OVERLAP_SECONDS, so
receivers can switch without losing a message.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.backend import Backend
from service.errors import Conflict, NotFound, ValidationFailed
from service.events import outbox
from service.webhooks import addresses, message, queries
from service.webhooks.schemas import (
    CreatedWebhook,
    Delivery,
    NewSecret,
    NewWebhook,
    Replayed,
    Webhook,
    WebhookChanges,
)

ROTATION_OVERLAP_SECONDS = 24 * 3600
RECENT_DELIVERIES = 50


def _check_types(events: list[str] | None) -> list[str] | None:
    """The event types as given (deduplicated), or ValidationFailed naming an unknown one."""
    if events is None:
        return None
    known = outbox.declared_types()
    for event_type in events:
        if event_type not in known:
            raise ValidationFailed(
                f"events: unknown event type {event_type!r} (known: {', '.join(known)})"
            )
    if not events:
        raise ValidationFailed("events: list at least one event type, or leave it out for all")
    return list(dict.fromkeys(events))


async def add_webhook(rt: Backend, new: NewWebhook) -> CreatedWebhook:
    """A new endpoint and its secret; Conflict if one has this URL already."""
    events = _check_types(new.events)
    await addresses.check(new.url, rt.settings.webhook_allow_private)
    secret = message.new_secret()
    try:
        async with rt.db.connection() as conn:
            row = await conn.fetchrow(queries.INSERT, new.url, events, new.description, secret)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a webhook for {new.url} exists already") from None
    assert row is not None
    return CreatedWebhook(**dict(row), secret=secret)


async def list_webhooks(rt: Backend) -> list[Webhook]:
    async with rt.db.connection() as conn:
        rows = await conn.fetch(queries.LIST)
    return [Webhook(**dict(row)) for row in rows]


async def get_webhook(rt: Backend, webhook_id: UUID) -> Webhook:
    async with rt.db.connection() as conn:
        row = await conn.fetchrow(queries.GET, webhook_id)
    if row is None:
        raise NotFound(f"no webhook {webhook_id}")
    return Webhook(**dict(row))


async def update_webhook(rt: Backend, webhook_id: UUID, changes: WebhookChanges) -> Webhook:
    """Apply `changes` (enable, disable, URL, event types, description)."""
    given = changes.model_fields_set
    events = _check_types(changes.events) if "events" in given else None
    if changes.url is not None:
        await addresses.check(changes.url, rt.settings.webhook_allow_private)
    args = (changes.url, events, changes.description, changes.enabled, "events" in given)
    try:
        async with rt.db.connection() as conn:
            row = await conn.fetchrow(queries.UPDATE, webhook_id, *args)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a webhook for {changes.url} exists already") from None
    if row is None:
        raise NotFound(f"no webhook {webhook_id}")
    return Webhook(**dict(row))


async def rotate_secret(rt: Backend, webhook_id: UUID) -> NewSecret:
    """A new secret; the one it replaces signs too for ROTATION_OVERLAP_SECONDS."""
    secret = message.new_secret()
    async with rt.db.connection() as conn:
        row = await conn.fetchrow(queries.ROTATE, webhook_id, secret, ROTATION_OVERLAP_SECONDS)
    if row is None:
        raise NotFound(f"no webhook {webhook_id}")
    return NewSecret(id=row["id"], secret=secret, previous_valid_until=row["previous_until"])


async def remove_webhook(rt: Backend, webhook_id: UUID) -> None:
    """Remove the endpoint and its deliveries (pending ones are not sent)."""
    async with rt.db.connection() as conn:
        if await conn.fetchval(queries.DELETE, webhook_id) is None:
            raise NotFound(f"no webhook {webhook_id}")


async def recent_deliveries(
    rt: Backend, webhook_id: UUID | None = None, limit: int = RECENT_DELIVERIES
) -> list[Delivery]:
    """The newest deliveries, of one endpoint or of all."""
    if webhook_id is not None:
        await get_webhook(rt, webhook_id)
    async with rt.db.connection() as conn:
        rows = await conn.fetch(queries.DELIVERIES, webhook_id, limit)
    return [Delivery(**dict(row)) for row in rows]


async def replay(rt: Backend, webhook_id: UUID, since: str) -> Replayed:
    """Deliver again, to this endpoint, every event of its types kept after event `since`
    (those delivered or failed start over; the Stream keeps the newest events only)."""
    endpoint = await get_webhook(rt, webhook_id)
    kept, truncated = await rt.events.history(since)
    wanted = [e for e in kept if endpoint.events is None or e.type in endpoint.events]
    ids = [e.id for e in wanted]
    types = [e.type for e in wanted]
    bodies = [message.body(e.id, e.type, e.data) for e in wanted]
    async with rt.db.connection() as conn:
        await conn.execute(queries.REPLAY, webhook_id, ids, types, bodies)
    return Replayed(endpoint_id=webhook_id, queued=len(wanted), truncated=truncated)
