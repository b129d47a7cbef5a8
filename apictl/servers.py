"""Resolve DATABASE_URL / REDIS_URL for a command, starting the embedded servers when unset."""

from __future__ import annotations

from apictl.output import errors, fail
from service.config import Settings
from service.embedded import EmbeddedError, with_embedded_servers


def resolve_servers(settings: Settings) -> Settings:
    """Settings with both URLs set; embedded servers are started (or joined) with a spinner."""
    if settings.database_url and settings.redis_url:
        return settings
    with errors.status(f"starting embedded servers in {settings.data_dir}/ ..."):
        try:
            return with_embedded_servers(settings)
        except EmbeddedError as exc:
            fail(str(exc), hint="set DATABASE_URL and REDIS_URL to use your own servers")
