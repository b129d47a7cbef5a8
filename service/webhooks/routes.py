"""/api/v1/webhooks: thin admin endpoints over webhooks.service."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from starlette.responses import Response

from service.deps import AdminUser, Rt
from service.http.route_options import ApiRoute
from service.webhooks import service
from service.webhooks.schemas import (
    CreatedWebhook,
    Delivery,
    NewSecret,
    NewWebhook,
    Replayed,
    Webhook,
    WebhookChanges,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], route_class=ApiRoute)


@router.post("", status_code=201, summary="Add an endpoint; its secret is shown this once (admin)")
async def add_webhook(new: NewWebhook, rt: Rt, caller: AdminUser) -> CreatedWebhook:
    return await service.add_webhook(rt, new)


@router.get("", summary="Every endpoint, oldest first (admin)")
async def list_webhooks(rt: Rt, caller: AdminUser) -> list[Webhook]:
    return await service.list_webhooks(rt)


@router.get("/{webhook_id}", summary="One endpoint (admin)")
async def get_webhook(webhook_id: UUID, rt: Rt, caller: AdminUser) -> Webhook:
    return await service.get_webhook(rt, webhook_id)


@router.patch("/{webhook_id}", summary="Change an endpoint: enable, disable, URL, events (admin)")
async def update_webhook(
    webhook_id: UUID, changes: WebhookChanges, rt: Rt, caller: AdminUser
) -> Webhook:
    return await service.update_webhook(rt, webhook_id, changes)


@router.delete("/{webhook_id}", status_code=204, summary="Remove an endpoint (admin)")
async def remove_webhook(webhook_id: UUID, rt: Rt, caller: AdminUser) -> Response:
    await service.remove_webhook(rt, webhook_id)
    return Response(status_code=204)


@router.post("/{webhook_id}/secret", summary="A new secret; the old one signs too for 24 h")
async def rotate_secret(webhook_id: UUID, rt: Rt, caller: AdminUser) -> NewSecret:
    return await service.rotate_secret(rt, webhook_id)


@router.get("/{webhook_id}/deliveries", summary="An endpoint's newest deliveries (admin)")
async def deliveries(webhook_id: UUID, rt: Rt, caller: AdminUser) -> list[Delivery]:
    return await service.recent_deliveries(rt, webhook_id)


@router.post("/{webhook_id}/replay", summary="Deliver again every event kept after `since`")
async def replay(webhook_id: UUID, since: str, rt: Rt, caller: AdminUser) -> Replayed:
    return await service.replay(rt, webhook_id, since)
