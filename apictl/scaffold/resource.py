"""`apictl scaffold resource`: a CRUD resource, from its migration to its tests."""

from __future__ import annotations

from typing import Annotated

import typer

from apictl.errors import ExitCode
from apictl.output import console, fail


def resource(
    name: Annotated[
        str,
        typer.Argument(help="Plural, snake_case: the table, service/NAME/ and /api/v1/NAME."),
    ],
    fields: Annotated[
        list[str],
        typer.Argument(
            metavar="FIELD:TYPE",
            help="NAME:TYPE, or NAME:TYPE? when optional. TYPE: str[:N] (N defaults to 200), "
            "text, int, bool, datetime, uuid, ref:<table> (users, posts or a scaffolded one).",
            show_default=False,
        ),
    ],
    singular: Annotated[
        str | None,
        typer.Option(
            metavar="SINGULAR",
            help="The singular, where the derived one is wrong (statuses: status).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files that exist (a previous scaffold).")
    ] = False,
) -> None:
    """Generate a CRUD resource: its migration, service/NAME/ and tests/NAME/test_api.py; exit 2
    for an invalid or taken name or field, 1 when files exist (unless --force).

    Example: apictl scaffold resource notes title:str:120 body:text 'due:datetime?' post:ref:posts

    The service serves /api/v1/NAME with no edit; only the owner or an admin changes a row.

    The Python files are formatted by the checkout's ruff, which the development install has.

    Exit 2: an invalid name or field, or NAME is taken. Exit 1: files exist (see --force),
    or ruff is missing.
    """
    from apictl.scaffold.checkout import Checkout, plan_resource
    from apictl.scaffold.fields import ScaffoldError
    from apictl.scaffold.formatter import FormatError
    from apictl.templating import write_files
    from service.config import load_settings
    from service.process.bundled import checkout_root
    from service.process.migration_state import migrations_dir

    root = checkout_root()
    if root is None:
        fail(
            "scaffold resource writes service/ and tests/ of a source checkout; "
            "this apictl is an installed package",
            hint="run it from a clone of the project, installed with pip install -e .",
        )
    checkout = Checkout(root, migrations_dir(load_settings()))
    try:
        files = plan_resource(checkout, name, fields, singular)
    except ScaffoldError as exc:
        fail(str(exc), hint="see apictl scaffold resource --help", code=ExitCode.USAGE)
    except FormatError as exc:
        fail(str(exc), hint=exc.hint)
    write_files(files, force=force)
    console.print(f"next: apictl migrate, then pytest tests/{name}/")
