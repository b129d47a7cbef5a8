"""`apictl token`: API tokens for scripts. A token is printed once and never stored in clear."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from apictl.errors import ExitCode
from apictl.output import console, errors, fail, print_json, print_table

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command()
def create(
    email: Annotated[str, typer.Argument(help="Whose token it is.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "api",
    ttl: Annotated[
        str, typer.Option(metavar="DURATION", help="Lifetime: 3600, 90m, 24h, 30d, 52w.")
    ] = "30d",
) -> None:
    """Create an API token and print it once (alone on stdout, for scripts): store it now; only
    its SHA-256 is kept."""
    from apictl.session import run_service
    from service.auth import service
    from service.config import parse_duration

    try:
        seconds = parse_duration(ttl)
    except ValueError as exc:
        fail(f"--ttl {ttl!r} {exc}", code=ExitCode.USAGE)
    if seconds < 1:
        fail("--ttl must be at least one second", code=ExitCode.USAGE)
    issued = run_service(lambda rt: service.create_api_token(rt, email, name, seconds))
    print(issued.token)
    errors.print(
        f"token {issued.id} for {email}, expires {issued.expires_at:%Y-%m-%d %H:%M} UTC; "
        "it is shown only this once"
    )


@app.command("list")
def list_tokens(
    email: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Tokens (never their secret): id, owner, kind, name, created, expires, last used."""
    from apictl.session import run_service
    from service.auth import service

    tokens = run_service(lambda rt: service.list_tokens(rt, email))
    if as_json:
        print_json([t.model_dump(mode="json") for t in tokens])
        return
    rows = [
        [t.id, t.email, t.kind, t.name, t.created_at, t.expires_at, t.last_used_at or "never"]
        for t in tokens
    ]
    columns = ["id", "user", "kind", "name", "created", "expires", "last used"]
    print_table(f"{len(tokens)} token(s)", columns, rows)


@app.command()
def revoke(
    token_id: Annotated[
        UUID, typer.Argument(metavar="ID", help="The token's id (from token list).")
    ],
) -> None:
    """Revoke a token: it stops working at once, on every instance."""
    from apictl.session import run_service
    from service.auth import service

    run_service(lambda rt: service.revoke_token(rt, token_id))
    console.print(f"[green]revoked[/] {token_id}")
