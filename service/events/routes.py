"""GET /api/v1/events: the live event stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from service.deps import CurrentUser, Rt
from service.events.sse import EventStreamResponse

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get(
    "/events",
    status_code=200,
    response_class=EventStreamResponse,
    summary="Server-Sent Events: post.created, post.updated, post.deleted, user.created",
    description=(
        "Each event has a monotonic `id:` (resume with the Last-Event-ID header), an `event:` "
        "and JSON `data:`. A keep-alive comment comes every 15 s. A Last-Event-ID older than "
        "what is kept starts from the oldest kept event, announced by a `stream.truncated` "
        "event; a client too slow to keep up gets `stream.dropped` and should reconnect. "
        "503 while Redis is unavailable."
    ),
)
async def events(
    rt: Rt,
    caller: CurrentUser,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventStreamResponse:
    subscription = await rt.events.subscribe(last_event_id)
    return EventStreamResponse(rt.events, subscription)
