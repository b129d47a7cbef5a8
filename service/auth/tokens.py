"""Bearer tokens: `apx_` + 256 random bits; only the SHA-256 is stored.

Checking a token costs no database round trip while nothing changed: principals are cached in
process for CACHE_TTL seconds, and every revocation, logout, password change, deactivation or
role change is published on a Redis channel that every instance listens to. The cache is used
only while this process is subscribed: when Redis is unreachable every check goes to the
database, so a missed invalidation can never let a revoked token through.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from service.auth import queries
from service.auth.principal import IssuedToken
from service.auth.principal import Principal as Principal  # re-exported: bench/seed.py
from service.db import Connection, Database
from service.errors import Unauthorized
from service.process.cancellation import stop_if_cancelled

PREFIX = "apx_"
TOKEN_LENGTH = len(PREFIX) + 43  # 32 random bytes in unpadded base64url
CHANNEL = "apictl:tokens:invalidate"
CACHE_TTL = 10.0
CACHE_MAX = 100_000
log = logging.getLogger("apictl.auth")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenCache:
    """digest -> Principal for CACHE_TTL seconds, droppable per token or per user."""

    def __init__(self) -> None:
        self.enabled = False  # only while subscribed to invalidations
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, digest: bytes) -> Principal | None:
        if not self.enabled:
            return None
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, until = entry
        if time.monotonic() > until:
            del self._entries[digest]
            return None
        return principal

    def put(self, digest: bytes, principal: Principal) -> None:
        if not self.enabled:
            return
        if len(self._entries) >= CACHE_MAX:
            self._entries.clear()
        # never beyond the token's own expiry
        remaining = principal.expires_at.timestamp() - time.time()
        self._entries[digest] = (principal, time.monotonic() + min(CACHE_TTL, remaining))

    def drop_token(self, digest: bytes) -> None:
        self._entries.pop(digest, None)

    def drop_user(self, user_id: UUID) -> None:
        for digest in [d for d, (p, _) in self._entries.items() if p.user_id == user_id]:
            del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()


class Tokens:
    """Issue, check and invalidate tokens for one process."""

    def __init__(self, db: Database, redis: Redis) -> None:
        self.db = db
        self.redis = redis
        self.cache = TokenCache()

    async def authenticate(self, token: str) -> Principal:
        """The principal for a bearer token; Unauthorized if malformed, unknown or expired."""
        if len(token) != TOKEN_LENGTH or not token.startswith(PREFIX):
            raise Unauthorized("malformed token")
        digest = token_digest(token)
        principal = self.cache.get(digest)
        if principal is not None:
            return principal
        principal = await self._load(queries.AUTHENTICATE, digest)
        self.cache.put(digest, principal)
        return principal

    async def authenticate_id(self, token_id: UUID) -> Principal:
        """The principal of a live token known by id, from the database (no cache)."""
        return await self._load(queries.AUTHENTICATE_ID, token_id)

    async def _load(self, query: str, key: bytes | UUID) -> Principal:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(query, key)
        if row is None:
            raise Unauthorized("invalid or expired token")
        return Principal(row["user_id"], row["id"], row["is_admin"], row["expires_at"])

    async def issue(
        self, conn: Connection, user_id: UUID, kind: str, name: str, ttl: int
    ) -> IssuedToken:
        token = PREFIX + secrets.token_urlsafe(32)
        row = await conn.fetchrow(
            queries.INSERT_TOKEN, user_id, token_digest(token), kind, name, float(ttl)
        )
        assert row is not None
        return IssuedToken(token, row["id"], row["expires_at"])

    # -- invalidation --------------------------------------------------------------------------

    async def invalidate_token(self, digest: bytes) -> None:
        self.cache.drop_token(digest)
        await self._publish(b"t:" + digest.hex().encode())

    async def invalidate_user(self, user_id: UUID) -> None:
        self.cache.drop_user(user_id)
        await self._publish(b"u:" + str(user_id).encode())

    async def _publish(self, message: bytes) -> None:
        try:
            await self.redis.publish(CHANNEL, message)
        except RedisError as exc:
            # Instances that cannot reach Redis bypass their cache, so they stay correct.
            log.warning("token invalidation not published: %s", type(exc).__name__)

    def _apply(self, message: bytes) -> None:
        kind, _, value = message.partition(b":")
        if kind == b"t":
            self.cache.drop_token(bytes.fromhex(value.decode()))
        elif kind == b"u":
            self.cache.drop_user(UUID(value.decode()))

    async def listen(self) -> None:
        """Apply invalidations from every instance; run for the life of the process."""
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self.cache.clear()  # anything published while we were away is lost
                self.cache.enabled = True
                backoff = 0.1
                log.info("token cache on: subscribed to invalidations")
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                    if message is not None:
                        self._apply(message["data"])
            except (RedisError, OSError) as exc:
                stop_if_cancelled(exc)
                if self.cache.enabled:
                    log.warning("token cache off, checking tokens in the database: %s", exc)
                await _close_quietly(pubsub)
            finally:
                # No await here: on cancellation (shutdown) the task must end at once; the
                # pool closing right after disconnects the subscriber's connection.
                self.cache.enabled = False
                self.cache.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


async def _close_quietly(pubsub: PubSub) -> None:
    """Close, but never wait long: this also runs while the task is being cancelled."""
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(1):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
