"""Keyset pagination: opaque cursors over (created_at, id), newest first, no OFFSET."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

import orjson
from pydantic import BaseModel

from service.errors import ValidationFailed

T = TypeVar("T")
Position = tuple[datetime, UUID]

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


class Page(BaseModel, Generic[T]):
    """A page of items and the cursor of the next one (null on the last page)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(position: Position) -> str:
    raw = orjson.dumps([position[0].isoformat(), str(position[1])])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; a malformed or tampered cursor is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = orjson.loads(raw)
        position = datetime.fromisoformat(created_at), UUID(item_id)
        if position[0].tzinfo is None:
            raise ValueError("naive timestamp")
    except (ValueError, TypeError, binascii.Error):
        raise ValidationFailed(
            "invalid cursor",
            details=[{"field": "query.cursor", "message": "not a cursor this API issued"}],
        ) from None
    return position


def make_page(rows: list[T], limit: int, position: Callable[[T], Position]) -> Page[T]:
    """The page for `rows` fetched with LIMIT limit + 1: the extra row proves a next page."""
    items = rows[:limit]
    cursor = encode_cursor(position(items[-1])) if len(rows) > limit else None
    return Page[T](items=items, next_cursor=cursor)
