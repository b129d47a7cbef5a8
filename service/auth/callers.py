"""Who is calling, for the middleware that count or key requests by caller (the API rate limit,
Idempotency-Key) before any route runs.

The bearer token is checked once per request: its principal is kept in the scope, and the
route's own dependency (deps.current_principal) takes it from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Scope

from service.auth.client_ip import client_ip
from service.auth.principal import Principal
from service.errors import AppError, Unauthorized

if TYPE_CHECKING:
    from service.runtime import Runtime

AUTHENTICATED = "apictl.principal"  # scope key: the principal of this request's valid token


async def caller(runtime: Runtime, scope: Scope) -> str | None:
    """`user:<id>` for a valid bearer token, `address:<client ip>` without an Authorization
    header, None for any other (a bad token, a database outage): the route answers that itself.
    """
    known = authenticated(scope)
    if known is not None:
        return f"user:{known.user_id}"
    try:
        token = bearer_token(scope)
        if token is None:
            return address(runtime, scope)
        principal = await runtime.tokens.authenticate(token)
    except AppError:
        return None
    scope[AUTHENTICATED] = principal
    return f"user:{principal.user_id}"


def bearer_token(scope: Scope) -> str | None:
    """The token of `Authorization: Bearer <token>`, None without the header; Unauthorized
    for another scheme or an empty token. The one reading of the header."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("expected Authorization: Bearer <token>")
            return token.strip()
    return None


def address(runtime: Runtime, scope: Scope) -> str:
    return "address:" + client_ip(scope, runtime.trusted_proxies)


def authenticated(scope: Scope) -> Principal | None:
    """The principal `caller` found for this request, if it ran and the token was valid."""
    return scope.get(AUTHENTICATED)
