"""Seed the benchmark database through apictl's own service layer (hashing, events and all)."""

from __future__ import annotations

import asyncio

from service.auth.service import create_api_token
from service.auth.tokens import Principal
from service.config import Settings
from service.posts import service
from service.posts.schemas import NewPost
from service.runtime import Runtime
from service.users.schemas import NewUser
from service.users.service import create_user

BATCH = 50
PASSWORD = "benchmark password"  # noqa: S105 (throwaway users of a private database)


async def _batches(calls: list, size: int = BATCH) -> list:  # type: ignore[type-arg]
    results = []
    for start in range(0, len(calls), size):
        results += await asyncio.gather(*calls[start : start + size])
    return results


async def seed(settings: Settings, users: int, posts: int) -> tuple[list[str], list[str]]:
    """Create users (each with an API token) and posts; return the tokens and the post ids."""
    rt = await Runtime.open(settings.model_copy(update={"db_pool_max": 10}), serving=False)
    try:
        made = await _batches(
            [
                create_user(
                    rt, NewUser(email=f"bench{i}@example.com", name=f"Bench {i}", password=PASSWORD)
                )
                for i in range(users)
            ]
        )
        issued = await _batches([create_api_token(rt, u.email, "bench", 7 * 86400) for u in made])
        principals = [
            Principal(u.id, t.id, False, t.expires_at) for u, t in zip(made, issued, strict=True)
        ]
        written = await _batches(
            [
                service.posts.create(
                    rt,
                    principals[i % len(principals)],
                    NewPost(title=f"Post {i}", body="Seeded for the benchmark. " * 8),
                )
                for i in range(posts)
            ]
        )
    finally:
        await rt.close()
    return [t.token for t in issued], [str(p.id) for p in written]
