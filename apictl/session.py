"""What CLI commands need before they work: servers resolved, and a Runtime for service calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from apictl.output import errors, fail
from service.config import DIRECT_URL_HINT, NO_DIRECT_URL, Settings, load_settings
from service.process.embedded import EmbeddedError, with_embedded_servers
from service.runtime import Runtime

T = TypeVar("T")
CLI_POOL = {"db_pool_min": 1, "db_pool_max": 2}  # one command, a few statements


def resolve_servers(settings: Settings) -> Settings:
    """Settings with both URLs set; embedded servers are started (or joined) with a spinner."""
    if settings.database_url and settings.redis_url:
        return settings
    with errors.status(f"starting embedded servers in {settings.data_dir}/ ..."):
        try:
            return with_embedded_servers(settings)
        except EmbeddedError as exc:
            fail(str(exc), hint=exc.hint)


def require_direct_url(settings: Settings) -> None:
    """Exit 1 with a hint unless session-level features (advisory locks, LISTEN) have a direct
    connection: `apictl migrate` and `apictl serve` (the event relay) need one."""
    if settings.missing_direct_url:
        fail(NO_DIRECT_URL, hint=DIRECT_URL_HINT)


def run_service(call: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one service call with a Runtime of its own, opened and closed around it."""
    settings = resolve_servers(load_settings()).model_copy(update=CLI_POOL)

    async def main() -> T:
        runtime = await Runtime.open(settings, serving=False)
        try:
            return await call(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except asyncpg.UndefinedTableError:
        fail("the database has no schema yet", hint="run `apictl migrate` first")
