"""A test client for `GET /api/v1/events`: subscribe, then read events one by one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2


class SseReader:
    """Reads `text/event-stream` events (dicts of id/event/data) from a streaming response."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def next(self, wait: float = 5) -> dict[str, str]:
        event: dict[str, str] = {}
        async with asyncio.timeout(wait):
            async for line in self.lines:
                if not line:
                    if event:
                        return event
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                event[field] = value.removeprefix(" ")
        raise EOFError("the stream ended")

    async def events(self, count: int, wait: float = 5) -> list[dict[str, str]]:
        """The next `count` events that carry an id (skipping retry and notices)."""
        found: list[dict[str, str]] = []
        while len(found) < count:
            event = await self.next(wait)
            if "id" in event:
                found.append(event)
        return found


@asynccontextmanager
async def subscribe(
    http: httpx2.AsyncClient, url: str, headers: dict[str, str], last_event_id: str | None = None
) -> AsyncIterator[SseReader]:
    if last_event_id is not None:
        headers = {**headers, "Last-Event-ID": last_event_id}
    async with http.stream("GET", f"{url}/api/v1/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(response)
        assert (await reader.next())["retry"]  # subscribed
        yield reader
