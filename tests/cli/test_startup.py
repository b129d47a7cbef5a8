"""CLI start-up: `--help` loads the command tree only, never the service's heavy machinery."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What `--help` must not load: the web framework, the drivers, the migrator, the service runtime.
HEAVY = ("fastapi", "asyncpg", "redis", "yoyo", "psycopg", "service.runtime")

# Run the app in-process as the console script does; list every loaded module on stderr.
PROBE = """
import sys
from apictl.cli import app
try:
    app(sys.argv[1:], prog_name="apictl")
except SystemExit:
    pass
print("\\n".join(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_loaded_by(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    assert "Usage:" in result.stdout
    return set(result.stderr.split())


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["user", "--help"],
        ["user", "list", "--help"],
        ["serve", "--help"],
        ["migrate", "status", "--help"],
        ["check", "health", "--help"],
        ["scaffold", "deploy", "--help"],
        ["db", "shell", "--help"],
    ],
)
def test_help_loads_no_service_machinery(args: list[str]) -> None:
    loaded = _modules_loaded_by(*args)
    heavy = sorted(m for m in loaded if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY)))
    assert heavy == []
