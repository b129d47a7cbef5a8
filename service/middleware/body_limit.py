"""Refuse request bodies over APICTL_MAX_BODY_BYTES with 413, without reading them whole.

A declared Content-Length over the limit is answered at once (one within it needs no more
checking); a chunked body is counted as it arrives and reading stops at the first byte over.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, send_error


class BodyLimitMiddleware:
    """413 `payload_too_large` for bodies over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        if declared is not None:
            if declared > self.limit:
                await send_error(send, PayloadTooLarge())
                return
            # the server delivers exactly Content-Length bytes: nothing left to count
            await self.app(scope, receive, send)
            return
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

        await self.app(scope, limited_receive, send)
