"""Who a request acts for, and a token just issued: values the domain passes around."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for."""

    user_id: UUID
    token_id: UUID
    is_admin: bool
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: `token` is shown once and never stored."""

    token: str
    id: UUID
    expires_at: datetime
