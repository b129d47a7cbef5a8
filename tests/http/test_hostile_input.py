"""Hostile input against a real `apictl serve`: only 4xx answers, bounded reading and memory.

Raw sockets where an HTTP client would refuse to misbehave (endless bodies, slow or huge headers).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx2
import orjson
import psutil
import pytest

from fixtures.accounts import Account
from fixtures.servers import RunningServer
from service.http.frameworks.uvicorn import HEADER_TIMEOUT, MAX_HEADER_BYTES

MIB = 1024 * 1024


@pytest.fixture
def server(start_server: Callable[..., RunningServer], server_env: dict[str, str]) -> RunningServer:
    return start_server(server_env)


def _connect(server: RunningServer) -> socket.socket:
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=15)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _json_error(status: int, body: bytes, code: str) -> None:
    payload = orjson.loads(body)
    assert payload["code"] == code, (status, payload)
    assert payload["request_id"]


def test_declared_20_mb_body_is_413_before_it_is_sent(
    server: RunningServer, alice: Account
) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/posts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + alice.token.encode() + b"\r\n"
            b"content-length: %d\r\n\r\n" % (20 * MIB)
        )
        status, _, body = _read_response(sock)  # not one byte of the body sent
    assert status == 413
    _json_error(status, body, "payload_too_large")


@pytest.mark.parametrize("content_type", [b"application/json", b"text/plain"])
def test_endless_chunked_body_is_413_without_reading_it_all(
    server: RunningServer, alice: Account, content_type: bytes
) -> None:
    sent = 0
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/posts HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
            b"content-type: " + content_type + b"\r\n"
            b"authorization: Bearer " + alice.token.encode() + b"\r\n\r\n"
        )
        sock.settimeout(0.05)
        response = b""
        while sent < 200 * MIB and not response:  # a client that would never stop
            try:
                sock.sendall(chunk)
                sent += len(chunk)
                response = sock.recv(65536, socket.MSG_PEEK)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(15)
        status, _, body = _read_response(sock)
    assert status == 413
    _json_error(status, body, "payload_too_large")
    # the server stopped at the 1 MiB limit: what it had not read yet sat in socket buffers
    assert sent < 20 * MIB


def _post(server: RunningServer, alice: Account, content: bytes) -> httpx2.Response:
    return httpx2.post(
        f"{server.url}/api/v1/posts",
        content=content,
        headers={**alice.headers, "content-type": "application/json"},
        timeout=15,
    )


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"[" * 100_000, "body"),
        (b'{"title": "a", "body": ' + b"[" * 40 + b"]" * 40 + b"}", "body.body" + ".0" * 31),
        (b'{"title": "a\\u0000b", "body": "x"}', "body.title"),
        (b'{"title": "\xff\xfe", "body": "x"}', "body"),
        (b'{"title": "a", "body": "x", "n": 1' + b"0" * 25 + b"}", "body.n"),
        (b'{"title": "' + b"t" * 201 + b'", "body": "x"}', "body.title"),
    ],
    ids=["100k-deep", "41-deep", "nul", "invalid-utf8", "huge-int", "too-long"],
)
def test_malformed_json_is_422(
    server: RunningServer, alice: Account, content: bytes, field: str
) -> None:
    response = _post(server, alice, content)
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == field


@pytest.mark.parametrize("query", ["limit=1" + "0" * 40, "limit=-1", "cursor=%00", "author_id=x"])
def test_bad_query_values_are_422(server: RunningServer, alice: Account, query: str) -> None:
    response = httpx2.get(f"{server.url}/api/v1/posts?{query}", headers=alice.headers)
    assert response.status_code == 422


def test_10k_character_headers_are_judged_not_crashed(server: RunningServer) -> None:
    long = "x" * 10_000
    unauthorized = httpx2.get(
        f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer apx_{long}"}
    )
    assert unauthorized.status_code == 401
    replaced = httpx2.get(f"{server.url}/health", headers={"X-Request-ID": long, "X-Junk": long})
    assert replaced.status_code == 200
    assert len(replaced.headers["x-request-id"]) <= 128


def test_headers_past_the_cap_are_431(server: RunningServer) -> None:
    with _connect(server) as sock:
        head = b"GET /health HTTP/1.1\r\nhost: x\r\n"
        sock.sendall(head)
        sent = len(head)
        # up to the first byte past the cap and no further: the server answers and hangs up
        # there, and a write after that would meet a reset instead of the answer
        while sent <= MAX_HEADER_BYTES:
            line = b"x-filler-%d: %s\r\n" % (sent, b"y" * 1000)
            sock.sendall(line)
            sent += len(line)
        status, _, body = _read_response(sock)
    assert status == 431
    _json_error(status, body, "request_headers_too_large")


def test_slow_headers_time_out_while_others_are_served(server: RunningServer) -> None:
    slow: list[socket.socket] = []
    try:
        for _ in range(20):  # slowloris: a byte now and then, headers never finished
            sock = _connect(server)
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            slow.append(sock)
        started = time.monotonic()
        while time.monotonic() - started < HEADER_TIMEOUT / 2:
            for sock in slow:
                sock.sendall(b"x")
            assert httpx2.get(f"{server.url}/health", timeout=2).status_code == 200
            time.sleep(0.5)
        for sock in slow:
            sock.settimeout(HEADER_TIMEOUT + 2)
            status, _, body = _read_response(sock)
            assert status == 408
            _json_error(status, body, "request_timeout")
            assert sock.recv(1) == b""  # and the server hung up
        assert time.monotonic() - started < HEADER_TIMEOUT + 2
    finally:
        for sock in slow:
            sock.close()


def test_idle_connection_without_a_request_is_closed(server: RunningServer) -> None:
    with _connect(server) as sock:
        sock.settimeout(HEADER_TIMEOUT + 2)
        status, _, _ = _read_response(sock)
    assert status == 408


def test_garbage_is_a_json_400(server: RunningServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        status, headers, body = _read_response(sock)
    assert status == 400
    assert headers["content-type"] == "application/json"
    _json_error(status, body, "bad_request")


def _hostile_round(server: RunningServer, alice: Account) -> Iterator[int]:
    """One of each hostile request; yields the statuses."""
    yield _post(server, alice, b"[" * 500_000).status_code
    yield _post(server, alice, b'{"title": "' + b"\xff" * 500_000 + b'", "body": ""}').status_code
    yield _post(server, alice, b'{"title": "a", "body": "' + b"x" * 2 * MIB + b'"}').status_code
    yield _post(server, alice, b'{"title": 1' + b"0" * 500_000 + b', "body": ""}').status_code
    yield httpx2.get(f"{server.url}/health", headers={"X-Big": "z" * 60_000}).status_code


def test_memory_stays_bounded_and_nothing_is_5xx(server: RunningServer, alice: Account) -> None:
    process = psutil.Process(server.process.pid)
    for _ in range(3):  # warm up: first allocations are not growth
        list(_hostile_round(server, alice))
    before = process.memory_info().rss
    statuses = [status for _ in range(40) for status in _hostile_round(server, alice)]
    grown = process.memory_info().rss - before
    assert all(400 <= status < 500 or status == 200 for status in statuses), statuses
    assert grown < 50 * MIB, f"RSS grew {grown / MIB:.1f} MiB over {len(statuses)} requests"


def test_slow_body_is_408_after_the_body_timeout(
    start_server: Callable[..., RunningServer], server_env: dict[str, str], alice: Account
) -> None:
    server = start_server({**server_env, "APICTL_BODY_TIMEOUT": "2"})
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/posts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + alice.token.encode() + b"\r\n"
            b"content-length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        sock.settimeout(0.5)
        response = b""
        while not response and time.monotonic() - started < 10:
            sock.sendall(b" ")  # a byte now and then: never the whole body
            try:
                response = sock.recv(65536, socket.MSG_PEEK)
            except TimeoutError:
                continue
        sock.settimeout(5)
        status, _, body = _read_response(sock)
    assert status == 408
    _json_error(status, body, "request_timeout")
    assert 2 <= time.monotonic() - started < 4
