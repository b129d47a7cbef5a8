"""The CRUD rules every resource shares: keyset pages, 404, owner-or-admin, events.

A resource declares its table (`tables.Table`: name, columns, owner column, which yields the
standard statements) and the two statements that depend on its fields (INSERT, UPDATE); `Crud`
runs them: posts, users and every scaffolded resource use it, so a fix to paging or to the
ownership guard is made here, once.

Guarded writes check ownership in the statement itself (`WHERE id = $1 AND (owner = me OR
admin)`), one round trip; only when nothing changed does a second query tell 404 from 403.
Each write statement also writes its event to the outbox (`events.outbox.with_event`), in the
same statement, so a change and its event commit together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, NoReturn, TypeVar, get_args
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from service.auth.principal import Principal
from service.backend import Backend
from service.db import Connection
from service.errors import Forbidden, NotFound, PreconditionFailed, ValidationFailed
from service.etags import etag, match
from service.events.outbox import with_event
from service.pagination import Page, decode_cursor, make_page
from service.tables import Table

M = TypeVar("M", bound=BaseModel)
_STAMPS = ("created_at", "updated_at")


def _may_be_none(annotation: Any) -> bool:
    return type(None) in get_args(annotation)


class Crud(Generic[M]):
    """Read, page, create, change and delete rows of `table` as `model`, with their events.

    The model's own fields (all but id, the owner and the timestamps), in its order, are the
    parameters of the statements: `insert` takes the owner, then each field; `update` takes
    the id, then each field (preceded by a was-it-given flag when the model lets it be null,
    so that an explicit null clears it), then `is_admin` and the caller's id, and guards
    itself with `AND (<owner> = $caller OR $is_admin)`. Both RETURN the model's fields. Events
    are `<noun>.created`, `<noun>.updated` (the row) and `<noun>.deleted` (its owner and id).
    """

    def __init__(
        self, table: Table, model: type[M], noun: str, *, insert: str, update: str = ""
    ) -> None:
        self.table, self.model, self.noun = table, model, noun
        self.insert = with_event(insert, f"{noun}.created", model)
        self.update = with_event(update, f"{noun}.updated", model) if update else ""
        fields = model.model_fields
        self.fields = tuple(n for n in fields if n not in {"id", table.owner, *_STAMPS})
        self.nullable = frozenset(n for n in self.fields if _may_be_none(fields[n].annotation))
        # built once here: the request path only looks them up
        self.by_id, self.exists = table.by_id, table.exists
        self.lock = table.by_id + " FOR UPDATE"
        self.delete = with_event(table.delete, f"{noun}.deleted", Deleted) if table.owner else ""
        self.pages = {
            (False, False): table.first_page,
            (False, True): table.page_after,
            (True, False): table.owner_first_page,
            (True, True): table.owner_page_after,
        }

    def from_row(self, row: asyncpg.Record | None) -> M:
        assert row is not None
        return self.model(**dict(row))

    async def get(self, rt: Backend, item_id: UUID) -> M:
        async with rt.db.connection() as conn:
            row = await conn.fetchrow(self.by_id, item_id)
        if row is None:
            raise NotFound(f"{self.noun} not found")
        return self.from_row(row)

    async def page(
        self, rt: Backend, limit: int, cursor: str | None = None, owner_id: UUID | None = None
    ) -> Page[M]:
        """Newest first; stable while others insert (new rows sort before the cursor)."""
        position = decode_cursor(cursor) if cursor is not None else None
        sql = self.pages[owner_id is not None, position is not None]
        args = [*([owner_id] if owner_id is not None else []), *(position or ())]
        async with rt.db.connection() as conn:
            rows = await conn.fetch(sql, *args, limit + 1)
        return make_page([self.from_row(r) for r in rows], limit, _position)

    async def create(self, rt: Backend, owner: Principal, new: BaseModel) -> M:
        """A row owned by `owner` from the `fields` of `new` (INSERT's parameters, in order)."""
        return await self.insert_row(rt, owner.user_id, *(getattr(new, f) for f in self.fields))

    async def insert_row(self, rt: Backend, *args: Any) -> M:
        """INSERT with `args`, and its `<noun>.created`."""
        rt.relay.check_room()
        with self.references_checked():
            async with rt.db.connection() as conn:
                row = await conn.fetchrow(self.insert, *args)
        rt.relay.written()
        return self.from_row(row)

    async def change(
        self,
        rt: Backend,
        actor: Principal,
        item_id: UUID,
        changes: BaseModel,
        if_match: str | None = None,
    ) -> M:
        """The guarded UPDATE (owner or admin) with the fields given, and its `<noun>.updated`.

        A field left out (or null, unless it may be null) keeps its value. With `if_match`,
        only if the item is still that version (`precondition`).
        """
        rt.relay.check_room()
        args: list[Any] = []
        for name in self.fields:
            if name in self.nullable:
                args.append(name in changes.model_fields_set)
            args.append(getattr(changes, name))
        with self.references_checked():
            async with rt.db.connection() as conn, self.precondition(conn, item_id, if_match):
                row = await conn.fetchrow(
                    self.update, item_id, *args, actor.is_admin, actor.user_id
                )
                if row is None:
                    await self._refuse(conn, item_id)
        rt.relay.written()
        return self.from_row(row)

    async def remove(
        self, rt: Backend, actor: Principal, item_id: UUID, if_match: str | None = None
    ) -> None:
        """The guarded DELETE (owner or admin), and its `<noun>.deleted`."""
        rt.relay.check_room()
        async with rt.db.connection() as conn, self.precondition(conn, item_id, if_match):
            owner_id = await conn.fetchval(self.delete, item_id, actor.is_admin, actor.user_id)
            if owner_id is None:
                await self._refuse(conn, item_id)
        rt.relay.written()

    @asynccontextmanager
    async def precondition(
        self, conn: Connection, item_id: UUID, if_match: str | None
    ) -> AsyncIterator[None]:
        """The block, in a transaction that holds the row locked while If-Match holds for it.

        The tag compared is the hash of the item as the API encodes it (`etags`), the ETag its
        GET sent; another one, or no such item, is 412 and nothing changes. Without If-Match
        the block runs as it is (no transaction, no extra round trip).
        """
        if if_match is None:
            yield
            return
        async with conn.transaction():
            row = await conn.fetchrow(self.lock, item_id)
            current = etag(self.from_row(row).model_dump_json().encode()) if row else None
            if current is None or not match(if_match, current):
                raise PreconditionFailed(
                    f"this {self.noun} is not the version If-Match names"
                    if current
                    else f"no such {self.noun} (If-Match needs one)"
                )
            yield

    async def _refuse(self, conn: Connection, item_id: UUID) -> NoReturn:
        """Why a guarded write changed nothing: no such row (404), or not the caller's (403)."""
        if await conn.fetchval(self.exists, item_id):
            raise Forbidden(f"only the owner or an admin may change this {self.noun}")
        raise NotFound(f"{self.noun} not found")

    @contextmanager
    def references_checked(self) -> Iterator[None]:
        """A ref field naming no row is invalid input (422), not a database failure (500)."""
        try:
            yield
        except asyncpg.ForeignKeyViolationError as exc:
            reference = self.table.references.get(exc.constraint_name or "")
            if reference is None:
                raise
            name, table = reference
            detail = {"field": f"body.{name}", "message": f"no row of {table} has this id"}
            raise ValidationFailed("a referenced row does not exist", details=[detail]) from None


class Deleted(BaseModel, extra="allow"):
    """The data of a `<noun>.deleted` event: the id, and the owner under its column's name."""

    id: UUID


def _position(item: Any) -> tuple[Any, UUID]:
    return item.created_at, item.id
