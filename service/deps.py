"""FastAPI dependencies as Annotated aliases: the runtime and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from starlette.requests import Request

from service.auth.tokens import Principal
from service.errors import Forbidden, Unauthorized
from service.http.context import current_request
from service.pagination import MAX_LIMIT
from service.runtime import Runtime

# Every dependency is `async def`: FastAPI runs plain `def` dependencies in a thread pool, a
# thread hop per request for what is a dictionary lookup.


def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


async def get_runtime(request: Request) -> Runtime:
    return runtime(request)


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, None without the header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected Authorization: Bearer <token>")
    return token.strip()


async def current_principal(request: Request) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized()
    principal = await runtime(request).tokens.authenticate(token)
    info = current_request.get()
    if info is not None:
        info.user_id = str(principal.user_id)
    return principal


async def optional_principal(request: Request) -> Principal | None:
    """The caller if a token was sent (it must then be valid), else None."""
    return await current_principal(request) if "authorization" in request.headers else None


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("admins only")
    return principal


Rt = Annotated[Runtime, Depends(get_runtime)]
CurrentUser = Annotated[Principal, Depends(current_principal)]
MaybeUser = Annotated[Principal | None, Depends(optional_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]

# Query parameters of every page endpoint
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1..100)")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page")
]
