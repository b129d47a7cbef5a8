"""Imports point down only: the domain knows nothing of HTTP or the CLI, the service nothing of
the CLI, and what only the CLI runs stays out of the request path. The rules are import-linter
contracts in pyproject.toml ([tool.importlinter]); `lint-imports` follows indirect imports too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = {
    contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages and contracts under `root` (nothing cached)."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """Its output on one line (it wraps long contract names)."""
    return " ".join((result.stdout + result.stderr).split())


def test_every_import_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in _said(result)


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "service/posts/schemas.py",
            "from fastapi import Query",
            "The domain (schemas, queries, service logic, CRUD rules) imports nothing of HTTP"
            " nor of the CLI",
        ),
        ("service/config.py", "import apictl", "The service never imports the CLI"),
        (
            "service/process/cancellation.py",
            "from service.http import errors",
            "The service's layers: each imports only the layers below it",
        ),
    ],
    ids=["domain-to-fastapi", "config-to-cli", "process-to-http"],
)
def test_an_import_against_a_contract_fails_it(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    """The contracts bite: one import too many in a copy of the tree breaks the one it breaks."""
    for name in ("service", "apictl"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{line}\n")
    result = lint_imports(tmp_path)
    said = _said(result)
    assert result.returncode == 1, said
    named = [name for name in CONTRACTS if name.startswith(contract)]
    assert len(named) == 1, named
    assert f"{named[0]} BROKEN" in said


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


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
