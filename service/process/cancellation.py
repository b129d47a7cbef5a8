"""Cancellation that a library lost, or turned into an error of its own.

redis-py disconnects on any exception and may raise ConnectionError/TimeoutError instead of the
CancelledError; asyncpg's timeouts can do the same. A background loop that retries on such
errors must still stop when its task is cancelled, or shutdown (asyncio.run cancelling what is
left) waits for it forever.

On Python 3.11 a cancellation can also be lost outright: `asyncio.wait_for` returns its
awaitable's result when the cancellation arrives in the loop turn that awaitable completes
(python/cpython#86296, fixed by 3.12's rewrite). redis-py sends every command through
`wait_for`, so a task reading Redis in a loop (the Stream reader, `apictl events tail`) can take
one `cancel()` and carry on. `cancel_and_wait` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

RECANCEL_SECONDS = 0.1


def stop_if_cancelled(error: BaseException) -> None:
    """Re-raise as CancelledError when the current task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]], within: float
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks`, again every 0.1 s while one lingers, for at most `within` seconds.

    Returns the tasks still running then. Never raises the tasks' errors, nor absorbs a
    cancellation of the caller (it waits with `asyncio.wait`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = {task for task in tasks if not task.done()}
    while pending and (left := deadline - loop.time()) > 0:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_SECONDS, left))
    return pending
