"""uvicorn's httptools protocol with the limits it lacks on request headers.

uvicorn puts no deadline on request headers (a "slowloris" client sending a byte now and then
holds its connection for ever) and httptools no cap on their size. Here headers must arrive
within HEADER_TIMEOUT of the connection or of the request's first byte, and weigh at most
MAX_HEADER_BYTES; otherwise the client gets a 408 or 431 in the unified error body and the
connection is closed. Protocol errors answer 400 in the same body rather than plain text.
"""

from __future__ import annotations

import asyncio
import secrets

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class HeadersTooLarge(Exception):
    """Raised in a parser callback: the request's headers passed MAX_HEADER_BYTES."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`uvicorn.Config(http=LimitedHttpToolsProtocol)`: httptools with header limits."""

    _deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # httptools reports our HeadersTooLarge as a parser error, which lands here
        if self._too_large:
            self._refuse(431, "request_headers_too_large", "the request headers are too large")
        else:
            self._refuse(400, "bad_request", "the request is not valid HTTP")

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._too_large = True
            raise HeadersTooLarge

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._refuse(408, "request_timeout", "the request headers did not arrive in time")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer before the app saw a request (so with an id of our own) and hang up."""
        self._disarm()
        request_id = f"conn-{secrets.token_hex(8)}"
        body = orjson.dumps({"error": message, "code": code, "request_id": request_id})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-request-id: %s\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), request_id.encode(), body)
        )
        self.transport.close()
