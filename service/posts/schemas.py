"""Post shapes at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from service.validation import STRICT_BODY, Text


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Title = Annotated[Text, Field(min_length=1, max_length=200), AfterValidator(not_blank)]
Body = Annotated[Text, Field(max_length=50_000)]


class NewPost(BaseModel):
    model_config = STRICT_BODY
    title: Title
    body: Body = ""


class PostChanges(BaseModel):
    """Only the fields given change."""

    model_config = STRICT_BODY
    title: Title | None = None
    body: Body | None = None


class Post(BaseModel):
    id: UUID
    author_id: UUID
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
