"""How every command talks: rich for humans, JSON for machines, one-line errors with hints."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from apictl.errors import ExitCode

# soft_wrap: a line is never broken at the console's width, so a URL, a path or a message stays
# whole in a pipe or a pod's log (80 columns there); tables still fit the width
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def json_bytes(data: Any) -> bytes:
    """Machine output: indented JSON, newline-terminated (datetimes and paths as strings)."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str) + b"\n"


def print_json(data: Any) -> None:
    """Machine output on stdout."""
    sys.stdout.write(json_bytes(data).decode())


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)


def print_error(message: str, hint: str | None = None) -> None:
    """One clear error line (and an optional hint) on stderr."""
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        errors.print(f"[dim]hint:[/] {escape(hint)}", soft_wrap=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def fail(message: str, hint: str | None = None, code: ExitCode = ExitCode.FAILURE) -> NoReturn:
    """Print the error (and a hint), then exit with `code`."""
    print_error(message, hint)
    raise typer.Exit(code)


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it is inside it."""
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
