"""Event stream shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StreamTicket(BaseModel):
    """Opens `GET /api/v1/events?ticket=...` until `expires_at`, reconnects included."""

    ticket: str = Field(description="Pass as the `ticket` query parameter of /api/v1/events")
    expires_at: datetime
