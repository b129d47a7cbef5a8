"""Limits on request bodies, before any endpoint reads them.

Every request body is read here, whole, and handed on unchanged:
- size: a body over APICTL_MAX_BODY_BYTES is 413. A declared Content-Length over the limit is
  answered at once; a chunked body is counted as it arrives and reading stops at the first byte
  over, so an endless body is never read whole.
- time: the body must arrive within APICTL_BODY_TIMEOUT, or it is 408 (a client trickling
  bytes would otherwise hold its connection and a task for ever).
- shape: a JSON body (application/json or +json) is checked against the limits every endpoint
  shares (`service.validation.check_json`: depth, 64-bit integers, UTF-8), so deep nesting or a
  100,000-digit number is a 422 before FastAPI or pydantic parse it.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, RequestTimeout, ValidationFailed
from service.http.errors import send_error
from service.validation import JSONRefused, check_json

# The body read here, and whether its content type is JSON, for compiled routes (scope key)
BODY_KEY = "apictl.body"


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class BodyLimitMiddleware:
    """413 past `limit` bytes, 408 past `timeout` seconds, 422 for JSON past the limits."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        chunked = json_body = False
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-type":
                json_body = _is_json(value)
        if declared is not None and declared > self.limit:
            await send_error(send, PayloadTooLarge())
            return
        if not declared and not chunked:  # no body: nothing to read or check
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._read(receive)
        except TimeoutError:
            await send_error(send, RequestTimeout())
            return
        except PayloadTooLarge as exc:
            await send_error(send, exc)
            return
        if body is None:  # the client left: nothing to answer
            return
        if json_body and body:
            try:
                check_json(body)
            except JSONRefused as exc:
                details = [{"field": exc.field, "message": str(exc), "type": "json_invalid"}]
                await send_error(send, ValidationFailed(details=details))
                return
        scope[BODY_KEY] = (body, json_body)  # for compiled routes; FastAPI reads the replay
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise PayloadTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message; after it, the app only waits for the client to leave."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
