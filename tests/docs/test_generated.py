"""The docs cannot drift: generated blocks match the code; every setting and command documented."""

from __future__ import annotations

import pytest
from typer.core import TyperArgument, TyperOption

import docgen
from service.config import Settings, env_name

COMMANDS = {" ".join(path): command for path, command in docgen.all_commands()}


@pytest.mark.parametrize("page", docgen.BLOCKS)
def test_generated_blocks_are_up_to_date(page: str) -> None:
    changes = docgen.diff(page)
    assert not changes, f"docs/{page} is out of date: run `python scripts/docgen.py`\n{changes}"


@pytest.mark.parametrize("field", Settings.model_fields)
def test_settings_are_documented(field: str) -> None:
    assert Settings.model_fields[field].description, f"Settings.{field} has no description"
    page = (docgen.DOCS / "reference" / "configuration.md").read_text()
    assert f"| `{env_name(field)}` |" in page


@pytest.mark.parametrize("path", COMMANDS)
def test_commands_have_help_and_a_section(path: str) -> None:
    command = COMMANDS[path]
    assert command.help, f"`{path}` has no help text"
    for param in command.params:
        if isinstance(param, TyperArgument | TyperOption) and not param.hidden:
            assert param.help, f"`{path}`: {param.name} has no help"
    assert f"## `{path}`\n" in (docgen.DOCS / "reference" / "cli.md").read_text()


def test_usage_shows_required_bare_and_optional_in_brackets() -> None:
    usages = {path: docgen.usage(path.split(), command) for path, command in COMMANDS.items()}
    assert usages["apictl user create"] == (
        "apictl user create --email EMAIL --name NAME [--admin] [--password-stdin]"
    )
    assert usages["apictl user update"] == (
        "apictl user update EMAIL [--name NAME] [--admin/--no-admin] [--active/--inactive]"
    )
    assert usages["apictl migrate lint"] == "apictl migrate lint [FILES]... [--json]"
    assert usages["apictl migrate"] == "apictl migrate [--dry-run] [--allow-drift]"


def test_options_show_their_defaults_and_what_is_required() -> None:
    rows = docgen.param_rows(COMMANDS["apictl token create"])
    assert "| `EMAIL` | required | Whose token it is. |" in rows
    assert "| `--ttl DURATION` | `30d` | Lifetime: 3600, 90m, 24h, 30d, 52w. |" in rows
    serve = docgen.param_rows(COMMANDS["apictl serve"])
    assert (
        "| `--reload/--no-reload` | `--no-reload` | Restart on code changes (development only) |"
        in serve
    )
    assert "| `--migrate` | off | Apply pending migrations first, even in production |" in serve


def test_every_exit_code_is_in_the_reference() -> None:
    codes = [row.split(" | ")[0].removeprefix("| ") for row in docgen.exit_code_rows()[2:]]
    assert codes == ["0", "1", "2", "3"]
    assert "`check health`: nothing answered" in docgen.exit_code_rows()[4]
