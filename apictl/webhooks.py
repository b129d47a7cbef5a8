"""`apictl webhooks`: the endpoints events are POSTed to, and their deliveries (the same service
code as the admin API)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from apictl.output import console, errors, print_json, print_table

if TYPE_CHECKING:  # the service (pydantic, asyncpg, redis) is imported by each command
    from service.webhooks.schemas import Webhook

app = typer.Typer(
    help="Send events to other services: signed (Standard Webhooks), retried, never lost.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
IdArg = Annotated[UUID, typer.Argument(metavar="ID", help="The endpoint's id (webhooks list).")]
_COLUMNS = ["id", "url", "events", "enabled", "description", "failing since"]


def _row(hook: Webhook) -> list[object]:
    state = "yes" if hook.enabled else f"no: {hook.disabled_reason or 'disabled'}"
    events = ",".join(hook.events) if hook.events is not None else "all"
    return [hook.id, hook.url, events, state, hook.description, hook.failing_since]


def _show(hook: Webhook, as_json: bool) -> None:
    if as_json:
        print_json(hook.model_dump(mode="json"))
    else:
        print_table(None, _COLUMNS, [_row(hook)])


def _secret_shown_once(secret: str, endpoint: UUID) -> None:
    """The secret alone on stdout (for scripts), the warning on stderr."""
    console.print(secret)
    errors.print(f"the secret of {endpoint}: store it now, it is shown only this once")


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="Where to POST events: an http(s) URL.")],
    events: Annotated[
        str | None,
        typer.Option(
            metavar="TYPE,...",
            help="Comma list of event types (post.created, ...); left out: every type.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What the endpoint is for.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Add an endpoint and print its id and secret (`whsec_...`), the secret only this once.

    Every event of its types is then POSTed to it, signed with the secret. Loopback, private and
    other non-public addresses are refused unless APICTL_WEBHOOK_ALLOW_PRIVATE=true.
    """
    from apictl.session import run_service
    from service.webhooks import service
    from service.webhooks.schemas import NewWebhook

    types = [t.strip() for t in events.split(",") if t.strip()] if events is not None else None
    new = NewWebhook(url=url, events=types, description=description)
    created = run_service(lambda rt: service.add_webhook(rt, new))
    if as_json:
        print_json(created.model_dump(mode="json"))
        return
    errors.print(f"webhook {created.id} added for {created.url}")
    _secret_shown_once(created.secret, created.id)


@app.command("list")
def list_webhooks(as_json: JsonOpt = False) -> None:
    """Every endpoint (never its secret): id, URL, event types, enabled, failing since."""
    from apictl.session import run_service
    from service.webhooks import service

    hooks = run_service(service.list_webhooks)
    if as_json:
        print_json([hook.model_dump(mode="json") for hook in hooks])
        return
    print_table(f"{len(hooks)} webhook(s)", _COLUMNS, [_row(hook) for hook in hooks])


def _set_enabled(endpoint: UUID, enabled: bool, as_json: bool) -> None:
    from apictl.session import run_service
    from service.webhooks import service
    from service.webhooks.schemas import WebhookChanges

    changes = WebhookChanges(enabled=enabled)
    _show(run_service(lambda rt: service.update_webhook(rt, endpoint, changes)), as_json)


@app.command()
def disable(endpoint: IdArg, as_json: JsonOpt = False) -> None:
    """Stop sending to an endpoint: nothing is sent until it is enabled again (its pending
    deliveries wait)."""
    _set_enabled(endpoint, False, as_json)


@app.command()
def enable(endpoint: IdArg, as_json: JsonOpt = False) -> None:
    """Send to an endpoint again (also one disabled by a 410 or by 5 days of failures)."""
    _set_enabled(endpoint, True, as_json)


@app.command("rotate-secret")
def rotate_secret(endpoint: IdArg, as_json: JsonOpt = False) -> None:
    """Give an endpoint a new secret and print it once; for 24 hours the old one signs too
    (each message carries both signatures), so receivers can switch without losing one."""
    from apictl.session import run_service
    from service.webhooks import service

    rotated = run_service(lambda rt: service.rotate_secret(rt, endpoint))
    if as_json:
        print_json(rotated.model_dump(mode="json"))
        return
    _secret_shown_once(rotated.secret, endpoint)
    if rotated.previous_valid_until is not None:
        until = rotated.previous_valid_until
        errors.print(f"the previous secret signs too until {until:%Y-%m-%d %H:%M} UTC")


@app.command()
def remove(endpoint: IdArg) -> None:
    """Remove an endpoint and its deliveries (those pending are never sent)."""
    from apictl.session import run_service
    from service.webhooks import service

    run_service(lambda rt: service.remove_webhook(rt, endpoint))
    console.print(f"[green]removed[/] {endpoint}")


@app.command()
def deliveries(
    endpoint: Annotated[
        UUID | None, typer.Argument(metavar="ID", help="Only this endpoint's.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Recent deliveries, newest first: event, status, attempts, next attempt, last answer."""
    from apictl.session import run_service
    from service.webhooks import service

    found = run_service(lambda rt: service.recent_deliveries(rt, endpoint, limit))
    if as_json:
        print_json([d.model_dump(mode="json") for d in found])
        return
    columns = ["event", "type", "endpoint", "status", "attempts", "next attempt", "last answer"]
    rows = [
        [
            d.event_id,
            d.event_type,
            d.endpoint_id,
            d.status,
            d.attempts,
            d.next_attempt_at,
            d.last_error or d.last_status,
        ]
        for d in found
    ]
    print_table(f"{len(found)} deliver(ies)", columns, rows)


@app.command()
def replay(
    endpoint: IdArg,
    since: Annotated[
        str,
        typer.Option(
            metavar="EVENT_ID", help="Replay the events after this one (an id from deliveries)."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Deliver again, to one endpoint, every event of its types after EVENT_ID that the event
    Stream still keeps (delivered and failed ones too)."""
    from apictl.session import run_service
    from service.webhooks import service

    replayed = run_service(lambda rt: service.replay(rt, endpoint, since))
    if as_json:
        print_json(replayed.model_dump(mode="json"))
        return
    console.print(f"[green]queued[/] {replayed.queued} event(s) for {endpoint}")
    if replayed.truncated:
        errors.print(f"some events after {since} are no longer kept: they were not replayed")
