"""The application factory: settings in, a fully wired FastAPI app out.

Everything the app holds (the Runtime: pool, Redis client, token cache) is created in the
lifespan and closed there;
nothing is created at import time. `app_from_env` is the factory uvicorn imports in workers.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response

from apictl import __version__
from service.access_log import AccessLog
from service.config import Settings, load_settings
from service.context import current_request_id
from service.errors import (
    ERROR_RESPONSES,
    AppError,
    ValidationFailed,
    error_body,
    error_for_status,
)
from service.logs import configure_logging
from service.metrics import Metrics
from service.middleware.body_limit import BodyLimitMiddleware
from service.middleware.liveness import LivenessMiddleware
from service.middleware.request_context import RequestContextMiddleware
from service.middleware.selective import WhenHeader
from service.runtime import Runtime
from service.schema import migration_ids, migrations_dir
from service.shutdown import on_termination
from service.validation import error_details

GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 5  # Starlette's default of 9 costs CPU for a few percent of size
# Routes are matched in router order: the busiest built-in ones first (no two routers share a
# path), then every other package's, by name.
BUSIEST_FIRST = ("posts", "users", "auth", "events", "health")


def create_app(settings: Settings) -> FastAPI:
    """Build the service for `settings` (whose database and Redis URLs are already resolved)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime = await Runtime.open(settings, serving=True)
        on_termination(runtime.events.close)
        # Everything alive now lives as long as the process: keep it out of the collector's
        # generations, so collections walk only per-request garbage (shorter pauses).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await app.state.runtime.close()
            app.state.access_log.flush()

    app = FastAPI(
        title="apictl service",
        version=__version__,
        lifespan=lifespan,
        docs_url=None if settings.is_production else "/docs",
        redoc_url=None,
        # Metrics are ours (Prometheus, /metrics). FastAPI's native OpenTelemetry hooks would
        # otherwise look up global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = Metrics(lambda: getattr(app.state, "runtime", None))
    app.state.access_log = AccessLog(json=settings.json_logs)
    app.state.migration_ids = migration_ids(migrations_dir(settings))
    _install_error_handlers(app)
    for router in discover_routers():
        app.include_router(router, responses=ERROR_RESPONSES)
    # add_middleware wraps outward: the last added runs first.
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_body_bytes, timeout=settings.body_timeout
    )
    app.add_middleware(
        WhenHeader,
        header=b"accept-encoding",
        contains=b"gzip",
        middleware=GZipMiddleware,
        minimum_size=GZIP_MIN_BYTES,
        compresslevel=GZIP_LEVEL,
    )
    app.add_middleware(LivenessMiddleware)  # inside CORS: a browser probing /health gets headers
    if settings.cors_origins:
        app.add_middleware(
            WhenHeader,
            header=b"origin",
            middleware=CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Last-Event-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(
        RequestContextMiddleware, metrics=app.state.metrics, access_log=app.state.access_log
    )
    return app


def discover_routers() -> list[APIRouter]:
    """The `router` of every `service.<package>.routes` module, BUSIEST_FIRST first.

    A scaffolded resource (service/<name>/routes.py) is served without editing this file.
    """
    packages = pkgutil.iter_modules([str(Path(__file__).parent)])
    found = sorted(info.name for info in packages if info.ispkg)
    routers = []
    for name in [*BUSIEST_FIRST, *(n for n in found if n not in BUSIEST_FIRST)]:
        if importlib.util.find_spec(f"service.{name}.routes") is None:
            continue
        router = getattr(importlib.import_module(f"service.{name}.routes"), "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers


def app_from_env() -> FastAPI:
    """uvicorn's factory: settings from the environment, logging configured."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


def error_response(error: AppError) -> Response:
    return Response(
        error_body(error, current_request_id()),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        # 400 comes from a body FastAPI could not decode at all (e.g. invalid UTF-8)
        if exc.status_code == 400:
            return error_response(ValidationFailed("the request body could not be parsed"))
        error = error_for_status(exc.status_code)
        error.headers.update(exc.headers or {})
        return error_response(error)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = error_details(exc.errors())
        return error_response(ValidationFailed(details=details))

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
