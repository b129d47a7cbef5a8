"""Delivering webhooks: every serving process claims what is due and POSTs it, signed.

- Deliveries are rows (written by the event relay as events leave the outbox). A process claims
  due rows with `FOR UPDATE SKIP LOCKED` and leases them (next_attempt_at pushed past the
  attempt's timeout), so N instances share the work, each attempt is made by one of them, and a
  process killed mid-attempt leaves its rows to be claimed again when the lease ends. At least
  once: a duplicate only after a crash between sending and recording, with the same webhook-id.
  A process that stops (SIGTERM) claims nothing more and lets its attempts finish and be
  recorded, for up to APICTL_SHUTDOWN_TIMEOUT; those still waiting then are let go at once
  (their lease ended) for another instance to make again.
- Each attempt is a task of its own, at most PER_ENDPOINT in flight per endpoint and IN_FLIGHT
  in all per process: a slow or dead endpoint holds its own share (it takes 50 of them, each
  holding its share for the whole timeout, to hold up the rest), and never the event stream (the
  relay only writes rows).
- A 2xx within APICTL_WEBHOOK_TIMEOUT is delivered; anything else is tried again after the next
  step of APICTL_WEBHOOK_RETRY_SCHEDULE (+-10 %, later if the answer's Retry-After asks, up to
  the step after), and fails after the last. 410 Gone disables the endpoint at once; an endpoint
  whose deliveries have all failed for DISABLE_AFTER_SECONDS is disabled.
- Redirects are not followed, at most RESPONSE_CAP bytes of an answer are read, and the address
  connected to is the one service.webhooks.addresses checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from contextvars import Context
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from uuid import UUID

import asyncpg

from service.config import Settings
from service.db import Database
from service.errors import ServiceUnavailable
from service.process.cancellation import cancel_and_wait, stop_if_cancelled
from service.tracing.instruments import UNTRACED, Instruments
from service.webhooks import addresses, message, queries
from service.webhooks.client import Answer, Client, HTTPError

IN_FLIGHT = 500  # attempts at once, per process
PER_ENDPOINT = 10  # of which for one endpoint
POLL_SECONDS = 1.0  # how soon another process's new deliveries are seen
MEASURE_SECONDS = 5.0
KEPT_SECONDS = 7 * 86400  # finished deliveries, for `webhooks deliveries` (1,000 pruned a measure)
LEASE_MARGIN = 5.0  # seconds past the timeout before a claimed attempt is another's to make
DISABLE_AFTER_SECONDS = 5 * 86400
RESPONSE_CAP = 64 * 1024
JITTER = 0.1
# Slots freed within this long are claimed for in one statement (one a slot was ~2 per delivery)
GATHER_SECONDS = 0.001
CUT_SECONDS = 2.0  # for attempts cut short at the stop to end, and for their leases to be let go
REDIRECTS = frozenset((301, 302, 303, 307, 308))
log = logging.getLogger("apictl.webhooks")
Delivered = tuple[int, int, UUID, asyncio.Future[None]]  # delivery, status, endpoint, recorded


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status (None: no answer) and, when it failed, why."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def next_delay(
    schedule: list[int], attempts: int, retry_after: float | None, rand: random.Random
) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None: there is none."""
    if attempts > len(schedule):
        return None
    step = schedule[attempts - 1] * rand.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        ceiling = schedule[attempts] if attempts < len(schedule) else schedule[-1]
        step = max(step, min(retry_after, ceiling))
    return step


def retry_after(value: str | None) -> float | None:
    """A Retry-After in seconds (its HTTP-date form counts too); None if absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    return None


class Dispatcher:
    """The webhook deliveries of one process: `run` it while serving."""

    def __init__(self, settings: Settings, db: Database, instruments: Instruments = UNTRACED):
        self.settings, self.db, self.spans = settings, db, instruments.spans
        self.delivered = self.retried = self.failed = 0  # attempts, for /metrics
        self.backlog = 0  # deliveries waiting (all processes'), measured every MEASURE_SECONDS
        self.in_flight: dict[UUID, int] = {}
        self.random = random.Random()  # noqa: S311 (jitter, not a secret)
        self._wake = asyncio.Event()
        self._attempts: dict[asyncio.Task[None], int] = {}  # the delivery each one makes
        self._stopping = False
        self._finishing: asyncio.Task[None] | None = None
        self._delivered: list[Delivered] = []  # to record
        self._gathering = False
        self._recorder: asyncio.Task[None] | None = None
        self._client = Client(RESPONSE_CAP)

    def wake(self) -> None:
        """New deliveries were written (the relay, in this process): claim them now."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and attempt deliveries, and measure the backlog, until cancelled."""
        measuring = asyncio.create_task(self._measure_forever())
        try:
            while True:
                self._wake.clear()
                try:
                    claimed = await self._claim()
                except (ServiceUnavailable, asyncpg.PostgresError, OSError) as exc:
                    stop_if_cancelled(exc)
                    log.warning("webhook deliveries paused: %s", exc)
                    claimed = []
                for row in claimed:
                    self._start(row)
                if not claimed or len(self._attempts) >= IN_FLIGHT:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            measuring.cancel()
            for task in self._attempts:
                task.cancel()  # their rows stay leased: tried again when the lease ends
            await asyncio.gather(*self._attempts, return_exceptions=True)
            await self._client.aclose()

    def stop(self, within: float) -> None:
        """Claim nothing more; give the attempts in flight up to `within` seconds to be made and
        recorded (while uvicorn lets requests finish), then cut the rest short and end their
        lease, so that another instance makes them again now rather than when it would end."""
        if self._finishing is None:
            self._stopping = True
            self._wake.set()
            self._finishing = asyncio.get_running_loop().create_task(self._finish(within))

    async def finish(self, within: float) -> None:
        """`stop`, and wait until it is done."""
        self.stop(within)
        assert self._finishing is not None
        await self._finishing

    async def _finish(self, within: float) -> None:
        if not self._attempts:
            return
        _, cut = await asyncio.wait(self._attempts, timeout=within)
        if not cut:
            return
        ids = [self._attempts[task] for task in cut]
        await cancel_and_wait(cut, CUT_SECONDS)
        log.warning("%d webhook deliveries cut short by the stop: tried again at once", len(ids))
        with contextlib.suppress(ServiceUnavailable, asyncpg.PostgresError, OSError, TimeoutError):
            async with asyncio.timeout(CUT_SECONDS), self.db.connection() as conn:
                await conn.execute(queries.RELEASE, ids)

    async def _claim(self) -> list[asyncpg.Record]:
        free = IN_FLIGHT - len(self._attempts)
        if free <= 0 or self._stopping:
            return []
        busy, counts = list(self.in_flight), list(self.in_flight.values())
        lease = self.settings.webhook_timeout + LEASE_MARGIN
        async with self.db.connection() as conn:
            return await conn.fetch(queries.CLAIM, free, PER_ENDPOINT, busy, lease, counts)

    def _start(self, row: asyncpg.Record) -> None:
        endpoint = row["endpoint_id"]
        self.in_flight[endpoint] = self.in_flight.get(endpoint, 0) + 1
        task = asyncio.create_task(self._attempt(row))
        self._attempts[task] = row["id"]
        task.add_done_callback(lambda done: self._finished(done, endpoint))

    def _finished(self, task: asyncio.Task[None], endpoint: UUID) -> None:
        self._attempts.pop(task, None)
        self.in_flight[endpoint] -= 1
        if not self.in_flight[endpoint]:
            del self.in_flight[endpoint]
        if not self._gathering:  # slots freed within GATHER_SECONDS: one claim for them all
            self._gathering = True
            asyncio.get_running_loop().call_later(GATHER_SECONDS, self._gathered)

    def _gathered(self) -> None:
        self._gathering = False
        self._wake.set()

    async def _attempt(self, row: asyncpg.Record) -> None:
        try:
            with self.spans.root("webhook delivery"):
                outcome = await self.send(row)
                await self._record(row, outcome)
        except Exception as exc:  # a bug or a database fault costs this attempt, not the loop
            stop_if_cancelled(exc)
            log.exception("webhook delivery %s: not recorded (tried again later)", row["id"])

    async def send(self, row: asyncpg.Record) -> Outcome:
        """POST one delivery, signed with the endpoint's secret(s); never raises for the
        endpoint's faults."""
        signing = [row["secret"], *([row["previous_secret"]] if row["previous_secret"] else [])]
        try:
            async with asyncio.timeout(self.settings.webhook_timeout):
                target = await addresses.target(row["url"], self.settings.webhook_allow_private)
                headers = message.headers(row["event_id"], row["body"], signing, datetime.now(UTC))
                headers["host"] = target.host_header
                answer = await self._client.post(
                    target.url, headers, row["body"].encode(), target.server_name
                )
        except addresses.Refused as exc:
            return Outcome(None, f"refused: {exc}")
        except TimeoutError:
            return Outcome(None, f"no answer within {self.settings.webhook_timeout:g} s")
        except (HTTPError, OSError) as exc:  # OSError: refused, unreachable, TLS (ssl.SSLError)
            return Outcome(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if 200 <= answer.status < 300:
            return Outcome(answer.status)
        return Outcome(answer.status, _why(answer), retry_after(answer.headers.get("retry-after")))

    async def _record(self, row: asyncpg.Record, outcome: Outcome) -> None:
        endpoint = row["endpoint_id"]
        if outcome.delivered and outcome.status is not None:
            await self._record_delivered(row["id"], outcome.status, endpoint)
            self.delivered += 1
            return
        gone = outcome.status == 410
        delay = None if gone else self._delay(row["attempts"], outcome)
        reason = "the endpoint answered 410 Gone" if gone else None
        async with self.db.connection() as conn:
            health = await conn.fetchrow(
                queries.NOT_DELIVERED, row["id"], outcome.status, delay, outcome.error,
                endpoint, reason, DISABLE_AFTER_SECONDS,
            )  # fmt: skip
        if delay is None:
            self.failed += 1
        else:
            self.retried += 1
            asyncio.get_running_loop().call_later(delay, self._wake.set)  # not a poll later
        if health is not None and health["disabled"]:
            log.warning("webhook %s disabled: %s", endpoint, health["disabled_reason"])

    async def _record_delivered(self, delivery: int, status: int, endpoint: UUID) -> None:
        """Recorded with the deliveries that ended meanwhile: while one statement records a
        batch, the next gathers (about 5 a statement where one each cost a quarter more CPU)."""
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._delivered.append((delivery, status, endpoint, recorded))
        if self._recorder is None:  # a trace of its own, not the attempt's that started it
            self._recorder = asyncio.create_task(self._record_batches(), context=Context())
        await recorded

    async def _record_batches(self) -> None:
        batch: list[Delivered] = []
        try:
            while self._delivered:
                batch, self._delivered = self._delivered, []
                failure = None
                try:
                    with self.spans.root("webhook deliveries recorded"):
                        async with self.db.connection() as conn:
                            await conn.execute(
                                queries.DELIVERED, [d for d, _, _, _ in batch],
                                [s for _, s, _, _ in batch], list({e for _, _, e, _ in batch}),
                            )  # fmt: skip
                except Exception as exc:  # each attempt of the batch logs it
                    stop_if_cancelled(exc)
                    failure = ServiceUnavailable(f"not recorded: {exc}")
                _settle(batch, failure)
        finally:
            self._recorder = None
            _settle(batch, ServiceUnavailable("not recorded: the process stops"))  # cancelled

    def _delay(self, attempts: int, outcome: Outcome) -> float | None:
        schedule = self.settings.webhook_retry_schedule
        return next_delay(schedule, attempts, outcome.retry_after, self.random)

    async def _measure_forever(self) -> None:
        while True:
            try:
                async with self.db.connection() as conn:
                    self.backlog = await conn.fetchval(queries.BACKLOG)
                    await conn.execute(queries.PRUNE, KEPT_SECONDS)
            except (ServiceUnavailable, asyncpg.PostgresError, OSError) as exc:
                stop_if_cancelled(exc)
            await asyncio.sleep(MEASURE_SECONDS)


def _settle(batch: list[Delivered], failure: Exception | None) -> None:
    """Tell the attempts of `batch` still waiting whether their delivery was recorded."""
    for *_, recorded in batch:
        if recorded.done():
            continue
        if failure is None:
            recorded.set_result(None)
        else:
            recorded.set_exception(failure)


def _why(answer: Answer) -> str:
    """A failed answer in one line, for the delivery's last_error."""
    why = f"HTTP {answer.status}"
    if answer.status in REDIRECTS:
        return f"{why} redirect to {answer.headers.get('location', '?')} (not followed)"
    text = answer.body.decode("utf-8", "replace").strip().splitlines()
    return f"{why}: {text[0][:200]}" if text else why
