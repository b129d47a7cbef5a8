"""Declared routes, run directly: FastAPI declares every route, apictl executes it.

FastAPI stays the one declaration of every route (path, parameters, dependencies, body,
response model, status code, OpenAPI). At start-up each APIRoute whose parts this module
understands becomes a `CompiledRoute`: a plan of its dependency tree made once, parameters and
body validated by the route's own ModelFields (FastAPI's `request_params_to_args` and
`request_body_to_args`), dependencies called straight from the plan (cached per request, as
FastAPI caches them), the result validated and serialized by the route's own response field.
What it skips is the generic machinery around those steps, per request.

A request whose input does not validate is handed, untouched, to FastAPI, so every
validation error is FastAPI's own, byte for byte; so is every request of a route that was not
compiled (`compile_route` says why; `apictl routes` lists it). Only requests that validate run
here, and they run the same code FastAPI would run. The endpoint never runs twice: input is
validated before it is called; a request handed on has run at most its dependencies (which
answer who is calling and read the runtime, and may run again there).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.http.frameworks.fastapi import (
    DependencyView,
    Invalid,
    Param,
    RouteContext,
    RouteView,
    Unsupported,
    body_allowed,
    body_to_args,
    response_json,
    returns_response,
)
from service.http.route_options import RouteOptions

__all__ = ["CompiledRoute", "Invalid", "compile_route"]


@dataclass(frozen=True, slots=True)
class Plan:
    """One node of a dependency tree, with everything it needs resolved at start-up."""

    call: Callable[..., Awaitable[Any]]
    name: str | None
    key: Any  # the per-request cache key: the same dependency runs once per request
    subs: tuple[Plan, ...]
    path_params: tuple[Param, ...]
    query_params: tuple[Param, ...]
    header_params: tuple[Param, ...]
    cookie_params: tuple[Param, ...]
    body_params: list[Any]
    request_param: str | None

    @classmethod
    def of(cls, view: DependencyView) -> Plan:
        call = view.call
        if call is None or not inspect.iscoroutinefunction(call):
            raise Unsupported(f"{getattr(call, '__name__', call)} is not an async function")
        return cls(
            call=call,
            name=view.name,
            key=view.key,
            subs=tuple(Plan.of(DependencyView.of(sub)) for sub in view.dependencies),
            path_params=view.path_params,
            query_params=view.query_params,
            header_params=view.header_params,
            cookie_params=view.cookie_params,
            body_params=view.body_params,
            request_param=view.request_param,
        )


@dataclass(slots=True)
class _Call:
    """The per-request state of solving a plan."""

    request: Request
    body: Any
    cache: dict[Any, Any]

    async def values(self, plan: Plan) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for sub in plan.subs:
            if sub.key in self.cache:
                solved = self.cache[sub.key]
            else:
                solved = await sub.call(**await self.values(sub))
                self.cache[sub.key] = solved
            if sub.name is not None:
                values[sub.name] = solved
        request = self.request
        for param in plan.path_params:
            param.validate(request.path_params, values)
        for param in plan.query_params:
            param.validate(request.query_params, values)
        for param in plan.header_params:
            param.validate(request.headers, values)
        for param in plan.cookie_params:
            param.validate(request.cookies, values)
        if plan.body_params:
            found, errors = await body_to_args(plan.body_params, self.body, False)
            if errors:
                raise Invalid
            values.update(found)
        if plan.request_param:
            values[plan.request_param] = request
        return values


class CompiledRoute:
    """One APIRoute (as the router that included it sees it), run from its plan."""

    def __init__(self, route: RouteContext, view: RouteView) -> None:
        view.check_compilable(route)
        assert view.dependant is not None
        self.route = route
        self.plan = Plan.of(DependencyView.of(view.dependant))
        self.has_body = view.has_body
        self.status_code = view.status_code
        plan = self.plan
        # takes nothing and returns its Response: called as is, no Request made for it
        self.bare = returns_response(route) and not (
            plan.subs
            or plan.path_params
            or plan.query_params
            or plan.header_params
            or plan.cookie_params
            or plan.body_params
            or plan.request_param
        )

    async def respond(self, request: Request, body: Any) -> Response:
        """The endpoint's response; `Invalid` when FastAPI must answer instead.

        The endpoint has run once its result is validated: a result that does not validate
        is a ResponseValidationError (a 500, as FastAPI makes it), never a second run."""
        call = _Call(request, body, {})
        result = await self.plan.call(**await call.values(self.plan))
        if isinstance(result, Response):
            return result
        content = response_json(self.route, result)
        response = Response(content, self.status_code, media_type="application/json")
        if not body_allowed(response.status_code):
            response.body = b""
        return response


def compile_route(
    route: RouteContext, view: RouteView, options: RouteOptions | None
) -> CompiledRoute | str:
    """The compiled form of `route`, or why it runs through FastAPI."""
    if options is not None and not options.compiled and view.dependant is not None:
        return "declared compiled=False"
    try:
        return CompiledRoute(route, view)
    except Unsupported as exc:
        return str(exc)
