"""The bare ASGI reference: what Python can do for the same work, with no framework.

Same SQL as apictl (imported from it), the same token lookup (SHA-256 of the bearer token,
AUTHENTICATE), the same event written to the Redis Stream on each write, orjson for JSON,
uvicorn with uvloop and httptools, no access log. Not part of the product.

REFERENCE_TOKEN_CACHE=1 also gives it apictl's 10 s in-process token cache (without the
invalidation machinery): the stricter yardstick, reported beside the benchmark's original one,
which looks every token up in PostgreSQL (docs/performance.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import asyncpg
import orjson
from redis.asyncio import Redis

from service.auth.queries import AUTHENTICATE
from service.events.bus import STREAM, STREAM_MAXLEN
from service.posts.queries import INSERT, TABLE

BY_ID, FIRST_PAGE = TABLE.by_id, TABLE.first_page
CACHE = os.environ.get("REFERENCE_TOKEN_CACHE") == "1"
CACHE_TTL = 10.0
JSON = [(b"content-type", b"application/json")]
state: dict[str, Any] = {}
tokens: dict[bytes, tuple[UUID, float]] = {}


def _default(value: Any) -> str:
    return str(value)


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [*JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _user(scope: dict[str, Any]) -> UUID | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = value[7:]
            digest = hashlib.sha256(token).digest()
            cached = tokens.get(digest) if CACHE else None
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            async with state["pool"].acquire() as conn:
                row = await conn.fetchrow(AUTHENTICATE, digest)
            if row is None:
                return None
            if CACHE:
                tokens[digest] = (row["user_id"], time.monotonic() + CACHE_TTL)
            user_id: UUID = row["user_id"]
            return user_id
    return None


def _limit(query: bytes) -> int:
    values = parse_qs(query.decode()).get("limit", ["20"])
    return min(max(int(values[0]), 1), 100)


async def _page(limit: int) -> bytes:
    """The newest `limit` posts and the cursor after them, as apictl's keyset pages."""
    async with state["pool"].acquire() as conn:
        rows = await conn.fetch(FIRST_PAGE, limit + 1)
    items = [dict(row) for row in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        last = items[-1]
        raw = orjson.dumps([last["created_at"].isoformat(), str(last["id"])])
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return orjson.dumps({"items": items, "next_cursor": cursor}, default=_default)


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path, method = scope["path"], scope["method"]
    if path == "/health":
        await _respond(send, 200, b'{"status":"ok"}')
        return
    user = await _user(scope)
    if user is None:
        await _respond(send, 401, b'{"error":"unauthorized"}')
        return
    if method == "GET" and path == "/api/v1/posts":
        await _respond(send, 200, await _page(_limit(scope["query_string"])))
    elif method == "GET" and path.startswith("/api/v1/posts/"):
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(BY_ID, UUID(path.rsplit("/", 1)[1]))
        if row is None:
            await _respond(send, 404, b'{"error":"not found"}')
            return
        await _respond(send, 200, orjson.dumps(dict(row), default=_default))
    elif method == "POST" and path == "/api/v1/posts":
        data = orjson.loads(await _body(receive))
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(INSERT, user, data["title"], data.get("body", ""))
        body = orjson.dumps(dict(row), default=_default)
        await state["redis"].xadd(
            STREAM, {"type": "post.created", "data": body}, maxlen=STREAM_MAXLEN, approximate=True
        )
        await _respond(send, 201, body)
    else:
        await _respond(send, 404, b'{"error":"not found"}')


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            size = int(os.environ.get("REFERENCE_POOL_MAX", "20"))  # bench.run's budget
            state["pool"] = await asyncpg.create_pool(
                os.environ["DATABASE_URL"], min_size=min(5, size), max_size=size
            )
            state["redis"] = Redis.from_url(os.environ["REDIS_URL"])
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await state["redis"].aclose()
            await state["pool"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
