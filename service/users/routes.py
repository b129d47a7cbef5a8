"""/api/v1/users: thin endpoints over users.service."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from starlette.responses import Response

from service.deps import (
    AdminUser,
    CurrentUser,
    Cursor,
    IfMatch,
    Limit,
    Rt,
    SelfOrAdmin,
    SignupCaller,
)
from service.http.route_options import ApiRoute, route_options
from service.pagination import DEFAULT_LIMIT, Page
from service.users import service
from service.users.schemas import NewUser, User, UserChanges

router = APIRouter(prefix="/api/v1/users", tags=["users"], route_class=ApiRoute)


@router.post("", status_code=201, summary="Create a user (admin, or anyone with open signup)")
@route_options(idempotent=True)
async def create_user(new: NewUser, rt: Rt, caller: SignupCaller) -> User:
    return await service.create_user(rt, new)


@router.get("/me", summary="The calling user")
@route_options(etag=True)
async def me(rt: Rt, caller: CurrentUser) -> User:
    return await service.get_user(rt, caller.user_id)


@router.get("", summary="All users, newest first (admin)")
async def list_users(
    rt: Rt, caller: AdminUser, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[User]:
    return await service.list_users(rt, limit, cursor)


@router.get("/{user_id}", summary="One user")
@route_options(etag=True)
async def get_user(user_id: UUID, rt: Rt, caller: CurrentUser) -> User:
    return await service.get_user(rt, user_id)


@router.patch("/{user_id}", summary="Change a user: self (name, password) or admin (all)")
@route_options(etag=True)
async def update_user(
    user_id: UUID, changes: UserChanges, rt: Rt, caller: SelfOrAdmin, if_match: IfMatch = None
) -> User:
    return await service.update_user(rt, caller, user_id, changes, if_match)


@router.delete("/{user_id}", status_code=204, summary="Delete a user (admin)")
async def delete_user(
    user_id: UUID, rt: Rt, caller: AdminUser, if_match: IfMatch = None
) -> Response:
    await service.delete_user(rt, user_id, if_match)
    return Response(status_code=204)
