"""FastAPI dependencies as Annotated aliases: the runtime, page parameters, access rules.

Access is declared where a route is declared, by the alias its `caller` parameter takes, and
`apictl routes` reads the same declaration (each rule's `access` name):

    alias           rule                        enforced by
    (none)          none                        -
    CurrentUser     token                       a valid bearer token (401)
    StreamCaller    token or ticket             a bearer token, or ?ticket= (events/tickets.py)
    AdminUser       admin                       the rule below (403)
    SignupCaller    admin unless open signup    the rule below (401/403 unless open signup)
    SelfOrAdmin     self or admin               the rule below: {user_id} is the caller (403)
    OwnerOrAdmin    owner or admin              the row: crud.Crud's guarded writes (404/403)

Every dependency is `async def`: FastAPI runs plain `def` dependencies in a thread pool, a
thread hop per request for what is a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Header, Query
from starlette.requests import Request

from service.auth.callers import authenticated, bearer_token
from service.auth.principal import Principal
from service.context import current_request
from service.errors import Forbidden, Unauthorized
from service.events import tickets
from service.pagination import MAX_LIMIT
from service.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])


def access(rule: str) -> Callable[[F], F]:
    """Name the access rule a dependency stands for (read by `apictl routes`)."""

    def mark(dependency: F) -> F:
        dependency.access = rule  # type: ignore[attr-defined]
        return dependency

    return mark


def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


async def get_runtime(request: Request) -> Runtime:
    return runtime(request)


@access("token")
async def current_principal(request: Request) -> Principal:
    principal = authenticated(request.scope)  # checked already by a middleware
    if principal is None:
        token = bearer_token(request.scope)
        if token is None:
            raise Unauthorized()
        principal = await runtime(request).tokens.authenticate(token)
    return _acting(principal)


def _acting(principal: Principal) -> Principal:
    """Name the caller in the access log."""
    info = current_request.get()
    if info is not None:
        info.user_id = str(principal.user_id)
    return principal


@access("token or ticket")
async def stream_principal(
    request: Request,
    ticket: Annotated[
        str | None,
        Query(
            max_length=64,
            description="A ticket from POST /api/v1/events/ticket, for clients that cannot "
            "send an Authorization header (a browser's EventSource); never logged",
        ),
    ] = None,
) -> Principal:
    if ticket is None:
        return await current_principal(request)
    return _acting(await tickets.redeem(runtime(request), ticket))


def _admin(principal: Principal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("admins only")
    return principal


@access("admin")
async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    return _admin(principal)


@access("admin unless open signup")
async def signup_principal(request: Request) -> Principal | None:
    """With APICTL_OPEN_SIGNUP anyone (a token, if sent, must be valid); else an admin."""
    if runtime(request).settings.open_signup:
        return await current_principal(request) if "authorization" in request.headers else None
    return _admin(await current_principal(request))


@access("self or admin")
async def self_or_admin(
    user_id: UUID, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    if user_id != principal.user_id and not principal.is_admin:
        raise Forbidden("you may only change your own account")
    return principal


@access("owner or admin")
async def owner_or_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Authenticated here; ownership is checked on the row by the write itself (crud.Crud)."""
    return principal


Rt = Annotated[Runtime, Depends(get_runtime)]
CurrentUser = Annotated[Principal, Depends(current_principal)]
StreamCaller = Annotated[Principal, Depends(stream_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
SignupCaller = Annotated[Principal | None, Depends(signup_principal)]
SelfOrAdmin = Annotated[Principal, Depends(self_or_admin)]
OwnerOrAdmin = Annotated[Principal, Depends(owner_or_admin)]

# Query parameters of every page endpoint
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1..100)")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page")
]

# If-Match on item endpoints (docs/api/conditional-requests.md): crud.Crud checks it with the
# row locked; ETags are a route option (service/http/route_options.py)
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="Change only this version (an ETag of the item, or *): else 412",
        max_length=1000,
    ),
]
