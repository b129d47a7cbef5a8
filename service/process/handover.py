"""What `apictl serve` resolved, handed to the processes it starts (workers, migrator, reloader).

One environment variable, APICTL_HANDOVER, holds JSON of exactly the resolved fields: the
servers' URLs (embedded ones included) and the command line's host and port. `load_settings`
applies it under its explicit overrides, so a child reads the settings its supervisor used.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config import Settings

VARIABLE = "APICTL_HANDOVER"
FIELDS = ("database_url", "redis_url", "host", "port")


def write(settings: Settings) -> None:
    """Hand `settings`' resolved fields to every process started from now on."""
    os.environ[VARIABLE] = json.dumps({field: getattr(settings, field) for field in FIELDS})


def read() -> dict[str, object]:
    """The handed-over fields, as overrides for `load_settings`; empty when none were."""
    text = os.environ.get(VARIABLE)
    if not text:
        return {}
    handed: dict[str, object] = json.loads(text)
    return {field: value for field, value in handed.items() if field in FIELDS}
