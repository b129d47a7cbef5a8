"""The bare ASGI reference: what Python can do for the same work, with no framework.

Same SQL as apictl (imported from it), the same token lookup (SHA-256 of the bearer token,
AUTHENTICATE), orjson for JSON, uvicorn with uvloop and httptools, no access log. Not part of
the product.

A write is apictl's: the post and its `post.created` event in one statement (apictl's INSERT
wrapped by `with_event` into the outbox, as its posts resource runs it), then an in-process
wake-up of the relay. The relay, a task of the lifespan on a connection of its own (as
apictl's), moves the outbox to the Stream in batches, woken after each write and polling every
POLL_SECONDS as a fallback: per batch, one statement that deletes the oldest waiting rows (up
to RELAY_BATCH) and returns them, and one pipelined XADD of them. No row locks: each outbox has
one relay, as apictl's has. It skips what apictl's relay (`service/events/relay.py`) adds on
top, so that it stays a lower bound on the work: the advisory lock that elects one relay per
database and the NOTIFY to it, the (xid, id) ordering guard (rows wait until every older
transaction has ended), the exactly-once APPEND script and its bookkeeping (here a batch whose
XADD fails is lost, not retried), re-encoding each event's data with its pydantic model (the
Stream gets PostgreSQL's JSON as stored), and the backlog measurement and limit.

Each reference process has an outbox of its own: the same table (`LIKE event_outbox INCLUDING
ALL`: columns, defaults, identity, index) in a schema named after its pid, first on its
connections' search_path, so the same SQL writes there. So apictl's relay, which polls its
table every second whichever target is measured, never takes a reference's rows (nor works on
them while the reference is measured), they never count against apictl's backlog limit, and
no reference takes apictl's rows or another reference's. Likewise a Stream of its own (the
same XADDs), so apictl's event reader, idle on the same core, does not read the reference's
events while it is measured. At shutdown the relay moves what still waits, then the schema and
the Stream go.

REFERENCE_TOKEN_CACHE=1 also gives it apictl's 10 s in-process token cache (without the
invalidation machinery): the stricter yardstick, reported beside the benchmark's original one,
which looks every token up in PostgreSQL (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import time
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import asyncpg
import orjson
from redis.asyncio import Redis

from service.auth.queries import AUTHENTICATE
from service.events.bus import STREAM_MAXLEN
from service.events.outbox import with_event
from service.posts.queries import INSERT, TABLE
from service.posts.schemas import Post

BY_ID, FIRST_PAGE = TABLE.by_id, TABLE.first_page
WRITE = with_event(INSERT, "post.created", Post)  # the statement apictl's posts resource runs
RELAY_BATCH = 500  # as apictl's relay
POLL_SECONDS = 1.0  # a lost wake-up costs at most this
TAKE_BATCH = """
DELETE FROM event_outbox WHERE id IN (SELECT id FROM event_outbox ORDER BY id LIMIT $1)
RETURNING id, type, data::text AS data
"""
CACHE = os.environ.get("REFERENCE_TOKEN_CACHE") == "1"
CACHE_TTL = 10.0
JSON = [(b"content-type", b"application/json")]
state: dict[str, Any] = {}
tokens: dict[bytes, tuple[UUID, float]] = {}
log = logging.getLogger("bench.reference")


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
            row = await conn.fetchrow(WRITE, user, data["title"], data.get("body", ""))
        state["wake"].set()
        await _respond(send, 201, orjson.dumps(dict(row), default=_default))
    else:
        await _respond(send, 404, b'{"error":"not found"}')


async def _move(conn: asyncpg.Connection) -> int:
    """One batch: the oldest waiting events out of the outbox and onto the Stream, in order."""
    rows = sorted(await conn.fetch(TAKE_BATCH, RELAY_BATCH), key=lambda row: row["id"])
    if rows:
        pipe = state["redis"].pipeline(transaction=False)
        for row in rows:
            fields = {"type": row["type"], "data": row["data"]}
            pipe.xadd(state["stream"], fields, maxlen=STREAM_MAXLEN, approximate=True)
        await pipe.execute()
    return len(rows)


async def _relay(conn: asyncpg.Connection, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """A batch whenever woken (a write) or every POLL_SECONDS; once `stop` is set, it moves
    what still waits and returns (never cancelled mid-batch, so no event is lost)."""
    while True:
        wake.clear()  # before taking: a write from now on wakes the next pass
        try:
            if await _move(conn) == RELAY_BATCH:
                continue
        except Exception:  # a fault costs a pause, never the relay
            log.exception("reference relay failed; trying again")
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), POLL_SECONDS)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            url, schema = os.environ["DATABASE_URL"], f"bench_reference_{os.getpid()}"
            conn = state["relay_conn"] = await asyncpg.connect(url)
            path = f"{schema}, {await conn.fetchval('SHOW search_path')}"
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {schema};"
                f" CREATE TABLE IF NOT EXISTS {schema}.event_outbox"
                " (LIKE event_outbox INCLUDING ALL);"
                f" SET search_path = {path}"
            )
            size = int(os.environ.get("REFERENCE_POOL_MAX", "20"))  # bench.run's budget
            state["pool"] = await asyncpg.create_pool(
                url, min_size=min(5, size), max_size=size, server_settings={"search_path": path}
            )
            state["redis"] = Redis.from_url(os.environ["REDIS_URL"])
            state["stream"] = f"{schema}:events"
            state["wake"], state["stop"] = asyncio.Event(), asyncio.Event()
            state["relay"] = asyncio.create_task(_relay(conn, state["wake"], state["stop"]))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            state["stop"].set()
            state["wake"].set()
            await state["relay"]  # what still waits reaches the Stream; then this outbox goes
            await state["relay_conn"].execute(f"DROP SCHEMA bench_reference_{os.getpid()} CASCADE")
            await state["relay_conn"].close()
            await state["redis"].delete(state["stream"])
            await state["redis"].aclose()
            await state["pool"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
