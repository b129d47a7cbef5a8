"""`apictl routes` and `apictl openapi`: what the app serves, read from the app itself.

Both build the app with `create_app(settings)` and never start it: no database is needed.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from apictl.output import console, fail, json_bytes, print_json, print_table

if TYPE_CHECKING:
    from fastapi import FastAPI

_AUTH_STYLE = {"none": "dim", "token": "yellow"}  # every other rule narrows who: bold red


def _app() -> FastAPI:
    """The service as configured, built but not started (imported here: FastAPI is heavy)."""
    from service.app import create_app
    from service.config import load_settings

    return create_app(load_settings())


def routes(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every route: methods, path, its access rule and options, and the handler serving it.

    auth: none (anyone), token (any valid bearer token), admin (an admin's token), owner or
    admin (the row's owner or an admin), self or admin (the user themselves or an admin),
    admin unless open signup. It is read from the access rule each endpoint declares (its
    dependencies), the same declaration that enforces it. options, as the route declares them:
    etag (ETag and 304 on If-None-Match), idempotent (Idempotency-Key), counted (by the API
    rate limit). runs: compiled (apictl's direct path for declared routes) or why FastAPI's own
    per-request machinery runs it.
    """
    from service.ops.route_table import route_table

    table = route_table(_app())
    if as_json:
        print_json([asdict(route) for route in table])
        return
    rows = [
        (
            ", ".join(r.methods),
            r.path,
            f"[{_AUTH_STYLE.get(r.auth, 'bold red')}]{r.auth}[/]",
            ", ".join(r.options),
            r.handler,
            r.runs if r.runs == "compiled" else f"[yellow]FastAPI[/]: {r.runs}",
        )
        for r in table
    ]
    print_table(
        f"{len(table)} routes", ["methods", "path", "auth", "options", "handler", "runs"], rows
    )


def openapi(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            dir_okay=False,
            writable=True,
            metavar="FILE",
            help="Write to this file instead of stdout.",
        ),
    ] = None,
) -> None:
    """Export the OpenAPI document (JSON) of the service, as served at /openapi.json."""
    document = _app().openapi()
    if out is None:
        print_json(document)
        return
    try:
        out.write_bytes(json_bytes(document))
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", hint="choose a writable path")
    console.print(f"wrote the OpenAPI document ({len(document['paths'])} paths) to {out}")
