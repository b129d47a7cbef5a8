"""Run a middleware only for the requests it concerns (CORS: an Origin; gzip: Accept-Encoding).

Starlette's CORS and GZip middleware wrap every request, header parsing and send wrappers
included; most requests (server-to-server calls, probes, clients not asking for gzip) gain
nothing from that. This checks the raw header once and sends the rest straight on.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class WhenHeader:
    """Send requests carrying `header` (containing `contains`, if given) through `middleware`."""

    def __init__(
        self,
        app: ASGIApp,
        /,
        header: bytes,
        middleware: Any,
        contains: bytes | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.header = header
        self.contains = contains
        self.wrapped: ASGIApp = middleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == self.header and (self.contains is None or self.contains in value):
                    await self.wrapped(scope, receive, send)
                    return
        await self.app(scope, receive, send)
