"""Generated Python source sorted and formatted by the checkout's own ruff, with its own
configuration (pyproject.toml), so scaffolded code passes `make lint` as written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# import order first (ruff's isort rule), then the layout
COMMANDS = (("check", "--select", "I", "--fix"), ("format",))
HINT = (
    "scaffolding needs a source checkout with the development install, which has ruff: "
    "pip install -r requirements/dev.txt"
)


class FormatError(Exception):
    """Ruff is missing or refused generated source: nothing is written (exit 1)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def find_ruff() -> str:
    """The ruff of the running interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent
    found = shutil.which("ruff", path=beside) or shutil.which("ruff")
    if found is None:
        raise FormatError(f"ruff not found in {beside} nor on PATH: it formats the code", HINT)
    return found


def formatted(files: Mapping[Path, str], root: Path) -> dict[Path, str]:
    """`files` with each .py text as ruff leaves it in checkout `root`. The texts go through
    stdin (`--stdin-filename` for the configuration), so nothing is written yet."""
    ruff = find_ruff()
    return {
        path: _ruff(ruff, root, path, text) if path.suffix == ".py" else text
        for path, text in files.items()
    }


def _ruff(ruff: str, root: Path, path: Path, text: str) -> str:
    for command in COMMANDS:
        result = subprocess.run(
            [ruff, *command, "--no-cache", "--stdin-filename", str(path), "-"],
            cwd=root,
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise FormatError(f"ruff {command[0]} refused {path}: {result.stderr.strip()}")
        text = result.stdout
    return text
