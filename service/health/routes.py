"""Operations: `GET /health` (liveness: touches nothing), `GET /ready` (database, Redis,
migrations, events; 503 `draining` once the worker is stopping) and `GET /metrics` (Prometheus
text)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from service.errors import ServiceUnavailable
from service.events.relay import LAGGING_SECONDS
from service.http.metrics import CONTENT_TYPE
from service.http.route_options import ApiRoute, route_options
from service.process.migration_state import pending_migrations

router = APIRouter(tags=["health"], route_class=ApiRoute)
CHECK_TIMEOUT = 2.0
_HEALTHY = b'{"status":"ok"}'


class Health(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    status: Literal["ok", "degraded", "down"]
    error: str | None = None
    pending: list[str] | None = None
    backlog: int | None = None  # events waiting in the outbox


class Readiness(BaseModel):
    status: Literal["ready", "unavailable", "draining"]
    checks: dict[str, Check]


DRAINING = Readiness(status="draining", checks={}).model_dump_json().encode()


@router.get("/health", response_model=Health, summary="Liveness: 200 while the process runs")
@route_options(counted=False, constant=True)  # probes: never limited; answered once matched
async def health() -> Response:
    return Response(_HEALTHY, media_type="application/json")


async def _check_database(request: Request) -> Check:
    try:
        await asyncio.wait_for(request.app.state.runtime.db.ping(), CHECK_TIMEOUT)
    except (ServiceUnavailable, TimeoutError) as exc:
        return Check(status="down", error=str(exc) or "timed out")
    return Check(status="ok")


async def _check_redis(request: Request) -> Check:
    try:
        await asyncio.wait_for(request.app.state.runtime.redis.ping(), CHECK_TIMEOUT)
    except Exception as exc:  # any Redis failure is a degraded feature, never a failed probe
        return Check(
            status="degraded",
            error=f"{type(exc).__name__}: login rate limit is per-process, token checks use the"
            " database",
        )
    return Check(status="ok")


async def _check_migrations(request: Request) -> Check:
    try:
        async with request.app.state.runtime.db.connection() as conn:
            pending = await pending_migrations(conn, request.app.state.migration_ids)
    except ServiceUnavailable:
        return Check(status="down", error="database unavailable")
    if pending:
        return Check(status="down", error="migrations pending", pending=pending)
    return Check(status="ok")


async def _check_events(request: Request, redis: Check) -> Check:
    relay = request.app.state.runtime.relay
    try:
        backlog = await asyncio.wait_for(relay.measure(), CHECK_TIMEOUT)
    except ServiceUnavailable as exc:
        return Check(status="degraded", error=str(exc))
    except TimeoutError:
        return Check(status="degraded", error="the outbox did not answer in time")
    if relay.limit and backlog.waiting > relay.limit:
        error = f"over the outbox limit of {relay.limit}: writes are refused until it drains"
    elif backlog.lag > LAGGING_SECONDS:
        error = f"the oldest event has waited {backlog.lag:.0f} s (Redis down? no relay?)"
    elif backlog.waiting and (relay.redis_failing or redis.status != "ok"):
        error = "Redis unreachable: events wait in the outbox"
    else:
        return Check(status="ok", backlog=backlog.waiting)
    return Check(status="degraded", error=error, backlog=backlog.waiting)


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: 503 while the database is down, migrations are pending or the worker"
    " drains",
    responses={503: {"model": Readiness}},
)
@route_options(counted=False)
async def ready(request: Request) -> Response:
    if request.app.state.drain.draining:  # stopping: load balancers take this one out
        return Response(DRAINING, status_code=503, media_type="application/json")
    database, redis, migrations = await asyncio.gather(
        _check_database(request), _check_redis(request), _check_migrations(request)
    )
    events = await _check_events(request, redis)
    checks = {"database": database, "redis": redis, "migrations": migrations, "events": events}
    ok = database.status == "ok" and migrations.status == "ok"
    body = Readiness(status="ready" if ok else "unavailable", checks=checks)
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code=200 if ok else 503,
        media_type="application/json",
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
@route_options(counted=False)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
