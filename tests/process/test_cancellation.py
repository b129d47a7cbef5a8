"""Stopping tasks whose cancellation a library loses (service.process.cancellation)."""

from __future__ import annotations

import asyncio

from service.process.cancellation import cancel_and_wait


async def _loses_cancellations(times: int) -> None:
    # As a task reading Redis does on Python 3.11: redis-py sends each command through
    # asyncio.wait_for, which drops a cancellation landing as the send completes.
    lost = 0
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if lost == times:
                raise
            lost += 1


def test_a_task_that_lost_cancellations_is_still_stopped() -> None:
    async def main() -> None:
        task = asyncio.create_task(_loses_cancellations(3))
        await asyncio.sleep(0)
        assert await cancel_and_wait([task], 2.0) == set()
        assert task.cancelled()

    asyncio.run(main())


def test_a_task_that_refuses_to_stop_is_returned_once_the_time_is_up() -> None:
    async def refuses(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await stop.wait()
            except asyncio.CancelledError:
                continue

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(refuses(stop))
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await cancel_and_wait([task], 0.3) == {task}
        assert 0.3 <= loop.time() - started < 1.0
        stop.set()
        await task

    asyncio.run(main())
