"""Logins, logouts and API tokens, shared by the API and the CLI."""

from __future__ import annotations

from uuid import UUID

from service.auth import queries
from service.auth.principal import IssuedToken, Principal
from service.auth.schemas import AccessToken, TokenInfo
from service.backend import Backend
from service.errors import NotFound, RateLimited, Unauthorized, ValidationFailed
from service.users.schemas import normalize_name
from service.users.service import find_user

BAD_LOGIN = "invalid email or password"


async def login(rt: Backend, email: str, password: str, client_ip: str) -> AccessToken:
    """A login token for valid credentials; 401 alike for unknown email and wrong password."""
    email = email.strip().lower()
    wait = await rt.limiter.hit(f"ip:{client_ip}", f"email:{email}")
    if wait is not None:
        raise RateLimited("too many login attempts", headers={"Retry-After": str(wait)})
    async with rt.db.connection() as conn:
        row = await conn.fetchrow(queries.LOGIN_USER, email)
    stored = row["password_hash"] if row is not None else None
    if not await rt.passwords.verify(stored, password) or row is None or not row["is_active"]:
        raise Unauthorized(BAD_LOGIN)
    async with rt.db.connection() as conn:
        if rt.passwords.needs_rehash(row["password_hash"]):
            rehashed = await rt.passwords.hash(password)
            await conn.execute(queries.SET_PASSWORD_HASH, row["id"], rehashed)
        issued = await rt.tokens.issue(conn, row["id"], "login", "login", rt.settings.token_ttl)
    return AccessToken(access_token=issued.token, expires_at=issued.expires_at)


async def logout(rt: Backend, principal: Principal) -> None:
    """End the token of this request, on every instance."""
    await revoke_token(rt, principal.token_id)


async def create_api_token(rt: Backend, email: str, name: str, ttl: int) -> IssuedToken:
    """A long-lived token for scripts; the caller shows it once."""
    try:
        name = normalize_name(name)
    except ValueError as exc:
        raise ValidationFailed(f"token name {exc}") from None
    user = await find_user(rt, email)
    async with rt.db.connection() as conn:
        return await rt.tokens.issue(conn, user.id, "api", name, ttl)


async def list_tokens(rt: Backend, email: str | None = None) -> list[TokenInfo]:
    if email is not None:
        email = (await find_user(rt, email)).email
    async with rt.db.connection() as conn:
        rows = await conn.fetch(queries.LIST_TOKENS, email)
    return [TokenInfo(**dict(row)) for row in rows]


async def revoke_token(rt: Backend, token_id: UUID) -> None:
    """Delete a token; it stops working on every instance at once."""
    async with rt.db.connection() as conn:
        token_hash = await conn.fetchval(queries.DELETE_TOKEN, token_id)
    if token_hash is None:
        raise NotFound("token not found")
    await rt.tokens.invalidate_token(bytes(token_hash))
