"""`apictl scaffold`: generate code and deployment files from templates/."""

import typer

from apictl.scaffold.resource import resource

app = typer.Typer(help="Generate code and deployment files from templates/", no_args_is_help=True)
app.command()(resource)
