"""`GET /health` answered at the edge: liveness touches nothing, so it skips the framework.

Probes hit it every few seconds on every pod; it still gets a request id, an access-log line
and its metrics (this sits inside the request-context middleware), but not routing,
dependency resolution or the response machinery. The FastAPI route of the same path stays
for the OpenAPI document and for other methods (405).
"""

from __future__ import annotations

from types import SimpleNamespace

from starlette.types import ASGIApp, Receive, Scope, Send

HEALTHY = b'{"status":"ok"}'
_ROUTE = SimpleNamespace(path="/health")  # what the router would have put in the scope
_HEADERS = ((b"content-type", b"application/json"), (b"content-length", b"15"))


class LivenessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/health" and scope["method"] == "GET":
            scope["route"] = _ROUTE  # for the access log and the metrics label
            # a fresh header list each time: outer middleware appends to it
            await send({"type": "http.response.start", "status": 200, "headers": list(_HEADERS)})
            await send({"type": "http.response.body", "body": HEALTHY})
            return
        await self.app(scope, receive, send)
