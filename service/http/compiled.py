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

import copy
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi._compat import field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies import utils as fastapi_utils
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_typed_return_annotation, request_body_to_args
from fastapi.exceptions import ResponseValidationError
from fastapi.params import Body, Form
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.utils import is_body_allowed_for_status_code
from pydantic_core import PydanticUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.middleware.body_limit import BODY_KEY

log = logging.getLogger("apictl.routes")
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class NotCompiled(Exception):
    """Why a route runs through FastAPI's own machinery."""


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query, header or cookie parameter, validated by its own ModelField."""

    field: Any  # fastapi's ModelField
    alias: str
    loc: tuple[str, str]
    required: bool
    default: Any
    validate_default: bool

    @classmethod
    def of(cls, field: Any) -> Param:
        # FastAPI's own reading of the parameter's name in the request (start-up only)
        aliases: list[tuple[str, str]] = getattr(fastapi_utils, "_get_param_aliases", lambda f: [])(
            field
        )
        if len(aliases) != 1 or field_annotation_is_sequence(field.field_info.annotation):
            raise NotCompiled(f"parameter {field.name} takes several aliases or values")
        if getattr(fastapi_utils, "_get_param_model", lambda f: True)(field) is not None:
            raise NotCompiled(f"parameter {field.name} is a model")
        info = field.field_info
        alias = aliases[0][1]
        return cls(
            field,
            alias,
            (info.in_.value, alias),
            info.is_required(),
            field.default,
            bool(info.validate_default),
        )

    def validate(self, received: Mapping[str, Any], values: dict[str, Any]) -> None:
        """Put the parameter's value in `values`, as FastAPI's request_params_to_args does."""
        value = received.get(self.alias)
        if value is None:
            if self.required:
                raise _Invalid
            value = copy.deepcopy(self.default)
            if not self.validate_default:
                values[self.field.name] = value
                return
        valid, errors = self.field.validate(value, values, loc=self.loc)
        if errors:
            raise _Invalid
        values[self.field.name] = valid


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


def _plan(dependant: Dependant) -> Plan:
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        raise NotCompiled(f"{getattr(call, '__name__', call)} is not an async function")
    unsupported = {
        "websocket": dependant.websocket_param_name,
        "HTTPConnection": dependant.http_connection_param_name,
        "Response": dependant.response_param_name,
        "BackgroundTasks": dependant.background_tasks_param_name,
        "SecurityScopes": dependant.security_scopes_param_name,
        "a concurrency limit": dependant.concurrency,
    }
    for what, used in unsupported.items():
        if used:
            raise NotCompiled(f"{call.__name__} takes {what}")
    if len(dependant.body_params) > 1 or any(
        not isinstance(field.field_info, Body) or isinstance(field.field_info, Form)
        for field in dependant.body_params
    ):
        raise NotCompiled(f"{call.__name__} takes a body FastAPI must assemble")
    return Plan(
        call=call,
        name=dependant.name,
        key=(call, tuple(dependant.own_oauth_scopes or ())),
        subs=tuple(_plan(sub) for sub in dependant.dependencies),
        path_params=tuple(map(Param.of, dependant.path_params)),
        query_params=tuple(map(Param.of, dependant.query_params)),
        header_params=tuple(map(Param.of, dependant.header_params)),
        cookie_params=tuple(map(Param.of, dependant.cookie_params)),
        body_params=list(dependant.body_params),
        request_param=dependant.request_param_name,
    )


class _Invalid(Exception):
    """Some input did not validate: FastAPI answers this request instead."""


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
            found, errors = await request_body_to_args(plan.body_params, self.body, False)
            if errors:
                raise _Invalid
            values.update(found)
        if plan.request_param:
            values[plan.request_param] = request
        return values


class CompiledRoute:
    """One APIRoute (as the router that included it sees it), run from its plan."""

    def __init__(self, route: RouteContext) -> None:
        if route.response_field is None and not _returns_response(route):
            raise NotCompiled("no declared return type (FastAPI would encode it generically)")
        if not isinstance(route.response_class, DefaultPlaceholder):
            raise NotCompiled("a custom response class")
        assert route.dependant is not None
        self.route = route
        self.api_route = route.original_route  # what FastAPI puts in scope["route"]
        self.plan = _plan(route.dependant)
        self.has_body = route.body_field is not None
        self.status_code = route.status_code or 200
        self.response_field = route.response_field

    async def respond(self, request: Request, body: Any) -> Response:
        """The endpoint's response; `_Invalid` when FastAPI must answer instead."""
        call = _Call(request, body, {})
        result = await self.plan.call(**await call.values(self.plan))
        if isinstance(result, Response):
            return result
        field = self.response_field
        assert field is not None
        value, errors = field.validate(result, {}, loc=("response",))
        if errors:  # the endpoint has run: never again; a 500, as FastAPI makes it
            raise ResponseValidationError(errors=errors, body=result)
        route = self.route
        content = field.serialize_json(
            value,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
        )
        response = Response(content, self.status_code, media_type="application/json")
        if not is_body_allowed_for_status_code(response.status_code):
            response.body = b""
        return response


def _returns_response(route: RouteContext) -> bool:
    annotation = get_typed_return_annotation(route.endpoint) if route.endpoint else None
    return isinstance(annotation, type) and issubclass(annotation, Response)


def compile_route(route: RouteContext) -> CompiledRoute | str:
    """The compiled form of `route`, or why it runs through FastAPI."""
    if not isinstance(route.original_route, APIRoute) or route.dependant is None:
        return "not an API route"
    try:
        return CompiledRoute(route)
    except NotCompiled as exc:
        return str(exc)


class CompiledRoutes:
    """ASGI middleware, innermost: runs compiled routes, hands everything else to FastAPI.

    Routes are tried in the router's order, as Starlette's router tries them: the first whose
    path and method both match decides. If it is compiled it runs here, else FastAPI runs it.
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.served = self.handed_on = 0  # requests answered here / by FastAPI (tests read them)
        self.table = [
            (route, compile_route(route)) for route in iter_route_contexts(fastapi_app.routes)
        ]
        # each route's own matches(), looked up once (RouteContext forwards it per call)
        self.matchers = [(route.matches, compiled) for route, compiled in self.table]
        fallback = [
            f"{', '.join(sorted(r.methods or ()))} {r.path}: {why}"
            for r, why in self.table
            if isinstance(why, str) and isinstance(r.original_route, APIRoute)
        ]
        compiled = sum(1 for _, c in self.table if isinstance(c, CompiledRoute))
        log.info("%d routes compiled; FastAPI runs %s", compiled, "; ".join(fallback) or "none")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.fastapi_app.dependency_overrides:
            await self.app(scope, receive, send)
            return
        for matches, compiled in self.matchers:
            match, child = matches(scope)
            if match is Match.FULL:
                if isinstance(compiled, CompiledRoute) and scope["method"] != "HEAD":
                    scope.update(child)  # "endpoint" and "path_params", as the router sets them
                    scope["route"] = compiled.api_route
                    await self._run(compiled, scope, receive, send)
                    return
                break
        await self._hand_on(scope, receive, send)

    async def _hand_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.handed_on += 1
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
        request = Request(scope, receive, send)
        try:
            response = await compiled.respond(request, body)
        except _Invalid:
            await self._hand_on(scope, receive, send)
            return
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            handled = handler(request, exc)
            response = await handled if inspect.isawaitable(handled) else handled
        self.served += 1
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's exception handler for `exc`, as Starlette's ExceptionMiddleware finds it."""
        handlers = self.fastapi_app.exception_handlers
        return next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
