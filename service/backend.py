"""What the domain's rules run on: the parts of the runtime they use, each a small Protocol.

Service functions and `crud.Crud` take `rt: Backend`; `runtime.Runtime` is one (mypy checks it
wherever the API or the CLI passes theirs). So the domain never imports the runtime, and through
it Redis, the relay, tracing and the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from service.auth.principal import IssuedToken
from service.config import Settings
from service.db import Connection, Database


class EventRelay(Protocol):
    """The write side of the outbox relay (events.relay.Relay)."""

    def check_room(self) -> None:
        """Refuse a write while too many events wait to be relayed."""

    def written(self) -> None:
        """Events were committed: wake the relay."""


class StoredEvent(Protocol):
    """One event of the Stream (events.bus.Event)."""

    id: str
    type: str
    data: str  # its JSON


class EventHistory(Protocol):
    """The events kept in the Stream (events.bus.EventBus)."""

    async def history(self, after: str) -> tuple[Sequence[StoredEvent], bool]:
        """The events after `after`, and whether some after it are no longer kept."""


class PasswordHashing(Protocol):
    """argon2id off the event loop (auth.passwords.Passwords)."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str | None, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class TokenStore(Protocol):
    """Issuing tokens and ending them on every instance (auth.tokens.Tokens)."""

    async def issue(
        self, conn: Connection, user_id: UUID, kind: str, name: str, ttl: int
    ) -> IssuedToken: ...

    async def invalidate_token(self, digest: bytes) -> None: ...

    async def invalidate_user(self, user_id: UUID) -> None: ...


class AttemptLimiter(Protocol):
    """Login attempts per key (auth.ratelimit.LoginLimiter)."""

    async def hit(self, *keys: str) -> int | None: ...


class Backend(Protocol):
    """The settings, the database and the runtime's parts a service function may use."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def relay(self) -> EventRelay: ...

    @property
    def events(self) -> EventHistory: ...

    @property
    def passwords(self) -> PasswordHashing: ...

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def limiter(self) -> AttemptLimiter: ...
