"""`GET /health` (liveness: touches nothing) and `GET /ready` (database, Redis)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from service.errors import ServiceUnavailable

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 2.0
_HEALTHY = b'{"status":"ok"}'


class Health(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    status: Literal["ok", "degraded", "down"]
    error: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, Check]


@router.get("/health", response_model=Health, summary="Liveness: 200 while the process runs")
async def health() -> Response:
    return Response(_HEALTHY, media_type="application/json")


async def _check_database(request: Request) -> Check:
    try:
        await asyncio.wait_for(request.app.state.db.ping(), CHECK_TIMEOUT)
    except (ServiceUnavailable, TimeoutError) as exc:
        return Check(status="down", error=str(exc) or "timed out")
    return Check(status="ok")


async def _check_redis(request: Request) -> Check:
    try:
        await asyncio.wait_for(request.app.state.redis.ping(), CHECK_TIMEOUT)
    except Exception as exc:  # any Redis failure is a degraded feature, never a failed probe
        return Check(status="degraded", error=type(exc).__name__)
    return Check(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: 503 while the database is down",
    responses={503: {"model": Readiness}},
)
async def ready(request: Request) -> Response:
    database, redis = await asyncio.gather(_check_database(request), _check_redis(request))
    checks = {"database": database, "redis": redis}
    ok = database.status == "ok"
    body = Readiness(status="ready" if ok else "unavailable", checks=checks)
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code=200 if ok else 503,
        media_type="application/json",
    )
