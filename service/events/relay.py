"""The relay: outbox rows to the Redis Stream, in order, once, by one process per database.

- Every serving process runs `Relay.run`. Whoever takes the session advisory lock on its own
  direct connection (APICTL_DB_DIRECT_URL: a pooler cannot hold a session lock) relays; the
  others try again every STANDBY_SECONDS, so a dead holder (its connection closes with it) is
  replaced within about a second.
- Rows are relayed in (xid, id) order, and only those whose transaction is older than every
  running one (`xid < pg_snapshot_xmin(...)`): no later commit can then sort below a row already
  relayed, so order holds across concurrent writers and hand-overs.
- Once: the APPEND script adds, atomically, only rows above the last (xid, id) it appended
  (kept in Redis beside the Stream, tagged with the cluster's system identifier), so a relay
  that dies between XADD and DELETE, or two relays in a split second, never append twice.
- Woken by the writing process at commit (in-process, or by NOTIFY to the holder, coalesced and
  off the request path); polls every POLL_SECONDS in case a wake-up was lost.
- Redis down: rows wait, the relay retries every REDIS_RETRY_SECONDS; past
  APICTL_EVENT_BACKLOG_LIMIT waiting events, writes are refused (503), never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.config import DIRECT_URL_HINT, NO_DIRECT_URL, Settings
from service.db import CONNECT_FAULTS, Database
from service.errors import ServiceUnavailable
from service.events import outbox
from service.events.bus import STREAM, STREAM_MAXLEN
from service.process.cancellation import stop_if_cancelled
from service.tracing.instruments import UNTRACED, Instruments
from service.webhooks import message
from service.webhooks import queries as webhook_queries

LOCK_KEY = 0x6170_6963_746C_0001  # "apictl" + 1: the relay's advisory lock, per database
CHANNEL = "apictl_outbox"
RELAYED = "apictl:events:relayed"  # the last (xid, id) appended, and whose cluster it is
IDS = "apictl:events:relayed-ids"  # the Stream ids of the rows of the last append
BATCH = 500
POLL_SECONDS = 1.0  # a lost wake-up costs at most this
STANDBY_SECONDS = 1.0
MEASURE_SECONDS = 1.0
REDIS_RETRY_SECONDS = 0.5
LAGGING_SECONDS = 5.0  # an event waiting longer than this makes /ready's events "degraded"
log = logging.getLogger("apictl.events")

# (ORDER BY names the table's xid8 column: an output column of that name would sort as text)
SELECT_BATCH = """
SELECT id, xid::text AS txid, type, data::text AS data,
       xid < pg_snapshot_xmin(pg_current_snapshot()) AS settled
FROM event_outbox ORDER BY event_outbox.xid, event_outbox.id LIMIT $1
"""
# Out of the outbox, and to the webhooks subscribed, in one statement
MOVED = f"""
WITH relayed AS (DELETE FROM event_outbox WHERE id = ANY($4::bigint[]))
{webhook_queries.FAN_OUT}
"""  # noqa: S608 (constant SQL)
MEASURE = """
SELECT (SELECT count(*) FROM (SELECT FROM event_outbox LIMIT $1) AS waiting) AS backlog,
       (SELECT extract(epoch FROM now() - created_at)::float8
        FROM event_outbox ORDER BY xid, id LIMIT 1) AS lag
"""
HOLDER = """
SELECT a.application_name, a.client_addr::text AS address, a.pid, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295)
"""

# KEYS: the Stream, the RELAYED hash, the IDS hash. ARGV: maxlen, cluster id, then xid, id, type,
# data per row. Returns each row's Stream id: the one XADD gave it, or, for a row appended by a
# call whose relay died before deleting it, the one IDS kept (IDS holds the last call's rows).
APPEND = """
local last_xid, last_id = -1, -1
if redis.call('HGET', KEYS[2], 'cluster') == ARGV[2] then
  last_xid = tonumber(redis.call('HGET', KEYS[2], 'xid'))
  last_id = tonumber(redis.call('HGET', KEYS[2], 'id'))
end
local xid_text, id_text, ids, kept = nil, nil, {}, {}
for i = 3, #ARGV, 4 do
  local xid, id = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local row = ARGV[i] .. ':' .. ARGV[i + 1]
  local stream_id
  if xid > last_xid or (xid == last_xid and id > last_id) then
    stream_id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                           'type', ARGV[i + 2], 'data', ARGV[i + 3])
    last_xid, last_id, xid_text, id_text = xid, id, ARGV[i], ARGV[i + 1]
  else
    stream_id = redis.call('HGET', KEYS[3], row) or ''
  end
  ids[#ids + 1] = stream_id
  if stream_id ~= '' then
    kept[#kept + 1] = row
    kept[#kept + 1] = stream_id
  end
end
if xid_text then
  redis.call('HSET', KEYS[2], 'cluster', ARGV[2], 'xid', xid_text, 'id', id_text)
end
redis.call('DEL', KEYS[3])
if #kept > 0 then
  redis.call('HSET', KEYS[3], unpack(kept))
end
return ids
"""


@dataclass(frozen=True)
class Backlog:
    waiting: int  # counted up to the limit + 1
    lag: float  # seconds the oldest waiting event has waited (0 when none waits)


@dataclass(frozen=True)
class Holder:
    application_name: str
    address: str | None
    pid: int  # the PostgreSQL backend's
    since: datetime


@dataclass(frozen=True)
class Status:
    """What `apictl events status` shows."""

    backlog: int
    oldest_waiting_seconds: float
    holder: Holder | None
    stream_length: int | None  # None: Redis unreachable
    last_id: str | None
    redis_error: str | None = None


class Relay:
    """The relay of one process: `run` it while serving; `written` after a commit of events."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: Redis,
        instruments: Instruments = UNTRACED,
        delivering: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings, self.db, self.redis = settings, db, redis
        self.delivering = delivering  # called once events reached webhook deliveries
        self.instruments = instruments  # each relayed batch is a trace of its own
        self.limit = settings.event_backlog_limit
        self.holding = False
        self.redis_failing = False
        self.backlog = Backlog(0, 0.0)  # measured every MEASURE_SECONDS while serving
        self._wake = asyncio.Event()
        self._notifier: asyncio.Task[None] | None = None
        self._notify_again = False
        self._failure = ""
        self._append = redis.register_script(APPEND)
        self.name = f"apictl relay {socket.gethostname()}:{os.getpid()}"

    # -- the write side ------------------------------------------------------------------------

    def check_room(self) -> None:
        """Refuse a write (503) while the outbox holds more than APICTL_EVENT_BACKLOG_LIMIT."""
        if self.limit and self.backlog.waiting > self.limit:
            raise ServiceUnavailable(
                f"more than {self.limit} events wait to be relayed (is Redis down?);"
                " writes resume when the backlog drains"
            )

    def written(self) -> None:
        """Events were committed: wake the relay, here or (NOTIFY) in the process holding it."""
        if self.holding:
            self._wake.set()
        elif self._notifier is None or self._notifier.done():
            self._notifier = asyncio.create_task(self._notify())
        else:
            self._notify_again = True

    async def _notify(self) -> None:
        again = True
        while again:
            self._notify_again = False
            try:
                async with self.db.connection() as conn:
                    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
            except ServiceUnavailable:
                return  # the holder's poll finds the rows anyway
            again = self._notify_again

    async def close(self) -> None:
        """Send a wake-up still pending (a CLI command's last write) before the pool closes."""
        if self._notifier is not None:
            with contextlib.suppress(TimeoutError, ServiceUnavailable):
                await asyncio.wait_for(asyncio.shield(self._notifier), 2.0)

    # -- measuring -----------------------------------------------------------------------------

    async def measure(self) -> Backlog:
        async with self.db.connection() as conn:
            try:
                row = await conn.fetchrow(MEASURE, self.limit + 1 if self.limit else None)
            except asyncpg.UndefinedTableError:
                raise ServiceUnavailable("no event outbox yet: migrations pending") from None
        assert row is not None
        return Backlog(row["backlog"], row["lag"] or 0.0)

    async def holder(self) -> Holder | None:
        """Which database session holds the relay now, if any."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(HOLDER, LOCK_KEY)
        if row is None:
            return None
        return Holder(row["application_name"], row["address"], row["pid"], row["backend_start"])

    async def status(self) -> Status:
        backlog, holder = await self.measure(), await self.holder()
        try:
            length = await self.redis.xlen(STREAM)
            newest: Any = await self.redis.xrevrange(STREAM, count=1)
        except (RedisError, OSError) as exc:
            stop_if_cancelled(exc)
            return Status(backlog.waiting, backlog.lag, holder, None, None, str(exc))
        last = newest[0][0].decode() if newest else None
        return Status(backlog.waiting, backlog.lag, holder, length, last)

    async def _measure_forever(self) -> None:
        over = False
        while True:
            try:
                self.backlog = await self.measure()
            except ServiceUnavailable as exc:
                stop_if_cancelled(exc)
            if self.limit and (self.backlog.waiting > self.limit) != over:
                over = not over
                if over:
                    log.error(
                        "event outbox over its limit (%d waiting): writes refused until it drains",
                        self.limit,
                    )
                else:
                    log.warning("event outbox back under its limit: writes accepted")
            await asyncio.sleep(MEASURE_SECONDS)

    # -- relaying ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Measure the backlog, and relay whenever this process holds the lock; until cancelled."""
        measuring = asyncio.create_task(self._measure_forever())
        url = self.settings.direct_url
        try:
            if url is None:  # `apictl serve` refuses to start so; any other way in hears it here
                log.error("events are not relayed: %s; %s", NO_DIRECT_URL, DIRECT_URL_HINT)
                await measuring  # runs until cancelled: the backlog limit still guards writes
                return
            while True:
                try:
                    await self._hold_and_relay(url)
                except Exception as exc:  # a bug must cost a pause, never the relay
                    stop_if_cancelled(exc)
                    log.exception("event relay failed; restarting it")
                await asyncio.sleep(STANDBY_SECONDS)
        finally:
            measuring.cancel()

    async def _hold_and_relay(self, url: str) -> None:
        s = self.settings
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                url,
                timeout=s.db_acquire_timeout,
                command_timeout=s.db_command_timeout,
                server_settings={"application_name": self.name},
                connection_class=self.instruments.connection_class,
            )
        except CONNECT_FAULTS as exc:
            stop_if_cancelled(exc)
            log.debug("event relay cannot connect: %s", exc)
            return
        try:
            await self._take_lock(conn)
            cluster = await conn.fetchval("SELECT system_identifier::text FROM pg_control_system()")
            await conn.add_listener(CHANNEL, self._woken)
            self.holding, self._failure = True, ""
            log.info("event relay active in this process")
            await self._relay(conn, cluster)
        except CONNECT_FAULTS as exc:  # the database's faults, and any error of its own
            stop_if_cancelled(exc)
            failure = f"{type(exc).__name__}: {exc}"
            if failure != self._failure:  # once per kind of failure, not every second
                log.warning("event relay stopped (%s); standing by", failure)
            self._failure = failure
        finally:
            self.holding = False
            conn.terminate()  # the lock goes with the session, at once

    @staticmethod
    async def _take_lock(conn: asyncpg.Connection) -> None:
        """Stand by until this session holds the relay lock (the holder's session has ended)."""
        while True:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                return
            await asyncio.sleep(STANDBY_SECONDS)

    def _woken(self, *_: Any) -> None:
        self._wake.set()

    async def _relay(self, conn: asyncpg.Connection, cluster: str) -> None:
        unsettled_wait = 0.005
        while True:
            self._wake.clear()  # before reading: a commit from now on wakes the next pass
            rows = await conn.fetch(SELECT_BATCH, BATCH)
            settled = [row for row in rows if row["settled"]]  # a prefix, in (xid, id) order
            if settled and await self._relayed(conn, settled, cluster):
                unsettled_wait = 0.005
                if len(settled) == BATCH:
                    continue
            if len(settled) < len(rows):
                # committed rows behind a transaction still running: look again shortly
                await asyncio.sleep(unsettled_wait)
                unsettled_wait = min(unsettled_wait * 2, 0.2)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _relayed(
        self, conn: asyncpg.Connection, rows: list[asyncpg.Record], cluster: str
    ) -> bool:
        with self.instruments.spans.root("relay events"):
            return await self._moved(conn, rows, cluster)

    async def _moved(
        self, conn: asyncpg.Connection, rows: list[asyncpg.Record], cluster: str
    ) -> bool:
        """Append `rows` to the Stream (those not appended yet), then delete them."""
        args: list[Any] = [STREAM_MAXLEN, cluster]
        for row in rows:
            args += [row["txid"], row["id"], row["type"], outbox.encode(row["type"], row["data"])]
        try:
            stream_ids: list[bytes] = await self._append(keys=[STREAM, RELAYED, IDS], args=args)
        except (RedisError, OSError) as exc:
            stop_if_cancelled(exc)
            if not self.redis_failing:
                log.warning("events wait in the outbox, Redis unreachable: %s", exc)
            self.redis_failing = True
            await asyncio.sleep(REDIS_RETRY_SECONDS)
            return False
        if self.redis_failing:
            log.warning("Redis is back: relaying the outbox")
            self.redis_failing = False
        events = [(i.decode(), args[4 + 4 * n], args[5 + 4 * n]) for n, i in enumerate(stream_ids)]
        events = [event for event in events if event[0]]
        if len(events) < len(rows):  # only if Redis lost what it had been given
            log.warning(
                "%d event(s) relayed without their ids: no webhooks for them",
                len(rows) - len(events),
            )
        await conn.execute(
            MOVED,
            [event_id for event_id, _, _ in events],
            [event_type for _, event_type, _ in events],
            [message.body(*event) for event in events],
            [row["id"] for row in rows],
        )
        self.delivering()
        return True
