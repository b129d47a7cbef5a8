"""`apictl user`: administer users (the same service code as the API)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from apictl.errors import ExitCode
from apictl.output import console, fail, print_json, print_table

if TYPE_CHECKING:  # the service (pydantic, asyncpg, redis) is imported by each command
    from service.runtime import Runtime
    from service.users.schemas import User, UserChanges

app = typer.Typer(help="Create, inspect, change and delete users.", no_args_is_help=True)

EmailOpt = Annotated[str, typer.Option("--email", help="Email address (stored lower-case).")]
NameOpt = Annotated[str, typer.Option("--name", help="Display name, 1..100 characters.")]
AdminOpt = Annotated[bool, typer.Option("--admin", help="Make the user an admin.")]
StdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input (one line)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
EmailArg = Annotated[str, typer.Argument(help="The user's email address.")]


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("no password on standard input", code=ExitCode.USAGE)
        return line
    typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return typed


def _row(user: User) -> list[object]:
    return [user.email, user.name, user.is_admin, user.is_active, user.created_at, user.id]


_COLUMNS = ["email", "name", "admin", "active", "created", "id"]


def show_user(user: User, as_json: bool) -> None:
    if as_json:
        print_json(user.model_dump(mode="json"))
    else:
        print_table(None, _COLUMNS, [_row(user)])


def _change(email: str, changes: UserChanges) -> User:
    from apictl.session import run_service
    from service.users import service

    async def change(rt: Runtime) -> User:
        user = await service.find_user(rt, email)
        return await service.update_user(rt, None, user.id, changes)

    return run_service(change)


@app.command()
def create(
    email: EmailOpt, name: NameOpt, admin: AdminOpt = False, password_stdin: StdinOpt = False
) -> None:
    """Create a user (password prompted twice, hidden, unless --password-stdin); a duplicate
    email (any case) exits 1.

    The email is stored lower-case; of the password only an argon2id hash is kept.
    """
    from apictl.session import run_service
    from service.users import service
    from service.users.schemas import NewUser

    new = NewUser(email=email, name=name, password=read_password(password_stdin))
    user = run_service(lambda rt: service.create_user(rt, new, is_admin=admin))
    console.print(f"[green]created[/] {user.email} ({user.id})")


@app.command()
def ensure(
    email: EmailOpt, name: NameOpt, admin: AdminOpt = False, password_stdin: StdinOpt = False
) -> None:
    """Idempotent bootstrap: create the user if missing, else bring name and admin flag (and the
    password, only if given) in line. Prints created, updated or unchanged; exits 0 in all three.
    """
    from apictl.session import run_service
    from service.users import service

    password = read_password(True) if password_stdin else None
    user, outcome = run_service(
        lambda rt: service.ensure_user(rt, email, name, password, is_admin=admin)
    )
    console.print(f"{outcome} {user.email} ({user.id})")


@app.command("list")
def list_users(as_json: JsonOpt = False) -> None:
    """Every user, newest first."""
    from apictl.session import run_service
    from service.users import service

    async def everyone(rt: Runtime) -> list[User]:
        users: list[User] = []
        cursor = None
        while True:
            page = await service.list_users(rt, 100, cursor)
            users += page.items
            if (cursor := page.next_cursor) is None:
                return users

    users = run_service(everyone)
    if as_json:
        print_json([u.model_dump(mode="json") for u in users])
    else:
        print_table(f"{len(users)} user(s)", _COLUMNS, [_row(u) for u in users])


@app.command()
def show(email: EmailArg, as_json: JsonOpt = False) -> None:
    """One user."""
    from apictl.session import run_service
    from service.users import service

    show_user(run_service(lambda rt: service.find_user(rt, email)), as_json)


@app.command()
def update(
    email: EmailArg,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    admin: Annotated[
        bool | None, typer.Option("--admin/--no-admin", help="Grant or revoke admin.")
    ] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Deactivating revokes all tokens.")
    ] = None,
) -> None:
    """Change a user's name, admin flag or active flag; deactivating revokes their tokens on
    every instance."""
    from service.users.schemas import UserChanges

    changes = UserChanges(name=name, is_admin=admin, is_active=active)
    if not changes.model_dump(exclude_none=True):
        fail(
            "nothing to change",
            hint="give --name, --admin/--no-admin or --active/--inactive",
            code=ExitCode.USAGE,
        )
    user = _change(email, changes)
    console.print(f"[green]updated[/] {user.email}")


@app.command("set-password")
def set_password(email: EmailArg, password_stdin: StdinOpt = False) -> None:
    """Set a user's password; every token of theirs stops working at once."""
    from service.users.schemas import UserChanges

    changes = UserChanges(password=read_password(password_stdin))
    user = _change(email, changes)
    console.print(f"[green]password set[/] for {user.email}; their tokens are revoked")


@app.command()
def delete(
    email: EmailArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a user with their tokens and posts."""
    if not yes:
        typer.confirm(f"Delete {email} with all their tokens and posts?", abort=True)
    from apictl.session import run_service
    from service.users import service

    async def remove(rt: Runtime) -> None:
        user = await service.find_user(rt, email)
        await service.delete_user(rt, user.id)

    run_service(remove)
    console.print(f"[green]deleted[/] {email}")
