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
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from service import __version__
from service.config import Settings, load_settings
from service.http.access_log import AccessLog
from service.http.docs import OPENAPI_PATH, install_docs
from service.http.errors import ERROR_RESPONSES, install_error_handlers
from service.http.frameworks.fastapi import ServiceApp
from service.http.metrics import Metrics
from service.http.middleware import rate_limit
from service.http.middleware.body_limit import BodyLimitMiddleware
from service.http.middleware.conditional import ConditionalMiddleware
from service.http.middleware.idempotency import IdempotencyMiddleware
from service.http.middleware.request_context import RequestContextMiddleware
from service.http.middleware.selective import WhenHeader
from service.http.routing import MatchRoute, RouteTable, RunRoute
from service.process.drain import Drain
from service.process.logs import configure_logging
from service.process.migration_state import migration_ids, migrations_dir
from service.runtime import Runtime
from service.tracing import start as start_tracing
from service.tracing.instruments import UNTRACED

if TYPE_CHECKING:
    from service.tracing.sdk import Tracing

GZIP_MIN_BYTES = 1024
GC_YOUNG_THRESHOLD = 10_000  # read +4 % RPS over Python's 700 (the commit that set it)
GZIP_LEVEL = 5  # Starlette's default of 9 costs CPU for a few percent of size
# What a page on an allowed origin may send and read (docs/api/index.md, CORS)
_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "Last-Event-ID",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "traceparent",
    "tracestate",
)
_RESPONSE_HEADERS = (
    "X-Request-ID",
    "Retry-After",
    "ETag",
    "RateLimit",
    "RateLimit-Policy",
    "Idempotent-Replayed",
)
# Routes are matched in router order: the busiest built-in ones first (no two routers share a
# path), then every other package's, by name.
BUSIEST_FIRST = ("posts", "users", "auth", "events", "health")


def create_app(settings: Settings, tracing: Tracing | None = None) -> FastAPI:
    """Build the service for `settings` (whose database and Redis URLs are already resolved),
    traced when `tracing` is given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        instruments = tracing.instruments if tracing else UNTRACED
        app.state.runtime = runtime = await Runtime.open(
            settings, serving=True, instruments=instruments
        )
        drain.install(on_stop=runtime.stop_serving)
        # Everything alive now lives as long as the process: keep it out of the collector's
        # generations, so collections walk only per-request garbage (shorter pauses). And
        # collect the young generation every GC_YOUNG_THRESHOLD allocations, not Python's 700:
        # a request's objects die by reference count, so each young collection mostly walks
        # the objects of requests still in flight; fewer collections, less walking.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            await app.state.runtime.close()
            app.state.access_log.flush()
            if tracing:
                tracing.close()

    metrics = Metrics(
        lambda: getattr(app.state, "runtime", None),
        collectors=[tracing.collector()] if tracing else [],
    )
    drain = Drain(settings.drain_delay, settings.max_requests, settings.max_requests_jitter)
    access_log = AccessLog(
        json=settings.json_logs, trace_ids=tracing.request_ids if tracing else None
    )
    app = ServiceApp(
        title="apictl service",
        version=__version__,
        lifespan=lifespan,
        openapi_url=OPENAPI_PATH if settings.docs_enabled else None,
        docs_url=None,  # ours, offline (service/http/docs.py)
        redoc_url=None,
        # Metrics are ours (Prometheus, /metrics). FastAPI's native OpenTelemetry hooks would
        # otherwise look up global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.user_middleware = middleware_stack(settings, metrics, access_log, drain, app, tracing)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.access_log = access_log
    app.state.drain = drain
    app.state.migration_ids = migration_ids(migrations_dir(settings))
    install_error_handlers(app)
    for router in discover_routers():
        app.include_router(router, responses=ERROR_RESPONSES)
    if settings.docs_enabled:
        install_docs(app)  # after the API's routes: they are matched first
    if settings.api_rate_limit is not None:
        document_api = app.openapi

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                app.openapi_schema = rate_limit.document(document_api(), RouteTable(app.routes))
            return app.openapi_schema

        app.openapi = openapi  # type: ignore[method-assign]
    return app


def middleware_stack(
    settings: Settings,
    metrics: Metrics,
    access_log: AccessLog,
    drain: Drain,
    app: FastAPI,
    tracing: Tracing | None = None,
) -> list[Middleware]:
    """Every request passes these, outermost first; CORS only when origins are configured.

    Each request is matched to its route once, before the layers that depend on the route
    (service/http/routing.py); innermost, compiled routes answer what they can, everything else
    goes on to FastAPI's router.
    """
    cors = Middleware(
        WhenHeader,
        header=b"origin",
        middleware=CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        # a page may make every request the API documents: conditional, retried, traced
        allow_headers=[*_REQUEST_HEADERS],
        expose_headers=[*_RESPONSE_HEADERS],
        max_age=600,
    )
    return [
        # request id, access log, metrics, the SERVER span (tracing on) and the last-resort 500
        Middleware(
            RequestContextMiddleware,
            metrics=metrics,
            access_log=access_log,
            drain=drain,
            spans=tracing.server_spans() if tracing else None,
        ),
        *([cors] if settings.cors_origins else []),
        Middleware(
            WhenHeader,
            header=b"accept-encoding",
            contains=b"gzip",
            middleware=GZipMiddleware,
            minimum_size=GZIP_MIN_BYTES,
            compresslevel=GZIP_LEVEL,
        ),
        # what follows reads the route's options; health, metrics: run at once
        Middleware(MatchRoute, fastapi_app=app, compiled=settings.compiled_routes),
        Middleware(rate_limit.RateLimitMiddleware, fastapi_app=app),  # before any body is read
        Middleware(
            BodyLimitMiddleware, limit=settings.max_body_bytes, timeout=settings.body_timeout
        ),
        Middleware(ConditionalMiddleware),  # ETag, 304 and Cache-Control on API routes
        Middleware(IdempotencyMiddleware, fastapi_app=app),  # Idempotency-Key where declared
        *([Middleware(RunRoute, fastapi_app=app)] if settings.compiled_routes else []),
    ]


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
    """uvicorn's factory: settings from the environment and the supervisor's hand-over
    (service.process.handover: the servers and address `apictl serve` resolved)."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings, start_tracing())
