"""Each request matched to its route once, early; every layer after reads that match.

`MatchRoute` finds the route as Starlette's router does (routes in order, the first whose path
and method match), sets what the router sets (`route`, `endpoint`, `path_params`) and puts the
route's `RouteEntry` in the scope: its options (service/http/route_options.py) and its compiled
plan or why it has none. The API rate limit reads `counted`, conditional requests `etag`,
Idempotency-Key `idempotent`, and innermost `RunRoute` runs compiled routes and hands every
other request to FastAPI's router (which matches again, for the requests it runs itself).

The table is built once: a path without parameters maps straight to the few routes that can
match it, so most requests try one or two routes, not the whole list.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic_core import PydanticUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.compiled import CompiledRoute, Invalid, compile_route
from service.http.frameworks.fastapi import RouteContext, RouteView, route_contexts
from service.http.frameworks.starlette import Match
from service.http.middleware.body_limit import BODY_KEY
from service.http.route_options import RouteOptions, declared_options, options_of

log = logging.getLogger("apictl.routes")
MATCH = "apictl.match"  # scope key: the request's RouteEntry
HANDED_ON = "apictl.handed_on"  # scope key: a compiled runner gave this request to FastAPI
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """A route as the request path sees it."""

    route: RouteContext
    view: RouteView
    matches: Callable[[Scope], tuple[Match, Scope]]
    compiled: CompiledRoute | None
    runs: str  # "compiled", or why FastAPI's own machinery runs it
    # its options (service/http/route_options.py); `api`: an ApiRoute (not health, metrics, docs)
    api: bool
    direct: bool  # compiled, not an API route, no body: none of the layers in between apply
    constant: bool  # declared constant: its answer is made once and replayed
    etag: bool
    idempotent: bool
    counted: bool

    @classmethod
    def of(cls, route: RouteContext) -> RouteEntry:
        options = options_of(route.original_route)
        declared = declared_options(route.endpoint)
        if declared is not None and declared != options:
            where = f"{route.endpoint.__module__}.{route.endpoint.__qualname__}"  # type: ignore[union-attr]
            raise RuntimeError(
                f"{where}: its @route_options are not applied; put the decorator below the"
                " router's, on a router made with route_class=ApiRoute"
            )
        view = RouteView.of(route)
        compiled = compile_route(route, view, options)
        flags = options or RouteOptions(counted=False)
        if flags.constant and (isinstance(compiled, str) or not compiled.bare):
            raise RuntimeError(
                f"{route.path}: a constant route takes nothing and returns a Response ({compiled})"
            )
        return cls(
            route,
            view,
            route.matches,
            None if isinstance(compiled, str) else compiled,
            compiled if isinstance(compiled, str) else "compiled",
            api=options is not None,
            direct=options is None and not isinstance(compiled, str) and not view.has_body,
            constant=flags.constant,
            etag=flags.etag,
            idempotent=flags.idempotent,
            counted=flags.counted,
        )


def matched(scope: Scope) -> RouteEntry | None:
    """The route `MatchRoute` found for this request (None: no route matched)."""
    return scope.get(MATCH)


class RouteTable:
    """Every route of an app, in matching order, with an index of the paths without parameters."""

    def __init__(self, routes: list[Any]) -> None:
        self.entries = [RouteEntry.of(route) for route in route_contexts(routes)]
        self.by_path: dict[str, list[RouteEntry]] = {}
        for path in {
            e.route.path for e in self.entries if e.route.path and "{" not in e.route.path
        }:
            probe = {"type": "http", "path": path, "root_path": "", "method": "GET"}
            self.by_path[path] = [e for e in self.entries if e.matches(probe)[0] is not Match.NONE]
        # paths whose GET a constant route answers: found without trying any route
        self.constant: dict[str, RouteEntry] = {}
        for path, candidates in self.by_path.items():
            probe = {"type": "http", "path": path, "root_path": "", "method": "GET"}
            first = next((e for e in candidates if e.matches(probe)[0] is Match.FULL), None)
            if first is not None and first.constant:
                self.constant[path] = first

    def match(self, scope: Scope) -> RouteEntry | None:
        """The first route matching path and method, its scope set as the router sets it."""
        for entry in self.by_path.get(scope["path"], self.entries):
            found, child = entry.matches(scope)
            if found is Match.FULL:
                scope.update(child)
                scope["route"] = entry.view.served  # as FastAPI's router sets it
                scope[MATCH] = entry
                return entry
        return None


class MatchRoute:
    """ASGI middleware: match each HTTP request to its route, once.

    A GET of a `direct` route (health, readiness, metrics: compiled, no options, no body) runs
    here at once: the rate limit, body limits, conditional requests and Idempotency-Key do
    nothing for it, and passing through them cost /health a third of its speed.
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI, compiled: bool = True) -> None:
        self.app = app
        self.table = RouteTable(fastapi_app.routes)
        self.direct = RunRoute(app, fastapi_app) if compiled else None
        self.answers: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
        fallback = [
            f"{', '.join(sorted(e.route.methods or ()))} {e.route.path}: {e.runs}"
            for e in self.table.entries
            if e.compiled is None and e.route.methods
        ]
        count = sum(1 for e in self.table.entries if e.compiled is not None)
        log.info("%d routes compiled; FastAPI runs %s", count, "; ".join(fallback) or "none")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            constant = self.table.constant.get(scope["path"])
            if constant is not None and scope["method"] == "GET":
                scope["route"] = constant.view.served  # as the router sets it (no parameters)
                scope[MATCH] = constant
                await self._replay(constant, send)
                return
            entry = self.table.match(scope)
            if self.direct and entry and entry.direct and scope["method"] == "GET":
                await self.direct(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _replay(self, entry: RouteEntry, send: Send) -> None:
        """A constant route's answer: made by its endpoint the first time, then replayed."""
        answer = self.answers.get(str(entry.route.path))
        if answer is None:
            assert entry.compiled is not None
            made: Response = await entry.compiled.plan.call()
            answer = (made.status_code, made.raw_headers, bytes(made.body))
            self.answers[str(entry.route.path)] = answer
        status, headers, body = answer
        # a fresh header list each time: outer middleware appends to it
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})


class RunRoute:
    """ASGI middleware, innermost: runs compiled routes, hands everything else to FastAPI.

    A compiled route's request whose input does not validate goes to FastAPI too, untouched,
    so every validation error is FastAPI's own (service/http/compiled.py).
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.served = self.handed_on = 0  # requests answered here / by FastAPI (tests read them)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry: RouteEntry | None = scope.get(MATCH)
        if (
            entry is None
            or entry.compiled is None
            or scope["method"] == "HEAD"
            or self.fastapi_app.dependency_overrides
            or HANDED_ON in scope  # a direct route's runner tried it already
        ):
            await self._hand_on(scope, receive, send)
            return
        await self._run(entry.compiled, scope, receive, send)

    async def _hand_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.handed_on += 1
        scope[HANDED_ON] = True
        await self.app(scope, receive, send)

    async def _run(
        self, compiled: CompiledRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        body: Any = PydanticUndefined  # no body, as FastAPI says it
        if compiled.has_body:
            raw, is_json = scope.get(BODY_KEY, (b"", False))
            if raw:
                if not is_json:
                    await self._hand_on(scope, receive, send)
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    await self._hand_on(scope, receive, send)
                    return
        request = None
        try:
            if compiled.bare:
                response = await compiled.plan.call()
            else:
                request = Request(scope, receive, send)
                response = await compiled.respond(request, body)
        except Invalid:
            await self._hand_on(scope, receive, send)
            return
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            handled = handler(request or Request(scope, receive, send), exc)
            response = await handled if inspect.isawaitable(handled) else handled
        self.served += 1
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's exception handler for `exc`, as Starlette's ExceptionMiddleware finds it."""
        handlers = self.fastapi_app.exception_handlers
        return next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
