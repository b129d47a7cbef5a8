"""The OTEL_* variables apictl's tracing reads (through the SDK), as `apictl check config` shows
them: defaults as the OpenTelemetry specification (and apictl, for the service name) set them,
secrets masked. Nothing of the SDK is imported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from service.config import mask_url

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configured(environ: Mapping[str, str]) -> bool:
    """Tracing is on: an OTLP endpoint is set and OTEL_SDK_DISABLED is not `true`."""
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return not disabled and any(environ.get(name, "").strip() for name in ENDPOINTS)


def endpoint(environ: Mapping[str, str] = os.environ) -> str:
    """Where spans go, as the OTLP exporter resolves it (the traces URL wins)."""
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces
    return environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/") + "/v1/traces"


# What a reader of `check config` needs to know, with the value used when it is unset
DEFAULTS = {
    "OTEL_SDK_DISABLED": "false",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
    "OTEL_EXPORTER_OTLP_HEADERS": "",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "10",  # seconds, as the Python exporter reads it
    "OTEL_SERVICE_NAME": "apictl",
    "OTEL_RESOURCE_ATTRIBUTES": "",
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    "OTEL_TRACES_SAMPLER_ARG": "",
    "OTEL_PROPAGATORS": "tracecontext,baggage",
    "OTEL_BSP_MAX_QUEUE_SIZE": "2048",
}


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    value: str  # secrets masked
    source: str  # `env` or `default` (the SDK reads the environment only, never .env)


def variables(environ: Mapping[str, str] = os.environ) -> list[Variable]:
    """Every variable of DEFAULTS, then any other OTEL_* that is set, values masked."""
    names = [*DEFAULTS, *sorted(n for n in environ if n.startswith("OTEL_") and n not in DEFAULTS)]
    return [
        Variable(name, _masked(name, environ[name]), "env")
        if name in environ
        else Variable(name, DEFAULTS[name], "default")
        for name in names
    ]


def _masked(name: str, value: str) -> str:
    if "HEADERS" in name:  # `key=value,...`: API keys and Authorization values live here
        return ",".join(
            f"{pair.partition('=')[0].strip()}=***" for pair in value.split(",") if pair
        )
    return mask_url(value) if "ENDPOINT" in name else value
