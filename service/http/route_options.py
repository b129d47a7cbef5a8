"""What a route does beyond FastAPI's own semantics, declared once where the route is declared.

    router = APIRouter(prefix="/api/v1/posts", route_class=ApiRoute)

    @router.get("/{post_id}")
    @route_options(etag=True)
    async def get_post(...) -> Post: ...

`ApiRoute` (FastAPI's documented `route_class` hook) reads the endpoint's options when the
route is declared: the request path reads them from the matched route (service/http/routing.py)
and the OpenAPI document is written from them (the ETag and Idempotent-Replayed headers, the
If-None-Match and Idempotency-Key parameters). Nothing is inferred from documentation.

    option       default  what it turns on
    etag         False    a strong ETag on 200s, 304 for a current If-None-Match
                          (docs/api/conditional-requests.md; If-Match is the CRUD rules')
    idempotent   False    Idempotency-Key on POST (docs/api/idempotency.md)
    counted      True     the API rate limit (docs/api/rate-limits.md)
    compiled     True     run from its compiled plan (service/http/compiled.py), else FastAPI's
    constant     False    its answer depends on nothing in the request (a GET taking no
                          parameters, returning a Response): made once, then replayed as soon
                          as the route is matched (liveness)

Routes declared without `ApiRoute` (the docs pages) have none of them: not counted, no caching
headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.routing import APIRoute

F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "__apictl_route_options__"
IDEMPOTENCY_KEY = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class RouteOptions:
    etag: bool = False
    idempotent: bool = False
    counted: bool = True
    compiled: bool = True
    constant: bool = False


def route_options(
    *,
    etag: bool = False,
    idempotent: bool = False,
    counted: bool = True,
    compiled: bool = True,
    constant: bool = False,
) -> Callable[[F], F]:
    """Declare a route's options; the decorator goes below the router's (`@router.get`)."""
    options = RouteOptions(etag, idempotent, counted, compiled, constant)

    def declare(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, options)
        return endpoint

    return declare


def declared_options(endpoint: Callable[..., Any] | None) -> RouteOptions | None:
    """What `route_options` declared on `endpoint`, if anything."""
    return getattr(endpoint, _ATTRIBUTE, None)


class ApiRoute(APIRoute):
    """An API route: its options in `self.options`, and in its OpenAPI operation."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self.options = declared_options(endpoint) or RouteOptions()
        responses = dict(kwargs.get("responses") or {})
        extra = dict(kwargs.get("openapi_extra") or {})
        parameters = list(extra.get("parameters", ()))
        if self.options.etag:
            _add_headers(responses, 200, _ETAG)
            if "GET" in (kwargs.get("methods") or ()):
                responses[304] = {"description": "Not modified", "headers": _ETAG}
                parameters.append(_IF_NONE_MATCH)
        if self.options.idempotent:
            _add_headers(responses, kwargs.get("status_code") or 200, _REPLAYED)
            parameters.append(_IDEMPOTENCY_KEY)
        if parameters:
            extra["parameters"] = parameters
        super().__init__(
            path, endpoint, **{**kwargs, "responses": responses, "openapi_extra": extra or None}
        )


def options_of(route: object) -> RouteOptions | None:
    """The options of an `ApiRoute`; None for any other route."""
    return route.options if isinstance(route, ApiRoute) else None


def _add_headers(responses: dict[int | str, Any], status: int, headers: dict[str, Any]) -> None:
    response = dict(responses.get(status, {}))
    response["headers"] = {**response.get("headers", {}), **headers}
    responses[status] = response


_ETAG = {"ETag": {"description": "The version of this item", "schema": {"type": "string"}}}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag you hold: 304 (no body) while it is current",
    "schema": {"type": "string"},
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true when this is the kept answer to an earlier request",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "description": "Retry safely: the first answer to this key (1..255 visible ASCII) is kept"
    " 24 h and replayed; another body with it is 422",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}
