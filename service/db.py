"""The asyncpg pool: bounded waits everywhere, database faults turned into 503s.

`Database.connection()` is the one way in: it waits at most APICTL_DB_ACQUIRE_TIMEOUT for a
connection and turns an unreachable, restarting or timed-out database into `ServiceUnavailable`
instead of a hang or a 500. Connections are recycled every APICTL_DB_MAX_LIFETIME seconds.

A connection a request is done with goes to the next request directly (`Database.idle`), not
through asyncpg's release and acquire: those cost about 12 us a request (a task to shield the
release, a timeout scope, an idle timer armed and cancelled, a proxy per acquire), some 5 % of
a read. Every second what is idle goes back to asyncpg's pool, whose idle timeout, lifetime
and query limit then apply as before.

Behind a transaction pooler (APICTL_DB_POOLER=transaction, e.g. PgBouncer 1.18) a server
connection is ours only inside a transaction, and asyncpg sends each statement in two steps
(Parse/Describe, then Bind/Execute): so no statement cache, and every connection block runs in one
transaction, which keeps both steps (and the block's statements) on one server connection.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from service.config import Settings, mask_url
from service.errors import ServiceUnavailable

Connection = PoolConnectionProxy  # what Database.connection() hands out

# What a database outage looks like from asyncpg: refused/reset sockets, timeouts, a backend
# killed or restarting, statement_timeout, and a connection left in a state asyncpg cannot use
# (InternalClientError: seen on the first query after pg_terminate_backend hit it while idle).
DATABASE_FAULTS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
)

# Failing to get a connection at all (bad database name, auth, a server starting up) is an
# outage too.
CONNECT_FAULTS: tuple[type[BaseException], ...] = (*DATABASE_FAULTS, asyncpg.PostgresError)
HAND_BACK_SECONDS = 1.0  # how long a connection stays in Database.idle at most


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (RESET ALL; UNLISTEN *; ...).

    The service keeps no session state, and asyncpg still rolls back any open transaction
    before calling this, so skipping the query saves one round trip per request.
    """


class Database:
    """A pool of connections to PostgreSQL, created in the app lifespan and closed there."""

    def __init__(
        self, settings: Settings, connection_class: type[asyncpg.Connection] = asyncpg.Connection
    ) -> None:
        assert settings.database_url is not None, "resolve embedded servers first"
        self.settings = settings
        self.connection_class = connection_class  # a traced one when tracing is on
        self.pool: asyncpg.Pool | None = None
        # One place per pool connection, handed out first come, first served. asyncpg's own
        # queue lets a newcomer take a connection released for a waiter, and the waiter
        # queues again at the back: under load a few requests waited many times longer than
        # the rest (read p99 4x the reference's, nearly all of it waiting for a connection;
        # upstream: MagicStack/asyncpg#1247, "Potential starvation with connection pool").
        self.places = asyncio.Semaphore(settings.db_pool_max)
        # released connections kept for the next request, newest last (service/db.py's doc)
        self.idle: list[Connection] = []
        self._recycler: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect APICTL_DB_POOL_MIN connections; ServiceUnavailable if the server is not there."""
        s = self.settings
        try:
            self.pool = await self._create_pool(s, self.connection_class)
        except CONNECT_FAULTS as exc:
            raise ServiceUnavailable(
                f"database unreachable at {mask_url(str(s.database_url))}: "
                f"{exc or type(exc).__name__}"
            ) from None
        self._recycler = asyncio.create_task(self._recycle(s.db_max_lifetime))

    @staticmethod
    async def _create_pool(s: Settings, connection_class: type[asyncpg.Connection]) -> asyncpg.Pool:
        server_settings = {"application_name": "apictl"}
        pooled = s.db_pooler == "transaction"
        # PgBouncer refuses unknown startup parameters (docs/operations/pgbouncer.md)
        if not pooled:
            server_settings["statement_timeout"] = str(int(s.db_command_timeout * 1000))
        return await asyncpg.create_pool(
            s.database_url,
            statement_cache_size=0 if pooled else 100,  # 100: asyncpg's default
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            max_inactive_connection_lifetime=s.db_idle_timeout,
            command_timeout=s.db_command_timeout,
            timeout=s.db_acquire_timeout,
            reset=_keep_session,
            server_settings=server_settings,
            connection_class=connection_class,
        )

    async def close(self) -> None:
        if self._recycler is not None:
            self._recycler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recycler
        if self.pool is not None:
            await self.hand_back()
            try:
                await asyncio.wait_for(self.pool.close(), self.settings.shutdown_timeout)
            except TimeoutError:  # a connection still busy past the shutdown budget
                self.pool.terminate()

    async def _recycle(self, lifetime: float) -> None:
        # Each expiry closes every older connection at its next release or acquire, so no
        # connection outlives `lifetime` (and a second more in `idle`).
        loop = asyncio.get_running_loop()
        expiry = loop.time() + lifetime
        while True:
            await asyncio.sleep(HAND_BACK_SECONDS)
            await self.hand_back()
            if loop.time() >= expiry and self.pool is not None:
                expiry = loop.time() + lifetime
                await self.pool.expire_connections()

    async def hand_back(self) -> None:
        """Release the idle connections to asyncpg's pool."""
        while self.idle and self.pool is not None:
            await self.pool.release(self.idle.pop(0))

    def connection(self) -> _PooledConnection:
        """`async with db.connection() as conn`: a pooled connection for the block; database
        faults become ServiceUnavailable."""
        if self.pool is None:
            raise ServiceUnavailable("database unavailable")
        return _PooledConnection(self, in_transaction=self.settings.db_pooler == "transaction")

    async def ping(self) -> None:
        """Raise ServiceUnavailable unless the database answers a trivial query."""
        async with self.connection() as conn:
            await conn.fetchval("SELECT 1", timeout=self.settings.db_acquire_timeout)


def _reusable(conn: Connection) -> bool:
    """Whether `conn` can serve the next request as it is: open, outside a transaction, and
    still ours (asyncpg takes a connection back when the server closes it)."""
    try:
        return not conn.is_closed() and not conn.is_in_transaction()
    except asyncpg.InterfaceError:  # taken back: "connection has been released to the pool"
        return False


class _PooledConnection:
    """The context manager behind Database.connection (a class: it is on every request)."""

    __slots__ = ("conn", "db", "in_transaction", "xact")

    def __init__(self, db: Database, *, in_transaction: bool) -> None:
        self.db = db
        self.in_transaction = in_transaction  # the block is one transaction (a pooler's need)
        self.conn: Connection | None = None
        self.xact: Transaction | None = None

    async def __aenter__(self) -> Connection:
        # A place in line first, waiting at most APICTL_DB_ACQUIRE_TIMEOUT; with one, a pool
        # connection is free, so the pool's acquire waits at most for a connect (whose timeout
        # is the same setting) and needs no timeout wrapper of its own (a task per call).
        db = self.db
        try:
            if db.places.locked():
                async with asyncio.timeout(db.settings.db_acquire_timeout):
                    await db.places.acquire()
            else:
                await db.places.acquire()  # returns at once
        except TimeoutError as exc:
            raise ServiceUnavailable("database unavailable") from exc
        try:
            self.conn = await self._take(db)
        except BaseException as exc:
            db.places.release()
            if isinstance(exc, CONNECT_FAULTS):
                raise ServiceUnavailable("database unavailable") from exc
            raise
        if self.in_transaction:
            xact = self.conn.transaction()
            try:
                await xact.start()
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, None)  # released; an outage becomes a 503
                raise
            self.xact = xact
        return self.conn

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        try:
            await self._release(error)
        finally:
            self.db.places.release()

    @staticmethod
    async def _take(db: Database) -> Connection:
        """The newest idle connection still open, else one from asyncpg's pool."""
        assert db.pool is not None
        while db.idle:
            conn = db.idle.pop()
            if _reusable(conn):
                return conn
            await db.pool.release(conn)  # asyncpg finishes closing it (if it has not)
        fresh: Connection = await db.pool.acquire()
        return fresh

    async def _release(self, error: BaseException | None) -> None:
        assert self.conn is not None
        pool = self.db.pool
        assert pool is not None
        xact, self.xact = self.xact, None
        if xact is not None and not isinstance(error, DATABASE_FAULTS):
            try:
                await (xact.commit() if error is None else xact.rollback())
            except DATABASE_FAULTS as exc:  # the outage came at the end of the block
                error = exc
            except BaseException:  # e.g. a deferred constraint failing the commit
                await pool.release(self.conn)
                raise
        fault = error is not None and isinstance(error, DATABASE_FAULTS)
        if fault:  # whatever state the connection is in, it never serves another request
            with contextlib.suppress(asyncpg.InterfaceError):  # already closed and released
                self.conn.terminate()
        if fault:
            await pool.release(self.conn)  # asyncpg shields the release from cancellation
            raise ServiceUnavailable("database unavailable") from error
        if _reusable(self.conn):
            self.db.idle.append(self.conn)
        else:
            await pool.release(self.conn)  # asyncpg rolls back or finishes closing
