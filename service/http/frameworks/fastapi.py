"""FastAPI beyond its documented API: what apictl uses of it, and why.

apictl runs FastAPI's own declarations (service/http/compiled.py) and enters FastAPI's app
below its outer layers (`ServiceApp`). Both read parts FastAPI does not document:
- `fastapi.routing.iter_route_contexts` / `RouteContext`: the routes as the app serves them,
  included routers flattened, prefixes applied (FastAPI's own route matching reads the same);
- `fastapi.dependencies.models.Dependant` and its fields: a route's dependency tree, which
  FastAPI builds once at declaration; compiled routes plan from it instead of walking it per
  request (`DependencyView`);
- `ModelField` (`fastapi._compat`) `.validate`, `.serialize_json`, `.name`, `.default`,
  `.field_info.in_`: how FastAPI validates a parameter, a body and a response; calling the same
  methods keeps every answer byte-identical (tests/http/test_compiled.py);
- `fastapi.dependencies.utils`: `request_body_to_args` (a body, validated as FastAPI does),
  `get_typed_return_annotation`, `_get_param_aliases` and `_get_param_model` (the request key of
  a parameter, and whether it is a model), `fastapi._compat.field_annotation_is_sequence`;
- `fastapi.params.Body` / `Form`, `fastapi.datastructures.DefaultPlaceholder`,
  `fastapi.utils.is_body_allowed_for_status_code`: what a route declared, as FastAPI reads it;
- `FastAPI.build_middleware_stack` (Starlette's) overridden and
  `fastapi.middleware.asyncexitstack.AsyncExitStackMiddleware` entered directly (`ServiceApp`).
A name missing in some version makes the route run through FastAPI instead (its reason shows
in `apictl routes`), never a wrong answer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi._compat import field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies import utils as _utils
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_typed_return_annotation, request_body_to_args
from fastapi.exceptions import ResponseValidationError
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.params import Body, Form
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.utils import is_body_allowed_for_status_code
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.frameworks.starlette import ExceptionMiddleware

__all__ = [
    "Dependant",
    "DependencyView",
    "Param",
    "RouteContext",
    "RouteView",
    "ServiceApp",
    "body_allowed",
    "body_to_args",
    "dependency_levels",
    "returns_response",
    "route_contexts",
]
body_to_args = request_body_to_args  # (fields, received body, embed) -> (values, errors)
body_allowed = is_body_allowed_for_status_code


def route_contexts(routes: Sequence[Any]) -> list[RouteContext]:
    """Every route as the app matches it, in matching order."""
    return list(iter_route_contexts(routes))


class Unsupported(Exception):
    """A declaration compiled routes leave to FastAPI (the message says which)."""


class Invalid(Exception):
    """Some input did not validate: FastAPI answers this request instead."""


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query, header or cookie parameter, validated by its own ModelField."""

    field: Any  # fastapi's ModelField
    name: str
    alias: str  # its key in the request
    loc: tuple[str, str]
    required: bool
    default: Any
    validate_default: bool

    @classmethod
    def of(cls, field: Any) -> Param:
        info = field.field_info
        # FastAPI's own reading of the parameter's key in the request (start-up only)
        read_aliases = getattr(_utils, "_get_param_aliases", None)
        convert = getattr(info, "convert_underscores", False)
        aliases = read_aliases(field, convert_underscores=convert) if read_aliases else []
        if len(aliases) != 1 or field_annotation_is_sequence(info.annotation):
            raise Unsupported(f"parameter {field.name} takes several aliases or values")
        if getattr(_utils, "_get_param_model", lambda f: True)(field) is not None:
            raise Unsupported(f"parameter {field.name} is a model")
        alias = aliases[0][1]
        return cls(
            field,
            field.name,
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
                raise Invalid
            value = copy.deepcopy(self.default)
            if not self.validate_default:
                values[self.name] = value
                return
        valid, errors = self.field.validate(value, values, loc=self.loc)
        if errors:
            raise Invalid
        values[self.name] = valid


@dataclass(frozen=True, slots=True)
class DependencyView:
    """What compiled routes read of one node of a dependency tree (`Dependant`)."""

    call: Callable[..., Any] | None
    name: str | None
    key: Any  # the per-request cache key: the same dependency runs once per request
    dependencies: list[Dependant]
    path_params: tuple[Param, ...]
    query_params: tuple[Param, ...]
    header_params: tuple[Param, ...]
    cookie_params: tuple[Param, ...]
    body_params: list[Any]
    request_param: str | None

    @classmethod
    def of(cls, dependant: Dependant) -> DependencyView:
        call = dependant.call
        special = {
            "websocket": dependant.websocket_param_name,
            "HTTPConnection": dependant.http_connection_param_name,
            "Response": dependant.response_param_name,
            "BackgroundTasks": dependant.background_tasks_param_name,
            "SecurityScopes": dependant.security_scopes_param_name,
            "a concurrency limit": getattr(dependant, "concurrency", None),
        }
        for what, used in special.items():
            if used:
                raise Unsupported(f"{getattr(call, '__name__', call)} takes {what}")
        if len(dependant.body_params) > 1 or any(
            not isinstance(field.field_info, Body) or isinstance(field.field_info, Form)
            for field in dependant.body_params
        ):
            raise Unsupported(f"{getattr(call, '__name__', call)} takes a body FastAPI assembles")
        return cls(
            call=call,
            name=dependant.name,
            key=(call, tuple(dependant.own_oauth_scopes or ())),
            dependencies=list(dependant.dependencies),
            path_params=tuple(map(Param.of, dependant.path_params)),
            query_params=tuple(map(Param.of, dependant.query_params)),
            header_params=tuple(map(Param.of, dependant.header_params)),
            cookie_params=tuple(map(Param.of, dependant.cookie_params)),
            body_params=list(dependant.body_params),
            request_param=dependant.request_param_name,
        )


@dataclass(frozen=True, slots=True)
class RouteView:
    """What the request path reads of a route's declaration, beyond Starlette's route API."""

    served: Any  # what FastAPI's router puts in scope["route"]: the route as declared
    openapi_path: str | None  # its path in the OpenAPI document (converters left out)
    dependant: Dependant | None  # None: not an API route
    has_body: bool
    status_code: int

    @classmethod
    def of(cls, route: RouteContext) -> RouteView:
        dependant = getattr(route, "dependant", None)
        return cls(
            served=route.original_route,
            openapi_path=getattr(route, "path_format", None),
            dependant=dependant,
            has_body=dependant is not None and route.body_field is not None,
            status_code=(dependant is not None and route.status_code) or 200,
        )

    def check_compilable(self, route: RouteContext) -> None:
        """Unsupported unless FastAPI would answer this route with JSON of its response field,
        or with the Response the endpoint returns."""
        if self.dependant is None:
            raise Unsupported("not an API route")
        if route.response_field is None and not returns_response(route):
            raise Unsupported("no declared return type (FastAPI would encode it generically)")
        if not isinstance(route.response_class, DefaultPlaceholder):
            raise Unsupported("a custom response class")


def returns_response(route: RouteContext) -> bool:
    """Whether the endpoint is annotated to return a Response (FastAPI sends it as is)."""
    annotation = get_typed_return_annotation(route.endpoint) if route.endpoint else None
    return isinstance(annotation, type) and issubclass(annotation, Response)


def dependency_levels(dependant: Dependant | None) -> Iterator[list[Callable[..., Any]]]:
    """The calls of a dependency tree, level by level from the endpoint's own dependencies."""
    level = list(dependant.dependencies) if dependant else []
    while level:
        yield [sub.call for sub in level if sub.call is not None]
        level = [deeper for sub in level for deeper in sub.dependencies]


def response_json(route: RouteContext, result: Any) -> bytes:
    """`result` validated and serialized by the route's response field, as FastAPI does it;
    a ResponseValidationError (a 500, as FastAPI makes it) if it does not validate."""
    field = route.response_field
    value, errors = field.validate(result, {}, loc=("response",))
    if errors:
        raise ResponseValidationError(errors=errors, body=result)
    content: bytes = field.serialize_json(
        value,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )
    return content


class ServiceApp(FastAPI):
    """FastAPI, entered straight into apictl's middleware (`middleware_stack`).

    FastAPI puts three layers of its own outside the user middleware (ServerErrorMiddleware,
    its telemetry hook, a body-limit layer) and asks its native telemetry whether it is on at
    every call. apictl has its own of each: RequestContextMiddleware is the last-resort 500 (in
    the unified body), BodyLimitMiddleware bounds bodies, and native telemetry is off. Those
    layers only added frames that every await of every request resumes through: about 4 % of a
    read's samples in py-spy. Inside apictl's middleware the stack is FastAPI's own:
    ExceptionMiddleware (the app's exception handlers), AsyncExitStackMiddleware, the router.
    """

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = ExceptionMiddleware(
            AsyncExitStackMiddleware(self.router),
            handlers=self.exception_handlers,
            debug=self.debug,
        )
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan and websockets: FastAPI's own way
            await super().__call__(scope, receive, send)
            return
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        await self.middleware_stack(scope, receive, send)
