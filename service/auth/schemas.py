"""Login and token shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from service.validation import STRICT_BODY, Text


class LoginRequest(BaseModel):
    model_config = STRICT_BODY
    email: Annotated[Text, Field(max_length=254)]
    password: Annotated[Text, Field(max_length=1024)]  # bounded work for the hasher


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme, not a secret)
    expires_at: datetime


class TokenInfo(BaseModel):
    """A token as `apictl token list` shows it: never the token itself."""

    id: UUID
    email: str
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
