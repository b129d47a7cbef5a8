"""/api/v1/auth: log in for a token, log out to end it."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from service.auth import service
from service.auth.client_ip import client_ip
from service.auth.schemas import AccessToken, LoginRequest
from service.deps import CurrentUser, Rt
from service.http.route_options import ApiRoute, route_options

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=ApiRoute)


@router.post("/login", summary="Exchange email and password for a bearer token")
@route_options(counted=False)  # it has a limit of its own, per address and account
async def login(body: LoginRequest, request: Request, rt: Rt) -> AccessToken:
    ip = client_ip(request.scope, rt.trusted_proxies)
    return await service.login(rt, body.email, body.password, ip)


@router.post("/logout", status_code=204, summary="End the token of this request everywhere")
async def logout(rt: Rt, caller: CurrentUser) -> Response:
    await service.logout(rt, caller)
    return Response(status_code=204)
