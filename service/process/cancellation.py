"""Cancellation that a library turned into an error of its own.

redis-py disconnects on any exception and may raise ConnectionError/TimeoutError instead of the
CancelledError; asyncpg's timeouts can do the same. A background loop that retries on such
errors must still stop when its task is cancelled, or shutdown (asyncio.run cancelling what is
left) waits for it forever.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled(error: BaseException) -> None:
    """Re-raise as CancelledError when the current task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error
