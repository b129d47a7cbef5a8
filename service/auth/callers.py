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
from service.errors import AppError

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
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            try:
                principal = await runtime.tokens.authenticate(token.strip())
            except AppError:
                return None
            scope[AUTHENTICATED] = principal
            return f"user:{principal.user_id}"
    return address(runtime, scope)


def address(runtime: Runtime, scope: Scope) -> str:
    return "address:" + client_ip(scope, runtime.trusted_proxies)


def authenticated(scope: Scope) -> Principal | None:
    """The principal `caller` found for this request, if it ran and the token was valid."""
    return scope.get(AUTHENTICATED)
