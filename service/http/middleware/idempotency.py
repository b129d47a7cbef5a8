"""Idempotency-Key on creating POSTs (docs/api/idempotency.md), modelled on the IETF httpapi draft.

For a POST to a route declared `idempotent` (service/http/route_options.py) with the header:
- the key (1..255 visible ASCII) is claimed for (caller, method, path, key), the caller being
  the token's user, or the client address without a token (`service.idempotency`);
- the winner runs; its answer (status, content type, body) is kept unless it is a 5xx;
- a retry with the same body gets that answer again with `Idempotent-Replayed: true`, with
  another body 422 `idempotency_key_reused`, while the first still runs 409 + Retry-After.
Every other request passes untouched, after one look at its method.
"""

from __future__ import annotations

import hashlib
import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth.callers import caller
from service.errors import AppError, Conflict, IdempotencyKeyReused, ValidationFailed
from service.http.errors import send_error
from service.http.middleware.body_limit import BODY_KEY
from service.http.routing import matched
from service.idempotency import Slot
from service.runtime import Runtime

_VALID_KEY = re.compile(rb"^[!-~]{1,255}$")
REPLAYED = (b"idempotent-replayed", b"true")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = next((v for k, v in scope["headers"] if k == b"idempotency-key"), None)
        entry = matched(scope)
        if key is None or entry is None or not entry.idempotent:
            await self.app(scope, receive, send)
            return
        if not _VALID_KEY.match(key):
            detail = {"field": "header.idempotency-key", "message": "1..255 visible ASCII"}
            await send_error(send, ValidationFailed("invalid Idempotency-Key", details=[detail]))
            return
        runtime: Runtime = self.fastapi_app.state.runtime
        keyed_by = await caller(runtime, scope)
        if keyed_by is None:  # the route answers 401 (or 503) itself; nothing to keep for it
            await self.app(scope, receive, send)
            return
        slot = Slot(keyed_by, "POST", scope["path"], key.decode("ascii"))
        body, _ = scope.get(BODY_KEY, (b"", False))
        fingerprint = hashlib.sha256(body).digest()
        try:
            stored = await runtime.idempotency.claim(slot, fingerprint)
        except AppError as exc:
            await send_error(send, exc)
            return
        if stored is None:
            await self._first(scope, receive, send, runtime, slot)
        elif stored.fingerprint != fingerprint:
            await send_error(send, IdempotencyKeyReused())
        elif stored.status is None:
            await send_error(
                send,
                Conflict(
                    "the first request with this key is still running", headers={"Retry-After": "1"}
                ),
            )
        else:
            headers = [(b"content-type", (stored.content_type or "application/json").encode())]
            headers += [(b"content-length", str(len(stored.body)).encode()), REPLAYED]
            await send({"type": "http.response.start", "status": stored.status, "headers": headers})
            await send({"type": "http.response.body", "body": stored.body})

    async def _first(
        self, scope: Scope, receive: Receive, send: Send, runtime: Runtime, slot: Slot
    ) -> None:
        """Run the request, keeping its answer (but a 5xx, or none: then the key is free)."""
        status, content_type, chunks = 0, "application/json", []

        async def keep(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, keep)
        finally:
            if 0 < status < 500:
                await runtime.idempotency.complete(slot, status, content_type, b"".join(chunks))
            else:
                await runtime.idempotency.release(slot)
