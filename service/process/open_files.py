"""The open-files limit (RLIMIT_NOFILE), and how many live event streams it leaves a worker.

Each event stream holds one socket for as long as its client listens, so a worker's streams are
bounded by the files it may open; past that, accept() and every connect() fail with EMFILE.
"""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path

from service.config import Settings
from service.process.redis_client import POOL_SIZE as REDIS_POOL_SIZE

# Files a worker holds besides streams and its pools: the listening socket, ordinary requests'
# sockets, log files, the interpreter's own (its modules, /dev/urandom, the event loop's fds)
RESERVE = 200
RELAY_CONNECTIONS = 1  # the event relay's direct PostgreSQL connection (session lock, LISTEN)
NR_OPEN = Path("/proc/sys/fs/nr_open")  # Linux: the most any process may set
UNLIMITED_FALLBACK = 1_048_576  # Linux's default nr_open, for a kernel that does not say


def current_limit() -> int:
    """The soft limit: the files this process may hold open now."""
    return _finite(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def hard_limit() -> int:
    """The hard limit: the most `raise_limit` can reach (an unlimited one counted as the kernel's
    cap, since no process can hold more)."""
    return _finite(resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def raise_limit() -> int:
    """Raise the soft limit to the hard one and return the soft limit now in force.

    Many systems start processes at a soft limit of 1,024 under a far higher hard one: raising
    it needs no privilege, and processes started from here (the workers) inherit it. It never
    fails: where the kernel refuses, the limit stays as it was, and a worker with fewer streams
    still serves.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _finite(hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return _finite(soft)  # as high as it goes already
    # refused (e.g. macOS, above its own cap under an unlimited hard limit): keep what there is
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return current_limit()


def reserved_files(settings: Settings) -> int:
    """Files a worker needs for everything but streams: its database pool at its largest, the
    relay's connection, its Redis pool at its largest and RESERVE."""
    return settings.db_pool_max + RELAY_CONNECTIONS + REDIS_POOL_SIZE + RESERVE


def stream_capacity(settings: Settings, open_files: int) -> int:
    """How many live streams one worker can hold with `open_files` without starving its pools,
    its requests or its logs of file descriptors; never below 0."""
    return max(0, open_files - reserved_files(settings))


def stream_limit(settings: Settings) -> int:
    """Streams one worker admits: APICTL_MAX_STREAMS, but never more than the current soft limit
    leaves room for (an event bus asks once, at start-up; past it a new stream gets 503)."""
    capacity = stream_capacity(settings, current_limit())
    if settings.max_streams is None:
        return capacity
    return min(settings.max_streams, capacity)


def _finite(limit: int) -> int:
    if limit != resource.RLIM_INFINITY:
        return limit
    try:
        return int(NR_OPEN.read_text())
    except (OSError, ValueError):
        return UNLIMITED_FALLBACK
