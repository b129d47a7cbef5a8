"""Password hashing with argon2id, always off the event loop, in a small bounded pool.

Parameters are OWASP's argon2id minimum (19 MiB, t=2, p=1: ~30 ms here): a login costs a
bounded amount of memory, and two threads keep the loop free while capping concurrent hashes.
That memory goes back to the system after each hash (service.process.memory: glibc would
otherwise keep it in the hashing threads' arenas).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.process.memory import keep_large_blocks_on_mmap
from service.tracing.instruments import NoSpans, Spans

HASH_THREADS = 2


class Passwords:
    """hash / verify / needs_rehash, each run in the hashing pool."""

    def __init__(self, hasher: PasswordHasher | None = None, spans: Spans | None = None) -> None:
        self.hasher = hasher or PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
        keep_large_blocks_on_mmap()  # before the first hash
        self.spans = spans or NoSpans()
        self._pool = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="argon2")
        self._dummy: str | None = None  # made on first need: start-up stays cheap in memory

    async def hash(self, password: str) -> str:
        with self.spans.child("password hash"):
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self.hasher.hash, password
            )

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; with no hash (unknown user) verify a dummy, return False."""
        with self.spans.child("password verify"):
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._verify, password_hash, password
            )

    def _verify(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            # an unknown email costs a real verify too, so both failures take the same time
            self._dummy = self._dummy or self.hasher.hash("not the password of anyone")
            self._matches(self._dummy, password)
            return False
        return self._matches(password_hash, password)

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
