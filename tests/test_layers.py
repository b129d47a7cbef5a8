"""Imports point down only: the domain knows nothing of HTTP or the CLI, the service nothing of
the CLI, and what only the CLI runs stays out of the request path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"
# The domain: the rules and data of every resource, usable from any front door.
DOMAIN = [
    *SERVICE.glob("*/service.py"),
    *SERVICE.glob("*/schemas.py"),
    *SERVICE.glob("*/queries.py"),
    *(SERVICE / name for name in ("crud.py", "tables.py", "pagination.py", "errors.py")),
    SERVICE / "validation.py",
]
HTTP = ("fastapi", "starlette", "uvicorn", "service.http", "service.deps", "service.app")


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: str(p.relative_to(SERVICE)))
def test_the_domain_imports_no_http_and_no_cli(path: Path) -> None:
    assert not {m for m in imported(path) if _within(m, (*HTTP, "apictl", "typer"))}


def test_the_service_never_imports_the_cli() -> None:
    for path in SERVICE.rglob("*.py"):
        assert not {m for m in imported(path) if _within(m, ("apictl", "typer"))}, path


def test_the_request_path_never_imports_what_only_the_cli_runs() -> None:
    request_path = [*(SERVICE / "http").rglob("*.py"), SERVICE / "app.py", SERVICE / "deps.py"]
    for path in request_path:
        assert not {m for m in imported(path) if _within(m, ("service.ops", "yoyo", "psycopg"))}


def test_a_worker_leaves_out_what_it_would_load_only_to_leave_unused(
    server_env: dict[str, str],
) -> None:
    """pydantic.v1 (FastAPI imports it to refuse v1 models; 3.5 MB) and the OpenTelemetry
    metrics SDK (redis-py imports it for metrics apictl never turns on) stay out of a worker
    that has built its app, and so do the CLI's typer and rich."""
    probe = (
        "import sys; from service.app import app_from_env; app_from_env().openapi();"
        "print(' '.join(sorted(m for m, module in sys.modules.items() if module)))"
    )
    env = {k: v for k, v in server_env.items() if not k.startswith("OTEL_")}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "fastapi" in loaded
    unused = ("pydantic.v1", "opentelemetry.sdk", "typer", "rich")
    assert [m for m in loaded if _within(m, unused)] == []
