"""Which migrations exist and which are applied, without yoyo or psycopg.

The serving process needs only this (for /ready and for `serve`'s start-up check), so the
migration machinery (service.ops.migrations: yoyo, psycopg, ~35 MB) never loads into a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from service.process.bundled import bundled_dir

if TYPE_CHECKING:  # the CLI lists migration ids without loading the database driver
    import asyncpg

    from service.config import Settings


def migrations_dir(settings: Settings) -> Path:
    """APICTL_MIGRATIONS_DIR, else the migrations shipped with the package."""
    return settings.migrations_dir or bundled_dir("migrations")


def migration_ids(directory: Path) -> list[str]:
    """The ids of the migrations in `directory`, in order (yoyo's id is the file's stem)."""
    return sorted(p.stem for p in directory.glob("*.sql") if not p.name.endswith(".rollback.sql"))


async def pending_migrations(conn: asyncpg.Connection, expected: list[str]) -> list[str]:
    """The migrations of `expected` that yoyo has not recorded as applied."""
    import asyncpg

    try:
        rows = await conn.fetch("SELECT migration_id FROM _yoyo_migration")
    except asyncpg.UndefinedTableError:  # nothing was ever migrated
        return list(expected)
    applied = {row[0] for row in rows}
    return [mid for mid in expected if mid not in applied]
