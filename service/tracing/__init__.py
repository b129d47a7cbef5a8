"""OpenTelemetry traces, switched on by the standard OTEL_* variables alone.

This module only reads the environment: `start` imports the SDK (service.tracing.sdk) when an
OTLP endpoint is configured. With tracing off nothing of the SDK is loaded and the runtime is
built from the libraries' own classes (service.tracing.instruments.UNTRACED), so the request
path is the one it always was. The contract: docs/operations/tracing.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from service.tracing.environment import configured

if TYPE_CHECKING:
    from service.tracing.sdk import Tracing


def start() -> Tracing | None:
    """The process's tracing (the SDK reads os.environ), exporting from now on; None, and no
    SDK loaded, when off."""
    if not configured(os.environ):
        return None
    from service.tracing.sdk import Tracing

    return Tracing.start()
