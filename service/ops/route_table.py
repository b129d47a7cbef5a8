"""The app's routes as data: methods, path, the auth each one requires and the handler serving it.

The auth level is read from each endpoint's dependency tree (which of deps.py's principals it
asks for), so a new resource's routes are described correctly without being listed anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from service.deps import admin_principal, current_principal, optional_principal

Auth = Literal["none", "optional", "token", "admin"]

# Strongest first: an admin route also depends on current_principal (through admin_principal).
_AUTH_BY_DEPENDENCY: tuple[tuple[Callable[..., Any], Auth], ...] = (
    (admin_principal, "admin"),
    (current_principal, "token"),
    (optional_principal, "optional"),
)


@dataclass(frozen=True, slots=True)
class RouteInfo:
    methods: list[str]
    path: str
    auth: Auth
    handler: str  # module:qualified.name
    summary: str | None


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every HTTP route of `app` (included routers flattened), in matching order."""
    table = []
    for route in iter_route_contexts(app.routes):
        if route.path is None or route.endpoint is None:  # a mount or websocket: none here
            continue
        dependant: Dependant | None = getattr(route, "dependant", None)
        table.append(
            RouteInfo(
                methods=sorted(route.methods or ()),
                path=route.path,
                auth=required_auth(dependant),
                handler=f"{route.endpoint.__module__}:{route.endpoint.__qualname__}",
                summary=getattr(route, "summary", None),
            )
        )
    return table


def required_auth(dependant: Dependant | None) -> Auth:
    """The strongest principal dependency anywhere in the endpoint's dependency tree."""
    calls = set(_calls(dependant)) if dependant else set()
    return next((auth for call, auth in _AUTH_BY_DEPENDENCY if call in calls), "none")


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)
