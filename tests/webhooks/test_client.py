"""The webhook HTTP client against real servers on loopback: plain HTTP/1.1 servers that answer
as receivers in the wild do (kept alive, chunked, closing, huge, hanging up) and a TLS server
with a certificate from a test CA made by openssl."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from service.webhooks.client import Answer, Client, HTTPError

CAP = 64 * 1024
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
Reply = Callable[[int, bytes], bytes | None]  # (request number on its connection, request) -> raw


class Server:
    """An HTTP/1.1 server on loopback answering each request with `reply`'s raw bytes (None:
    hang up without answering); it counts connections and keeps every request."""

    def __init__(self, reply: Reply) -> None:
        self.reply, self.connections, self.requests = reply, 0, list[bytes]()
        self.server_names: list[str | None] = []  # of TLS clients (SNI)
        self.listening: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def serve(self, context: ssl.SSLContext | None = None) -> str:
        self.listening = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        port = self.listening.sockets[0].getsockname()[1]
        return f"{'https' if context else 'http'}://127.0.0.1:{port}"

    async def close(self) -> None:
        if self.listening is not None:
            self.listening.close()
        for handler in self.handlers:
            handler.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers.add(handler)
        try:
            await self._answer(reader, writer)
        finally:
            writer.close()
            self.handlers.discard(handler)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        for number in range(1, 100):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            request = head + await reader.readexactly(length)
            self.requests.append(request)
            raw = self.reply(number, request)
            if raw is None:
                break
            writer.write(raw)
            await writer.drain()
            if b"connection: close" in raw.lower() or raw.startswith(b"HTTP/1.0"):
                break


def run(test: Callable[[Client], Awaitable[None]], server: Server) -> None:
    """`test` with a new client, in an event loop of its own; then the client and `server`
    closed."""

    async def main() -> None:
        client = Client(CAP)
        try:
            await asyncio.wait_for(test(client), 10)
        finally:
            await client.aclose()
            await server.close()

    asyncio.run(main())


async def post(client: Client, url: str, server_name: str | None = None) -> Answer:
    headers = {"host": "receiver.example", "webhook-id": "1-0"}
    return await client.post(f"{url}/hooks?x=1", headers, b'{"a": 1}', server_name)


def test_a_kept_alive_connection_carries_the_next_posts() -> None:
    server = Server(lambda n, request: OK)

    async def test(client: Client) -> None:
        url = await server.serve()
        answers = [await post(client, url) for _ in range(20)]
        assert {(a.status, a.body) for a in answers} == {(200, b"ok")}

    run(test, server)
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /hooks?x=1 HTTP/1.1\r\n")
    assert b"host: receiver.example\r\n" in first
    assert first.endswith(b'content-length: 8\r\n\r\n{"a": 1}')


def test_a_kept_connection_the_receiver_dropped_is_replaced_once() -> None:
    # the receiver hangs up on the second request of a connection without answering, as one
    # that closed an idle connection at the moment the request went out
    server = Server(lambda n, request: OK if n == 1 else None)

    async def test(client: Client) -> None:
        url = await server.serve()
        assert (await post(client, url)).status == 200
        assert (await post(client, url)).status == 200

    run(test, server)
    assert len(server.requests) == 3  # the one hung up on, sent again on a new connection
    assert server.connections == 2


def test_a_new_connection_hung_up_on_is_an_error_not_retried() -> None:
    server = Server(lambda n, request: None)

    async def test(client: Client) -> None:
        url = await server.serve()
        with pytest.raises(HTTPError, match="closed before an answer"):
            await post(client, url)

    run(test, server)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n"
        b"4\r\nbusy\r\n5\r\n: try\r\n0\r\n\r\n",
        b"HTTP/1.0 503 Busy\r\n\r\nbusy: try",  # no length: the answer ends with the connection
    ],
    ids=["chunked", "until-close"],
)
def test_answers_chunked_or_ended_by_closing_are_read(raw: bytes) -> None:
    server = Server(lambda n, request: raw)

    async def test(client: Client) -> None:
        url = await server.serve()
        answer = await post(client, url)
        assert (answer.status, answer.body) == (503, b"busy: try")
        assert (await post(client, url)).status == 503  # and the next post still goes out

    run(test, server)


def test_a_huge_answer_is_read_up_to_the_cap_and_its_connection_dropped() -> None:
    body = b"x" * (4 * CAP)
    huge = b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\nretry-after: 7\r\n\r\n" % len(body) + body
    server = Server(lambda n, request: huge)

    async def test(client: Client) -> None:
        url = await server.serve()
        answer = await post(client, url)
        assert (answer.status, len(answer.body), answer.headers["retry-after"]) == (500, CAP, "7")
        await post(client, url)

    run(test, server)
    assert server.connections == 2  # the rest of the first answer was not read: not reused


def test_what_is_not_http_is_an_error() -> None:
    server = Server(lambda n, request: b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    async def test(client: Client) -> None:
        with pytest.raises(HTTPError, match=r"not an HTTP/1\.1 answer"):
            await post(client, await server.serve())

    run(test, server)


def test_a_line_break_in_a_header_sends_nothing() -> None:
    server = Server(lambda n, request: OK)

    async def test(client: Client) -> None:
        url = await server.serve()
        with pytest.raises(HTTPError, match="line break"):
            await client.post(f"{url}/hooks", {"host": "a\r\nx-injected: 1"}, b"{}")

    run(test, server)
    assert server.requests == []


def test_a_path_is_sent_percent_encoded() -> None:
    server = Server(lambda n, request: OK)

    async def test(client: Client) -> None:
        url = await server.serve()
        await client.post(f"{url}/a b/caf\u00e9?q=1%202", {"host": "h"}, b"")

    run(test, server)
    assert server.requests[0].startswith(b"POST /a%20b/caf%C3%A9?q=1%202 HTTP/1.1\r\n")


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA (ca.pem) and a certificate it signed for `receiver.test` (server.pem/.key)."""
    where = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=receiver.test",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (where / "san.ext").write_text("subjectAltName=DNS:receiver.test\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", "server.pem")  # fmt: skip
    return where


def _tls_server(certificates: Path) -> tuple[Server, ssl.SSLContext]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    server = Server(lambda n, request: OK)
    context.sni_callback = lambda _, name, __: server.server_names.append(name)
    return server, context


def test_tls_to_the_checked_address_verifies_the_url_s_name(
    certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))  # trust the test CA
    server, context = _tls_server(certificates)

    async def test(client: Client) -> None:
        url = await server.serve(context)
        assert (await post(client, url, "receiver.test")).status == 200
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await post(client, url, "other.test")  # a name the certificate is not for

    run(test, server)
    assert server.server_names == ["receiver.test", "other.test"]
    assert len(server.requests) == 1


def test_tls_refuses_a_certificate_no_trusted_ca_signed(certificates: Path) -> None:
    server, context = _tls_server(certificates)

    async def test(client: Client) -> None:
        url = await server.serve(context)
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await post(client, url, "receiver.test")

    run(test, server)
    assert server.requests == []
