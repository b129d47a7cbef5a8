"""Framework internals are fenced: outside service/http/frameworks/, apictl imports only the
documented API of FastAPI, Starlette and uvicorn (a name with a leading underscore, an internal
module or an undocumented name fails here)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = ROOT / "service" / "http" / "frameworks"
FRAMEWORKS = ("fastapi", "starlette", "uvicorn")
# What their documentation shows users importing, as apictl imports it
DOCUMENTED: dict[str, set[str]] = {
    "fastapi": {"APIRouter", "Depends", "FastAPI", "Header", "Query", "Request"},
    "fastapi.exceptions": {"RequestValidationError", "ResponseValidationError"},
    "fastapi.openapi.docs": {
        "get_redoc_html",
        "get_swagger_ui_html",
        "get_swagger_ui_oauth2_redirect_html",
    },
    "fastapi.routing": {"APIRoute"},  # route_class: "Custom Request and APIRoute class"
    "starlette.exceptions": {"HTTPException"},
    "starlette.middleware": {"Middleware"},
    "starlette.middleware.cors": {"CORSMiddleware"},
    "starlette.middleware.gzip": {"GZipMiddleware"},
    "starlette.requests": {"Request"},
    "starlette.responses": {"HTMLResponse", "PlainTextResponse", "Response"},
    "starlette.staticfiles": {"StaticFiles"},
    "starlette.types": {"ASGIApp", "Message", "Receive", "Scope", "Send"},
    "uvicorn": set(),  # `import uvicorn`; uvicorn.run
}


def undocumented_uses(source: str) -> list[str]:
    """Every import of a framework name outside DOCUMENTED in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] not in FRAMEWORKS:
                continue
            allowed = DOCUMENTED.get(node.module, set())
            found += [f"{node.module}.{a.name}" for a in node.names if a.name not in allowed]
        elif isinstance(node, ast.Import):
            found += [
                a.name
                for a in node.names
                if a.name.split(".")[0] in FRAMEWORKS and a.name not in DOCUMENTED
            ]
    return found


def test_framework_internals_live_in_the_fence_only() -> None:
    outside = [
        f"{path.relative_to(ROOT)}: {use}"
        for package in ("service", "apictl")
        for path in sorted((ROOT / package).rglob("*.py"))
        if FENCE not in path.parents
        for use in undocumented_uses(path.read_text())
    ]
    assert outside == []


def test_each_fenced_module_names_its_uses() -> None:
    for module in ("fastapi", "starlette", "uvicorn"):
        source = (FENCE / f"{module}.py").read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        assert "what apictl uses of it, and why" in doc or "What is used of them" in doc, module


@pytest.mark.parametrize(
    ("line", "use"),
    [
        ("from fastapi._compat import ModelField", "fastapi._compat.ModelField"),
        (
            "from fastapi.routing import APIRoute, iter_route_contexts",
            "fastapi.routing.iter_route_contexts",
        ),
        ("import uvicorn.protocols.http.httptools_impl", "uvicorn.protocols.http.httptools_impl"),
        ("from starlette.routing import Match", "starlette.routing.Match"),
    ],
)
def test_an_undocumented_import_is_found(line: str, use: str) -> None:
    assert undocumented_uses(line) == [use]


def test_documented_imports_pass() -> None:
    source = "import uvicorn\nfrom fastapi import FastAPI\nfrom starlette.types import Scope\n"
    assert undocumented_uses(source) == []


# Methods the fenced modules override: each must still exist in the framework, or the override
# would silently never run (uvicorn < 0.45 has no _start_asgi_task: responses would leave in two
# writes and nothing would fail)
OVERRIDES = {
    "uvicorn": (
        "connection_made",
        "connection_lost",
        "data_received",
        "on_headers_complete",
        "send_400_response",
        "shutdown",
        "_start_asgi_task",
    ),
    "fastapi": ("build_middleware_stack", "__call__"),
}


def test_every_override_still_overrides_a_framework_method() -> None:
    from fastapi import FastAPI
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from service.http.frameworks.fastapi import ServiceApp
    from service.http.frameworks.uvicorn import LimitedHttpToolsProtocol

    pairs = {
        "uvicorn": (LimitedHttpToolsProtocol, HttpToolsProtocol),
        "fastapi": (ServiceApp, FastAPI),
    }
    for framework, names in OVERRIDES.items():
        ours, theirs = pairs[framework]
        assert [n for n in names if n not in vars(ours)] == [], f"{framework}: list is stale"
        assert [n for n in names if not callable(getattr(theirs, n, None))] == [], framework
