"""The API service and everything the CLI shares with it."""

import sys

__version__ = "0.1.0"

# redis-py (8.x) imports opentelemetry.sdk.metrics whenever the OpenTelemetry SDK is installed,
# for a metrics feature of its own that apictl never turns on: ~100 ms on every import of redis
# (each CLI command, each worker) and 35 modules in memory. Hidden from it, tracing off loads
# nothing of the SDK (docs/operations/tracing.md); traces (service.tracing) do not need that
# module.
sys.modules.setdefault("opentelemetry.sdk.metrics", None)  # type: ignore[arg-type]

# FastAPI imports pydantic.v1 (a whole second pydantic) as it declares each route, only to
# tell whether a model is a v1 model it would refuse: 3.5 MB of every worker's memory. apictl
# has no v1 model; hidden, FastAPI's check answers "no" (it treats an ImportError as that).
sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
