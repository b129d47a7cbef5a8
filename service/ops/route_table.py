"""The app's routes as data: methods, path, access rule, handler, and whether it runs compiled.

The rule is read from each endpoint's dependency tree: the first dependency (nearest the
endpoint) that `service.deps.access` named, so a new resource's routes are described correctly
without being listed anywhere, from the same declaration that enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from service.http.compiled import compile_route

NO_RULE = "none"


@dataclass(frozen=True, slots=True)
class RouteInfo:
    methods: list[str]
    path: str
    auth: str  # the access rule: none, token, admin, owner or admin, ...
    handler: str  # module:qualified.name
    summary: str | None
    runs: str  # "compiled", or why FastAPI's own machinery runs it (service/http/compiled.py)


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
                runs=runs if isinstance(runs := compile_route(route), str) else "compiled",
            )
        )
    return table


def required_auth(dependant: Dependant | None) -> str:
    """The access rule nearest the endpoint in its dependency tree (breadth first)."""
    level = list(dependant.dependencies) if dependant else []
    while level:
        for sub in level:
            rule = getattr(sub.call, "access", None)
            if isinstance(rule, str):
                return rule
        level = [deeper for sub in level for deeper in sub.dependencies]
    return NO_RULE
