"""The app's routes as data: methods, path, access rule, options, handler, and how it runs.

The access rule is read from each endpoint's dependency tree: the first dependency (nearest the
endpoint) that `service.deps.access` named; the options from the route's declaration
(service/http/route_options.py); how it runs from the table the request path matches against.
So a new resource's routes are described correctly without being listed anywhere, from the
same declarations that enforce them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from service.http.frameworks.fastapi import dependency_levels
from service.http.routing import RouteEntry, RouteTable

NO_RULE = "none"


@dataclass(frozen=True, slots=True)
class RouteInfo:
    methods: list[str]
    path: str
    auth: str  # the access rule: none, token, admin, owner or admin, ...
    options: list[str]  # etag, idempotent, counted (by the API rate limit), constant
    handler: str  # module:qualified.name
    summary: str | None
    runs: str  # "compiled", or why FastAPI's own machinery runs it (service/http/compiled.py)


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every HTTP route of `app` (included routers flattened), in matching order."""
    table = []
    for entry in RouteTable(app.routes).entries:
        route = entry.route
        if route.path is None or route.endpoint is None:  # a mount or websocket: none here
            continue
        table.append(
            RouteInfo(
                methods=sorted(route.methods or ()),
                path=route.path,
                auth=required_auth(entry),
                options=_options(entry),
                handler=f"{route.endpoint.__module__}:{route.endpoint.__qualname__}",
                summary=getattr(route, "summary", None),
                runs=entry.runs,
            )
        )
    return table


def _options(entry: RouteEntry) -> list[str]:
    flags = {
        "etag": entry.etag,
        "idempotent": entry.idempotent,
        "counted": entry.counted,
        "constant": entry.constant,
    }
    return [name for name, on in flags.items() if on]


def required_auth(entry: RouteEntry) -> str:
    """The access rule nearest the endpoint in its dependency tree (breadth first)."""
    for calls in dependency_levels(entry.view.dependant):
        for call in calls:
            rule = getattr(call, "access", None)
            if isinstance(rule, str):
                return rule
    return NO_RULE
