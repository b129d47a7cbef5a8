"""The API rate limit (docs/api/rate-limits.md): every request to a route declared `counted` (every
API route but login, which has a limit of its own) counts against its caller, the token's user
or else the client address (`auth.ratelimit.ApiLimiter`).

Counted responses carry the fields of draft-ietf-httpapi-ratelimit-headers:

    RateLimit-Policy: "api";q=1200;w=60
    RateLimit: "api";r=1187;t=42

and past the limit the answer is 429 `rate_limited` with Retry-After, before the body is read.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth.callers import address, caller
from service.errors import RateLimited
from service.http.errors import send_error
from service.http.routing import RouteTable, matched
from service.runtime import Runtime

_HEADERS = {
    "RateLimit-Policy": 'The limit: `"api";q=<requests>;w=<seconds>`',
    "RateLimit": 'What is left of it: `"api";r=<remaining>;t=<seconds until reset>`',
}


def document(openapi: dict[str, Any], table: RouteTable) -> dict[str, Any]:
    """Declare the RateLimit fields on every response of the counted operations."""
    headers = {
        name: {"description": text, "schema": {"type": "string"}} for name, text in _HEADERS.items()
    }
    paths = openapi.get("paths", {})
    for entry in table.entries:
        if not entry.counted:
            continue
        operations = paths.get(entry.view.openapi_path, {})
        for method in entry.route.methods or ():
            for response in operations.get(method.lower(), {}).get("responses", {}).values():
                response["headers"] = {**response.get("headers", {}), **headers}
    return openapi


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = matched(scope)
        runtime: Runtime | None = getattr(self.fastapi_app.state, "runtime", None)
        limiter = runtime.api_limiter if runtime is not None else None
        if limiter is None or entry is None or not entry.counted:
            await self.app(scope, receive, send)
            return
        assert runtime is not None
        verdict = await limiter.hit(await caller(runtime, scope) or address(runtime, scope))
        limit = limiter.limit
        policy = (b"ratelimit-policy", limiter.policy)
        state = (b"ratelimit", b'"api";r=%d;t=%d' % (verdict.remaining, verdict.reset))
        if not verdict.admitted:
            headers = {"Retry-After": str(verdict.reset)}
            headers |= {k.decode(): v.decode() for k, v in (policy, state)}
            refused = RateLimited(f"over {limit} for this caller", headers=headers)
            await send_error(send, refused)
            return

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), policy, state]
            await send(message)

        await self.app(scope, receive, send_counted)
