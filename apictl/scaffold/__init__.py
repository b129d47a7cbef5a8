"""`apictl scaffold`: code and deployment files generated from templates/."""

from __future__ import annotations

import typer

from apictl.scaffold.deploy import deploy
from apictl.scaffold.resource import resource

app = typer.Typer(help="Generate code and deployment files from templates/.", no_args_is_help=True)
app.command()(resource)
app.command()(deploy)
