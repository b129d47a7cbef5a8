"""The database pool keeps asyncpg's limits although apictl hands connections on itself.

A connection a request is done with goes straight to the next request (service/db.py,
`Database.idle`) and back to asyncpg's pool within a second: so PostgreSQL still sees idle
connections closed after APICTL_DB_IDLE_TIMEOUT and none older than APICTL_DB_MAX_LIFETIME.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from service.config import Settings
from service.db import Database


async def _backends(database_url: str) -> int:
    """apictl's connections to this database, as PostgreSQL counts them."""
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'apictl'"
        )
    finally:
        await conn.close()
    return count


def test_connections_left_idle_are_closed_after_the_idle_timeout(settings: Settings) -> None:
    async def scenario() -> tuple[int, int, float]:
        db = Database(settings.model_copy(update={"db_pool_min": 0, "db_idle_timeout": 0.5}))
        await db.open()
        url = str(settings.database_url)
        try:

            async def hold() -> None:
                async with db.connection() as conn:
                    await conn.execute("SELECT pg_sleep(0.2)")

            await asyncio.gather(*(hold() for _ in range(settings.db_pool_max)))
            busy = await _backends(url)
            started = time.monotonic()
            left = busy
            for _ in range(100):  # at most 10 s
                await asyncio.sleep(0.1)
                left = await _backends(url)
                if not left:
                    break
            return busy, left, time.monotonic() - started
        finally:
            await db.close()

    busy, left, seconds = asyncio.run(scenario())
    assert busy == settings.db_pool_max
    assert left == 0, f"{left} connections still open after {seconds:.1f} s"
    assert seconds < 4  # idle timeout 0.5 s + at most 1 s kept by apictl, with slack


def test_no_connection_outlives_the_max_lifetime_under_steady_use(settings: Settings) -> None:
    async def scenario() -> tuple[set[int], set[int]]:
        db = Database(settings.model_copy(update={"db_max_lifetime": 1.0}))
        await db.open()
        early: set[int] = set()
        late: set[int] = set()
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < 4.5:
                async with db.connection() as conn:
                    pid: int = await conn.fetchval("SELECT pg_backend_pid()")
                if elapsed < 0.5:
                    early.add(pid)
                elif elapsed > 3.5:
                    late.add(pid)
                await asyncio.sleep(0.01)
        finally:
            await db.close()
        return early, late

    early, late = asyncio.run(scenario())
    assert early
    assert late
    assert not early & late, "a connection served past its lifetime"
