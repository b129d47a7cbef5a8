"""User shapes at the boundaries (HTTP bodies, CLI arguments) and the rules for their fields."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel

from service.validation import STRICT_BODY, no_nul

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(value: str) -> str:
    """Trimmed, lower-case, <= 254 characters, one @ and a dotted domain."""
    email = no_nul(value).strip().lower()
    if len(email) > 254:
        raise ValueError("must be at most 254 characters")
    if not _EMAIL.match(email):
        raise ValueError("must be a valid email address")
    return email


def normalize_name(value: str) -> str:
    """Trimmed, 1..100 characters."""
    name = no_nul(value).strip()
    if not 1 <= len(name) <= 100:
        raise ValueError("must be 1 to 100 characters after trimming")
    return name


def check_password(value: str) -> str:
    """8..128 characters, kept exactly as typed."""
    if not 8 <= len(no_nul(value)) <= 128:
        raise ValueError("must be 8 to 128 characters")
    return value


Email = Annotated[str, AfterValidator(normalize_email)]
Name = Annotated[str, AfterValidator(normalize_name)]
Password = Annotated[str, AfterValidator(check_password)]


class NewUser(BaseModel):
    """POST /api/v1/users and `apictl user create`."""

    model_config = STRICT_BODY
    email: Email
    name: Name
    password: Password


class UserChanges(BaseModel):
    """PATCH /api/v1/users/{id} and `apictl user update`: only the fields given change."""

    model_config = STRICT_BODY
    name: Name | None = None
    password: Password | None = None
    is_admin: bool | None = None
    is_active: bool | None = None


class User(BaseModel):
    """A user as the API shows it: never a password or its hash."""

    id: UUID
    email: str
    name: str
    is_admin: bool
    is_active: bool
    created_at: datetime
