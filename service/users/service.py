"""User logic shared by the API and the CLI: one place for every rule about users.

`actor` is the principal acting through the API; None is the operator at the CLI, who may do
everything. Tokens die with a password change, a deactivation or a deletion, on every instance.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import asyncpg

from service.auth import queries as auth_queries
from service.auth.principal import Principal
from service.backend import Backend
from service.crud import Crud
from service.errors import Conflict, Forbidden, NotFound
from service.pagination import Page
from service.users import queries
from service.users.schemas import NewUser, User, UserChanges

Outcome = Literal["created", "updated", "unchanged"]


users = Crud(queries.TABLE, User, "user", insert=queries.INSERT)


async def create_user(rt: Backend, new: NewUser, *, is_admin: bool = False) -> User:
    """A new user; Conflict if the email is taken (whatever its case)."""
    password_hash = await rt.passwords.hash(new.password)
    try:
        return await users.insert_row(rt, new.email, new.name, password_hash, is_admin)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a user with email {new.email} already exists") from None


async def get_user(rt: Backend, user_id: UUID) -> User:
    return await users.get(rt, user_id)


async def find_user(rt: Backend, email: str) -> User:
    """The user with this email (any case); NotFound otherwise."""
    async with rt.db.connection() as conn:
        row = await conn.fetchrow(queries.BY_EMAIL, email.strip().lower())
    if row is None:
        raise NotFound(f"no user with email {email.strip().lower()}")
    return users.from_row(row)


async def list_users(rt: Backend, limit: int, cursor: str | None = None) -> Page[User]:
    """Users newest first, `limit` per page."""
    return await users.page(rt, limit, cursor)


def _authorize_fields(actor: Principal | None, changes: UserChanges) -> None:
    """Who may change whom is the route's rule (deps.SelfOrAdmin); which fields is this one."""
    if actor is None or actor.is_admin:
        return
    if changes.is_admin is not None or changes.is_active is not None:
        raise Forbidden("only an admin may change is_admin or is_active")


async def update_user(
    rt: Backend,
    actor: Principal | None,
    user_id: UUID,
    changes: UserChanges,
    if_match: str | None = None,
) -> User:
    """Apply `changes`; self may change name and password, an admin everything (with
    `if_match`, only to that version of the user: else PreconditionFailed)."""
    _authorize_fields(actor, changes)
    password_hash = await rt.passwords.hash(changes.password) if changes.password else None
    revoke = password_hash is not None or changes.is_active is False
    async with (
        rt.db.connection() as conn,
        users.precondition(conn, user_id, if_match),
        conn.transaction(),
    ):
        row = await conn.fetchrow(
            queries.UPDATE,
            user_id,
            changes.name,
            password_hash,
            changes.is_admin,
            changes.is_active,
        )
        if row is None:
            raise NotFound("user not found")
        if revoke:
            await conn.execute(auth_queries.DELETE_USER_TOKENS, user_id)
    if revoke or changes.is_admin is not None:
        await rt.tokens.invalidate_user(user_id)
    return users.from_row(row)


async def delete_user(rt: Backend, user_id: UUID, if_match: str | None = None) -> None:
    """Delete a user with their tokens and posts (the API lets only admins: deps.AdminUser)."""
    async with rt.db.connection() as conn, users.precondition(conn, user_id, if_match):
        deleted = await conn.fetchval(queries.DELETE, user_id)
    if deleted is None:
        raise NotFound("user not found")
    await rt.tokens.invalidate_user(user_id)


async def ensure_user(
    rt: Backend, email: str, name: str, password: str | None, *, is_admin: bool
) -> tuple[User, Outcome]:
    """Create the user if missing, else bring name, admin flag (and password, if given) in line."""
    try:
        existing = await find_user(rt, email)
    except NotFound:
        if password is None:
            raise Conflict(
                f"{email} does not exist yet: a password is needed to create it"
            ) from None
        try:
            return await create_user(
                rt, NewUser(email=email, name=name, password=password), is_admin=is_admin
            ), "created"
        except Conflict:  # created by someone else in the meantime
            existing = await find_user(rt, email)
    wanted = UserChanges(name=name, password=password)
    same_password = password is None or await _password_matches(rt, existing.id, password)
    changes = UserChanges(
        name=wanted.name if wanted.name != existing.name else None,
        is_admin=is_admin if is_admin != existing.is_admin else None,
        password=None if same_password else wanted.password,
    )
    if not changes.model_dump(exclude_none=True):
        return existing, "unchanged"
    return await update_user(rt, None, existing.id, changes), "updated"


async def _password_matches(rt: Backend, user_id: UUID, password: str) -> bool:
    async with rt.db.connection() as conn:
        password_hash = await conn.fetchval(queries.PASSWORD_HASH, user_id)
    return await rt.passwords.verify(password_hash, password)
