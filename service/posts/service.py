"""Post logic for every front door: keyset pages, ownership, events after commit."""

from __future__ import annotations

from typing import NoReturn
from uuid import UUID

import asyncpg

from service.auth.tokens import Principal
from service.db import Connection
from service.errors import Forbidden, NotFound
from service.pagination import Page, decode_cursor, make_page
from service.posts import queries
from service.posts.schemas import DeletedPost, NewPost, Post, PostChanges
from service.runtime import Runtime


def _post(row: asyncpg.Record | None) -> Post:
    assert row is not None
    return Post(**dict(row))


async def create_post(rt: Runtime, author: Principal, new: NewPost) -> Post:
    async with rt.db.connection() as conn:
        row = await conn.fetchrow(queries.INSERT, author.user_id, new.title, new.body)
    post = _post(row)
    await rt.events.publish("post.created", post)
    return post


async def get_post(rt: Runtime, post_id: UUID) -> Post:
    async with rt.db.connection() as conn:
        row = await conn.fetchrow(queries.BY_ID, post_id)
    if row is None:
        raise NotFound("post not found")
    return _post(row)


async def list_posts(
    rt: Runtime, limit: int, cursor: str | None = None, author_id: UUID | None = None
) -> Page[Post]:
    """Posts newest first; stable while others insert (new posts sort before the cursor)."""
    position = decode_cursor(cursor) if cursor is not None else None
    async with rt.db.connection() as conn:
        if author_id is None:
            rows = await (
                conn.fetch(queries.FIRST_PAGE, limit + 1)
                if position is None
                else conn.fetch(queries.PAGE_AFTER, *position, limit + 1)
            )
        else:
            rows = await (
                conn.fetch(queries.AUTHOR_FIRST_PAGE, author_id, limit + 1)
                if position is None
                else conn.fetch(queries.AUTHOR_PAGE_AFTER, author_id, *position, limit + 1)
            )
    return make_page([_post(r) for r in rows], limit, lambda p: (p.created_at, p.id))


async def _refuse(conn: Connection, post_id: UUID) -> NoReturn:
    """Why a guarded write changed nothing: no such post (404), or not yours (403)."""
    if await conn.fetchval(queries.EXISTS, post_id):
        raise Forbidden("only the author or an admin may change this post")
    raise NotFound("post not found")


async def update_post(rt: Runtime, actor: Principal, post_id: UUID, changes: PostChanges) -> Post:
    async with rt.db.connection() as conn:
        row = await conn.fetchrow(
            queries.UPDATE, post_id, changes.title, changes.body, actor.is_admin, actor.user_id
        )
        if row is None:
            await _refuse(conn, post_id)
    post = _post(row)
    await rt.events.publish("post.updated", post)
    return post


async def delete_post(rt: Runtime, actor: Principal, post_id: UUID) -> None:
    async with rt.db.connection() as conn:
        author_id = await conn.fetchval(queries.DELETE, post_id, actor.is_admin, actor.user_id)
        if author_id is None:
            await _refuse(conn, post_id)
    await rt.events.publish("post.deleted", DeletedPost(id=post_id, author_id=author_id))
