"""What a client reads off the socket: each response whole in one piece, in order, and the
last one before the server hangs up (service.http.frameworks.uvicorn.JoinedWrites)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from fixtures.servers import RunningServer

REQUEST = b"GET /health HTTP/1.1\r\nHost: apictl\r\n\r\n"


@pytest.fixture
def server(start_server: Callable[..., RunningServer], server_env: dict[str, str]) -> RunningServer:
    return start_server(server_env)


def _connect(server: RunningServer) -> socket.socket:
    address = urlsplit(server.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _complete(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return len(body) == length


def test_a_response_arrives_whole_in_one_read(server: RunningServer) -> None:
    with _connect(server) as sock:
        for _ in range(50):
            sock.sendall(REQUEST)
            first = sock.recv(65536)  # what one segment brought: the head and the body
            assert first.startswith(b"HTTP/1.1 200 OK\r\n"), first
            assert _complete(first), first


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    requests = b"".join(
        f"GET /health HTTP/1.1\r\nHost: apictl\r\nX-Request-ID: pipelined-{n}\r\n\r\n".encode()
        for n in range(5)
    )
    with _connect(server) as sock:
        sock.sendall(requests)
        data = b""
        while data.count(b'{"status":"ok"}') < 5:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    ids = [line for line in data.split(b"\r\n") if line.startswith(b"x-request-id:")]
    assert ids == [f"x-request-id: pipelined-{n}".encode() for n in range(5)]


def test_the_last_response_is_sent_before_the_connection_closes(server: RunningServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: apictl\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # until the server hangs up
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert _complete(data), data
