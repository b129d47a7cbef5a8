"""What a worker gives back to the system: glibc's allocator, told how (no-ops elsewhere).

- Large blocks stay on mmap (`keep_large_blocks_on_mmap`): glibc serves a block of 19 MiB (an
  argon2 hash) with mmap, returned on free, only until the first such block is freed; then it
  raises its mmap threshold past it and later buffers come from the hashing threads' arenas,
  which it never returns (a worker kept ~38 MB more for good after a few logins). Fixing the
  threshold at MMAP_THRESHOLD (`mallopt`, as `MALLOC_MMAP_THRESHOLD_` would) keeps them on mmap.
- Python's objects come from glibc too (`ALLOCATOR`, set by `apictl serve` for its workers):
  Python's own allocator returns a 1 MiB arena only once every object in it is gone, and
  10,000 closed event streams left ~100 MB of arenas each held by a few survivors; glibc
  returns the free pages between survivors when asked (`give_back_free_memory`), which the
  event bus does once many streams have closed (a full collection first: closed connections
  are garbage in reference cycles).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache

MMAP_THRESHOLD = 4 * 1024 * 1024  # blocks this large or larger: mmap, returned when freed
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
ALLOCATOR = {"PYTHONMALLOC": "malloc"}  # the serving process's environment, unless set


@cache
def _libc_function(name: str) -> Callable[..., int] | None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    function: Callable[..., int] | None = getattr(ctypes.CDLL(libc_name), name, None)
    return function  # musl has neither mallopt nor malloc_trim


def keep_large_blocks_on_mmap() -> bool:
    """Fix glibc's mmap threshold; whether it was set."""
    mallopt = _libc_function("mallopt")
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)


def give_back_free_memory() -> bool:
    """Collect garbage and return glibc's free pages to the system (`malloc_trim(0)`);
    whether any went back.

    The collection is a full one: a connection's objects (uvicorn's protocol, its transport,
    the task) refer to each other, and those of long connections have reached the oldest
    generation, which Python seldom collects on its own.
    """
    gc.collect()
    malloc_trim = _libc_function("malloc_trim")
    return bool(malloc_trim and malloc_trim(0) == 1)
