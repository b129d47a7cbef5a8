"""Stream tickets: how a browser's EventSource, which cannot send a header, authenticates.

`POST /api/v1/events/ticket` (with a token) gives a ticket for `GET /api/v1/events?ticket=...`,
good for TICKET_SECONDS (reconnects included: EventSource reuses its URL) and never beyond its
token. Like tokens, only a SHA-256 of the ticket is stored: in Redis (which the stream needs
anyway), shared by every instance and surviving a restart, expiring by itself, mapping to the id
of the token that made it. Each use loads that token from the database, so a ticket dies the
moment its token does (logout, revocation, expiry, a deactivated user) on every instance.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

from redis.exceptions import RedisError

from service.auth.principal import Principal
from service.errors import ServiceUnavailable, Unauthorized
from service.events.schemas import StreamTicket
from service.runtime import Runtime

PREFIX = "apxt_"
TICKET_LENGTH = len(PREFIX) + 43  # 32 random bytes in unpadded base64url
TICKET_SECONDS = 300
KEY_PREFIX = "apictl:ticket:"
INVALID = "invalid or expired ticket"
UNAVAILABLE = "the event stream is unavailable (Redis)"


def ticket_key(ticket: str) -> str:
    """The Redis key of a ticket: its SHA-256, never the ticket itself."""
    return KEY_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


async def issue(rt: Runtime, principal: Principal) -> StreamTicket:
    """A new ticket for the token of `principal`."""
    ticket = PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires_at = min(now + timedelta(seconds=TICKET_SECONDS), principal.expires_at)
    ttl_ms = max(1, int((expires_at - now).total_seconds() * 1000))
    try:
        await rt.redis.set(ticket_key(ticket), str(principal.token_id), px=ttl_ms)
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable(UNAVAILABLE) from exc
    return StreamTicket(ticket=ticket, expires_at=expires_at)


async def redeem(rt: Runtime, ticket: str) -> Principal:
    """The principal a ticket stands for; Unauthorized if unknown, expired or its token ended."""
    if len(ticket) != TICKET_LENGTH or not ticket.startswith(PREFIX):
        raise Unauthorized(INVALID)
    try:
        found = await rt.redis.get(ticket_key(ticket))
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable(UNAVAILABLE) from exc
    if found is None:
        raise Unauthorized(INVALID)
    token_id = UUID(found.decode() if isinstance(found, bytes) else found)
    try:
        return await rt.tokens.authenticate_id(token_id)
    except Unauthorized:
        raise Unauthorized(INVALID) from None
