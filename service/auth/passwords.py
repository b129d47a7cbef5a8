"""Password hashing with argon2id, always off the event loop, in a small bounded pool.

Parameters are OWASP's argon2id minimum (19 MiB, t=2, p=1: ~30 ms here): a login costs a
bounded amount of memory, and two threads keep the loop free while capping concurrent hashes.

That memory must go back to the system after each hash. glibc serves a block of 19 MiB with
mmap (returned on free) only until the first such block is freed: then it raises its mmap
threshold past 19 MiB and later buffers come from the hashing threads' arenas, which it never
returns: a worker kept ~38 MB more for good after a few logins. Fixing the threshold at
MMAP_THRESHOLD (`mallopt`, as `MALLOC_MMAP_THRESHOLD_` would) keeps every buffer on mmap.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.tracing.instruments import NoSpans, Spans

HASH_THREADS = 2
MMAP_THRESHOLD = 4 * 1024 * 1024  # blocks this large or larger: mmap, returned when freed
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def keep_large_blocks_on_mmap() -> bool:
    """Fix glibc's mmap threshold (no-op elsewhere); whether it was set."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    mallopt = getattr(ctypes.CDLL(libc_name), "mallopt", None)  # musl has none
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)


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
