"""ETag, If-None-Match and Cache-Control on the API's answers, for every route runner.

A route declared `etag` (service/http/route_options.py) gets a strong ETag on its 200s, the
hash of the body (`service.etags`); a GET whose If-None-Match holds that tag is answered 304
with no body. GETs with an ETag may be cached privately if revalidated (`private, no-cache`);
every other JSON answer of an API route, or of a request no route matched (an error), is
`no-store`. Routes that are not API routes (health, metrics, docs) are left alone. If-Match is
the CRUD rules' business: it must be checked with the row locked, before the change.

Innermost but for the compiled routes, so it sees the body before gzip and after either runner.
The rules: docs/api/conditional-requests.md.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.etags import etag, none_match
from service.http.routing import matched

NO_STORE = (b"cache-control", b"no-store")
REVALIDATE = (b"cache-control", b"private, no-cache")
_DROPPED_BY_304 = (b"content-length", b"content-type")


class ConditionalMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = matched(scope) if scope["type"] == "http" else None
        if scope["type"] != "http" or (entry is not None and not entry.api):
            await self.app(scope, receive, send)
            return
        tagged = entry is not None and entry.etag
        held: Message | None = None

        async def send_conditional(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if message["status"] == 200 and tagged:
                    held = message  # tagged once its body is known
                    return
                headers = message.setdefault("headers", [])
                if any(n == b"content-type" and v.endswith(b"json") for n, v in headers):
                    headers.append(NO_STORE)
            elif held is not None:
                start, held = _tag(scope, held, message), None
                await send(start)
                if start["status"] == 304:
                    message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app(scope, receive, send_conditional)


def _tag(scope: Scope, start: Message, body: Message) -> Message:
    """The held response start with its ETag (and 304 when If-None-Match holds it)."""
    tag = etag(body.get("body", b""))
    get = scope["method"] == "GET"
    headers = [*start.get("headers", ()), (b"etag", tag), REVALIDATE if get else NO_STORE]
    if get:
        for name, value in scope["headers"]:
            if name == b"if-none-match" and none_match(value, tag):
                kept = [(n, v) for n, v in headers if n not in _DROPPED_BY_304]
                return {**start, "status": 304, "headers": kept}
    return {**start, "headers": headers}
