"""The current request, visible to logging and error rendering without passing it around.

Below both the request path (service.http sets it) and the process (service.process.logs
reads it), so neither imports the other.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestInfo:
    """What the access log and error bodies need to know about the current request."""

    request_id: str
    user_id: str | None = None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)


def current_request_id() -> str:
    """The id of the request being handled, or "-" outside a request."""
    info = current_request.get()
    return info.request_id if info is not None else "-"
