"""The HTTP client of webhook deliveries: one POST at a time per connection, HTTP/1.1, kept alive.

Not httpx (which apictl ships for `apictl check`): through it a webhook POST costs about 840 us
of CPU, through this client about 80 (5,000 POSTs to a loopback receiver, 10 at a time, one
core), and a worker delivers on the core it serves requests on. The job is narrow, which is why
it fits here: a POST with a body to an address already checked, no redirects, proxies, cookies
or decompression, an answer read up to a cap. httptools, uvicorn's HTTP parser and already a
dependency, parses the answers.

Connections are kept per (scheme, address, port, TLS server name) for IDLE_SECONDS, at most
IDLE_PER_ADDRESS of them. A request on a kept connection that the receiver closed before
answering is sent once more on a new one: the receiver closed it while it was idle, a race every
keep-alive client has (the message carries its webhook-id, so a receiver can tell it again).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

IDLE_SECONDS = 30.0  # a kept connection unused this long is closed rather than used
IDLE_PER_ADDRESS = 10
HEAD_CAP = 16 * 1024  # bytes of an answer's header lines read at most
URL_SAFE = "/?&=%:@!$'()*+,;~"  # left as they are in a request's path and query
Key = tuple[str, str, int, str | None]


class HTTPError(Exception):
    """No usable answer: one line saying why."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; of a repeated header, the last
    body: bytes  # at most the client's cap: the rest is not read


class _Connection(asyncio.Protocol):
    """One connection: a request written, its answer parsed, then maybe the next request."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[Answer] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.heard = False  # a byte of the current answer came
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head = 0
        self.body = bytearray()
        self.reusable = False

    def expect(self, answer: asyncio.Future[Answer]) -> None:
        self.answer, self.heard, self.status, self.head = answer, False, 0, 0
        self.headers, self.body, self.reusable = {}, bytearray(), False

    # -- asyncio ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.answer is None or self.answer.done():  # nothing asked: not a peer to keep
            self._close()
            return
        self.heard = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"not an HTTP/1.1 answer ({exc})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.status:  # an answer ended by closing the connection (HTTP/1.0 without length)
            self._done(False)
        else:
            self._fail("the connection closed before an answer")

    # -- httptools -------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head += len(name) + len(value)
        if self.head > HEAD_CAP:
            self._fail(f"answer headers over {HEAD_CAP // 1024} KB")
        else:
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        room = self.cap - len(self.body)
        self.body += body[:room]
        if len(body) > room:  # the rest is not read: the connection cannot be used again
            self._done(False)

    def on_message_complete(self) -> None:
        self._done(self.parser.should_keep_alive())

    # -- outcomes --------------------------------------------------------------------------------

    def _done(self, reusable: bool) -> None:
        if self.answer is not None and not self.answer.done():
            self.reusable = reusable
            self.answer.set_result(Answer(self.status, self.headers, bytes(self.body)))
        if not reusable:
            self._close()

    def _fail(self, why: str) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(HTTPError(why))
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Client:
    """POSTs to checked addresses, answers read up to `cap` bytes; `aclose` when done."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._idle: dict[Key, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, server_name: str | None = None
    ) -> Answer:
        """POST `body` to `url` (its host an address), with `headers` (Host among them), over
        TLS checked against `server_name` (default: the address) for https."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HTTPError(f"not an http(s) URL to an address: {url}")
        secure = parts.scheme == "https"
        key = (parts.scheme, parts.hostname, parts.port or (443 if secure else 80), server_name)
        request = _request(parts.path or "/", parts.query, headers, body)
        connection = self._take(key)
        if connection is not None:
            try:
                return await self._exchange(key, connection, request)
            except HTTPError:
                if connection.heard:
                    raise
                # closed by the receiver while it idled: once more, on a new connection
        return await self._exchange(key, await self._connect(key), request)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection._close()
        self._idle.clear()

    def _take(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection._close()
        return None

    async def _connect(self, key: Key) -> _Connection:
        scheme, address, port, server_name = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:  # made with the first https delivery: a few MB
                self._tls = ssl.create_default_context()
                self._tls.set_alpn_protocols(["http/1.1"])
            tls = self._tls
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: _Connection(self.cap), address, port,
            ssl=tls, server_hostname=(server_name or address) if tls else None,
        )  # fmt: skip
        return connection

    async def _exchange(self, key: Key, connection: _Connection, request: bytes) -> Answer:
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        connection.expect(answer)
        assert connection.transport is not None
        connection.transport.write(request)
        try:
            result = await answer
        except BaseException:
            connection._close()  # cancelled (the timeout) or failed: never used again
            raise
        finally:
            connection.answer = None
        if connection.reusable and not connection.closed:
            connection.idle_since = time.monotonic()
            idle = self._idle.setdefault(key, [])
            if len(idle) < IDLE_PER_ADDRESS:
                idle.append(connection)
            else:
                connection._close()
        return result


def _request(path: str, query: str, headers: dict[str, str], body: bytes) -> bytes:
    target = quote(f"{path}?{query}" if query else path, safe=URL_SAFE)  # kept: its %XX
    if any("\r" in text or "\n" in text for text in (target, *headers, *headers.values())):
        raise HTTPError("a header or the path holds a line break")
    lines = [f"POST {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    try:
        return "\r\n".join(lines).encode("ascii") + body
    except UnicodeEncodeError:
        raise HTTPError("a header or the path is not ASCII") from None
