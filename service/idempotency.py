"""Idempotency-Key storage: the first answer to a key, replayed to its retries for 24 hours.

One row per (caller, method, path, key), in PostgreSQL so that every instance shares it and a
restart keeps it. A request claims its key with one INSERT (exactly one of any number of
concurrent retries wins); the winner's answer is stored unless it is a 5xx, which releases the
key for a retry. A claim whose request died with its process is taken over after 60 s.
Expired rows are never used, and every serving process deletes them every SWEEP_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from service.db import Database
from service.errors import ServiceUnavailable

SWEEP_SECONDS = 60.0
log = logging.getLogger("apictl.idempotency")

# Kept 24 hours; a claim whose request died is taken over after 60 s (longer than any request
# may run: statement and body timeouts).
CLAIM = """
INSERT INTO idempotency_keys AS k (caller, method, path, key, fingerprint, locked_until, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + interval '60 seconds', now() + interval '24 hours')
ON CONFLICT (caller, method, path, key) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint, status = NULL, content_type = NULL, body = NULL,
    locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at
WHERE k.expires_at < now() OR (k.status IS NULL AND k.locked_until < now())
RETURNING true
"""
FIND = """
SELECT fingerprint, status, content_type, body FROM idempotency_keys
WHERE caller = $1 AND method = $2 AND path = $3 AND key = $4
"""
COMPLETE = """
UPDATE idempotency_keys SET status = $5, content_type = $6, body = $7
WHERE caller = $1 AND method = $2 AND path = $3 AND key = $4 AND status IS NULL
"""
RELEASE = """
DELETE FROM idempotency_keys
WHERE caller = $1 AND method = $2 AND path = $3 AND key = $4 AND status IS NULL
"""
SWEEP = "DELETE FROM idempotency_keys WHERE expires_at < now()"


@dataclass(frozen=True)
class Slot:
    """Where one request's answer is kept: (caller, method, path, key)."""

    caller: str
    method: str
    path: str
    key: str


@dataclass(frozen=True)
class Stored:
    """What a claim found instead of winning: a kept answer, or one still running (status
    None), for this or (fingerprint) another body."""

    fingerprint: bytes
    status: int | None
    content_type: str | None
    body: bytes


class IdempotencyKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, slot: Slot, fingerprint: bytes) -> Stored | None:
        """None if this request now owns the slot; else what the slot holds."""
        async with self.db.connection() as conn:
            args = (slot.caller, slot.method, slot.path, slot.key)
            if await conn.fetchval(CLAIM, *args, fingerprint):
                return None
            row = await conn.fetchrow(FIND, *args)
        if row is None:  # released (a 5xx) between the two statements: it is running again
            return Stored(fingerprint, None, None, b"")
        return Stored(row["fingerprint"], row["status"], row["content_type"], row["body"] or b"")

    async def complete(self, slot: Slot, status: int, content_type: str, body: bytes) -> None:
        async with self.db.connection() as conn:
            args = (slot.caller, slot.method, slot.path, slot.key)
            await conn.execute(COMPLETE, *args, status, content_type, body)

    async def release(self, slot: Slot) -> None:
        """Let a retry run again (the first answer was a 5xx, or never came)."""
        with contextlib.suppress(ServiceUnavailable):  # its lease runs out anyway
            async with self.db.connection() as conn:
                await conn.execute(RELEASE, slot.caller, slot.method, slot.path, slot.key)

    async def sweep_forever(self) -> None:
        """Delete expired keys every SWEEP_SECONDS; until cancelled."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                async with self.db.connection() as conn:
                    await conn.execute(SWEEP)
            except (ServiceUnavailable, asyncpg.PostgresError) as exc:
                log.debug("idempotency sweep skipped: %s", exc)
