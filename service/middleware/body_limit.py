"""Limits on request bodies, before any endpoint reads them.

Size: a body over APICTL_MAX_BODY_BYTES is 413. A declared Content-Length over the limit is
answered at once; a chunked body is counted as it arrives and reading stops at the first byte
over, so an endless body is never read whole.

Shape: a JSON body (application/json or +json) is read here, checked against the limits every
endpoint shares (`service.validation.check_json`: depth, 64-bit integers, UTF-8) and handed on
unchanged, so deep nesting or a 100,000-digit number is a 422 before FastAPI or pydantic parse it.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, ValidationFailed, send_error
from service.validation import JSONRefused, check_json


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class BodyLimitMiddleware:
    """413 `payload_too_large` for bodies over `limit` bytes; 422 for JSON past the limits."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"content-type":
                json_body = _is_json(value)
        if declared is not None and declared > self.limit:
            await send_error(send, PayloadTooLarge())
            return
        if json_body:
            await self._checked_json(scope, receive, send)
        elif declared is not None:
            # the server delivers exactly Content-Length bytes: nothing left to count
            await self.app(scope, receive, send)
        else:
            await self.app(scope, self._counting(receive), send)

    async def _checked_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send_error(send, PayloadTooLarge())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                check_json(body)
            except JSONRefused as exc:
                details = [{"field": "body", "message": str(exc), "type": "json_invalid"}]
                await send_error(send, ValidationFailed(details=details))
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:  # after the body, the app only waits for the client to leave
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI lets HTTPException through its body parsing; the app's handler
                    # renders it as the unified 413 body.
                    raise HTTPException(413)
            return message

        return limited_receive
