"""`apictl events`: the outbox, its relay and the Stream, as operators and developers see them."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, Any

import orjson
import typer

from apictl.errors import ExitCode
from apictl.output import console, fail, print_json

STOP_SECONDS = 5.0

app = typer.Typer(
    help="Watch the event outbox, its relay and the live Stream.", no_args_is_help=True
)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Events waiting in the outbox and the oldest one's age, the Stream's length and last id,
    and which process holds the relay."""
    from dataclasses import asdict

    from apictl.session import run_service

    found = run_service(lambda rt: rt.relay.status())
    if as_json:
        print_json(asdict(found))
        return
    holder = found.holder
    rows = [
        ("backlog", f"{found.backlog} event(s) waiting"),
        ("oldest waiting", f"{found.oldest_waiting_seconds:.1f} s" if found.backlog else "-"),
        (
            "relay",
            f"{holder.application_name} (backend pid {holder.pid}, since {holder.since:%H:%M:%S})"
            if holder
            else "no process holds it: is `apictl serve` running?",
        ),
        (
            "stream",
            f"{found.stream_length} event(s), last id {found.last_id or '-'}"
            if found.redis_error is None
            else f"Redis unreachable: {found.redis_error}",
        ),
    ]
    for name, value in rows:
        console.print(f"[bold]{name:>15}[/]  {value}")


@app.command()
def tail(
    since: Annotated[
        str | None,
        typer.Option(metavar="ID", help="Replay from after this event id first (as in SSE id:)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print events as they reach the Stream, one line each (id, type, data), until Ctrl-C
    (or SIGTERM)."""
    from apictl.session import resolve_servers
    from service.config import load_settings
    from service.events.bus import follow, is_event_id
    from service.process.cancellation import cancel_and_wait
    from service.process.redis_client import create_redis

    if since is not None and not is_event_id(since):
        fail(
            f"--since {since!r} is not an event id",
            hint="ids look like 1764629925123-0",
            code=ExitCode.USAGE,
        )
    settings = resolve_servers(load_settings())

    async def show() -> None:
        redis = create_redis(settings)
        try:
            async for event in follow(redis, since):
                if as_json:
                    line: dict[str, Any] = {"id": event.id, "type": event.type}
                    line["data"] = orjson.loads(event.data)
                    print(orjson.dumps(line).decode(), flush=True)
                else:
                    print(f"{event.id}  {event.type}  {event.data}", flush=True)
        finally:
            await redis.aclose()

    async def main() -> None:
        # Our own handlers, not asyncio.run's: a shell starts `&` jobs with SIGINT ignored, and
        # asyncio.run would then leave it ignored.
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, signalled.set)
        showing = asyncio.create_task(show())
        stop = asyncio.create_task(signalled.wait())
        await asyncio.wait((showing, stop), return_when=asyncio.FIRST_COMPLETED)
        # One cancel() can be lost inside redis-py (see service.process.cancellation).
        await cancel_and_wait((showing, stop), STOP_SECONDS)
        if showing.done() and not showing.cancelled():
            showing.result()  # its error, if it ended on one

    asyncio.run(main())
