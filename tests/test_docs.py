"""The README cannot drift: its tables match the code, every setting and command is documented."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

import readme
from apictl.cli import app
from service.config import Settings, env_name


def all_commands() -> Iterator[tuple[str, TyperCommand | TyperGroup]]:
    """Every command and group of `apictl`, by its path, hidden ones included."""

    def walk(command: object, path: str) -> Iterator[tuple[str, TyperCommand | TyperGroup]]:
        assert isinstance(command, TyperCommand | TyperGroup), path
        yield path, command
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "apictl")


COMMANDS = dict(all_commands())


def test_readme_is_up_to_date() -> None:
    changes = readme.diff()
    assert not changes, f"README.md is out of date: run `python scripts/readme.py`\n{changes}"


@pytest.mark.parametrize("field", Settings.model_fields)
def test_settings_are_documented(field: str) -> None:
    assert Settings.model_fields[field].description, f"Settings.{field} has no description"
    assert f"| `{env_name(field)}` |" in readme.README.read_text()


@pytest.mark.parametrize("path", COMMANDS)
def test_commands_have_help(path: str) -> None:
    command = COMMANDS[path]
    assert command.help, f"`{path}` has no help text"
    for param in command.params:
        if isinstance(param, TyperArgument | TyperOption) and not param.hidden:
            assert param.help, f"`{path}`: {param.name} has no help"


def test_usage_shows_required_bare_and_optional_in_brackets() -> None:
    usages = {
        " ".join(path): readme.usage(path, command) for path, command in readme.leaf_commands()
    }
    assert usages["apictl user create"] == (
        "apictl user create --email EMAIL --name NAME [--admin] [--password-stdin]"
    )
    assert usages["apictl user update"] == (
        "apictl user update EMAIL [--name NAME] [--admin/--no-admin] [--active/--inactive]"
    )
    assert usages["apictl migrate lint"] == "apictl migrate lint [FILES]... [--json]"
    assert usages["apictl migrate"] == "apictl migrate [--dry-run] [--allow-drift]"
