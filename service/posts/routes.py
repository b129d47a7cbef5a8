"""/api/v1/posts: thin endpoints over the posts CRUD rules."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import Response

from service.deps import (
    CurrentUser,
    Cursor,
    IfMatch,
    Limit,
    OwnerOrAdmin,
    Rt,
)
from service.http.route_options import ApiRoute, route_options
from service.pagination import DEFAULT_LIMIT, Page
from service.posts.schemas import NewPost, Post, PostChanges
from service.posts.service import posts

router = APIRouter(prefix="/api/v1/posts", tags=["posts"], route_class=ApiRoute)


@router.get("", summary="Posts, newest first")
async def list_posts(
    rt: Rt,
    caller: CurrentUser,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    author_id: Annotated[UUID | None, Query(description="Only this author's posts")] = None,
) -> Page[Post]:
    return await posts.page(rt, limit, cursor, author_id)


@router.post("", status_code=201, summary="Write a post as the caller")
@route_options(idempotent=True)
async def create_post(new: NewPost, rt: Rt, caller: CurrentUser) -> Post:
    return await posts.create(rt, caller, new)


@router.get("/{post_id}", summary="One post")
@route_options(etag=True)
async def get_post(post_id: UUID, rt: Rt, caller: CurrentUser) -> Post:
    return await posts.get(rt, post_id)


@router.patch("/{post_id}", summary="Change a post (author or admin)")
@route_options(etag=True)
async def update_post(
    post_id: UUID, changes: PostChanges, rt: Rt, caller: OwnerOrAdmin, if_match: IfMatch = None
) -> Post:
    return await posts.change(rt, caller, post_id, changes, if_match)


@router.delete("/{post_id}", status_code=204, summary="Delete a post (author or admin)")
async def delete_post(
    post_id: UUID, rt: Rt, caller: OwnerOrAdmin, if_match: IfMatch = None
) -> Response:
    await posts.remove(rt, caller, post_id, if_match)
    return Response(status_code=204)
