"""GET /api/v1/events: the live event stream; POST /api/v1/events/ticket: a browser's way in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query

from service.deps import CurrentUser, Rt, StreamCaller
from service.events import tickets
from service.events.bus import EVENT_ID_PATTERN
from service.events.schemas import StreamTicket
from service.events.sse import EventStreamResponse
from service.http.route_options import ApiRoute

router = APIRouter(prefix="/api/v1", tags=["events"], route_class=ApiRoute)


@router.get(
    "/events",
    status_code=200,
    response_class=EventStreamResponse,
    summary="Server-Sent Events: post.created, post.updated, post.deleted, user.created",
    description=(
        "Each event has a monotonic `id:` (resume with the Last-Event-ID header, or the "
        "`last_event_id` query parameter where a header cannot be set; the header wins), an "
        "`event:` and JSON `data:`. A keep-alive comment comes after 15 s (at most 20 s) of "
        "silence. A Last-Event-ID "
        "older than what is kept starts from the oldest kept event, announced by a "
        "`stream.truncated` event; a client too slow to keep up gets `stream.dropped` and "
        "should reconnect. Authenticated by a bearer token or a `ticket`. "
        "503 while Redis is unavailable."
    ),
)
async def events(
    rt: Rt,
    caller: StreamCaller,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    # EventSource sends the header itself when it reconnects, to the URL it was opened with:
    # the header is the newer position, so it wins over the query parameter.
    resume_after: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            pattern=EVENT_ID_PATTERN,
            description="As the Last-Event-ID header, for a new EventSource",
        ),
    ] = None,
) -> EventStreamResponse:
    subscription = await rt.events.subscribe(last_event_id or resume_after)
    return EventStreamResponse(rt.events, subscription)


@router.post(
    "/events/ticket",
    status_code=201,
    summary="A ticket for GET /api/v1/events?ticket=... (5 minutes, reconnects included)",
    description=(
        "For browsers: EventSource cannot send an Authorization header. The ticket opens the "
        "event stream only, for 5 minutes (never beyond the token), reconnects included, and "
        "ends with the token that made it (logout, revocation). 503 while Redis is unavailable."
    ),
)
async def ticket(rt: Rt, caller: CurrentUser) -> StreamTicket:
    return await tickets.issue(rt, caller)
