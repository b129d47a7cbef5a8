"""What `apictl serve` resolved, handed to the processes it starts (workers, migrator, reloader).

One environment variable, APICTL_HANDOVER, holds JSON of exactly the resolved fields: the
servers' URLs (embedded ones included) and the command line's host and port. `load_settings`
applies it under its explicit overrides, so a child reads the settings its supervisor used.
The format and its reading belong to service.config, below the process: here it is written.
"""

from __future__ import annotations

import json
import os

from service.config import HANDOVER_FIELDS as FIELDS
from service.config import HANDOVER_VARIABLE as VARIABLE
from service.config import Settings
from service.config import handed_over as read

__all__ = ["FIELDS", "VARIABLE", "read", "write"]


def write(settings: Settings) -> None:
    """Hand `settings`' resolved fields to every process started from now on."""
    os.environ[VARIABLE] = json.dumps({field: getattr(settings, field) for field in FIELDS})
