"""Processes holding idle event streams on raw asyncio sockets, and `Clients`, which drives them
for bench/streams.py.

Each is `python -m bench.stream_clients [--core N]`, driven over its stdin and stdout, one JSON
line a command and one a reply: `open` (subscribe `count` streams), `burst` (GET a path on
`count` connections at once), `collect` (when each stream received the `post.created` of a
post), `close` (end them all). An asyncio protocol a socket costs the client a few KB a stream
(5,000 in 34 MB); httpx would cost it more than the server spends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urlsplit

import uvloop

POST_CREATED = b"event: post.created"
POST_ID = b'"id":"'  # the first key of a post's JSON
UUID_LENGTH = 36
ROOT = Path(__file__).resolve().parents[1]  # where `python -m bench.stream_clients` is found
PER_CLIENT = 5_000  # streams per client process: well inside its 20,000 open files
OPEN_WITHIN = 30.0  # seconds a stream may take to subscribe
DELIVERY_WITHIN = 15.0  # seconds an event may take to reach every stream
CLOSE_WITHIN = 30.0  # seconds for every stream to be closed


class OpenFailed(Exception):
    """The server answered the stream's request with something else than 200."""


class Stream(asyncio.Protocol):
    """One `GET /api/v1/events`: subscribed once `retry:` arrives, after which it tells its
    client when each `post.created` frame arrives."""

    def __init__(self, request: bytes, client: Client) -> None:
        loop = asyncio.get_running_loop()
        self.request, self.client = request, client
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.pending = b""  # a frame not complete yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP connection's
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        # The fan-out's measure: as lean as can be, 10,000 of them share one core. Frames end
        # with a blank line; the chunked encoding's size lines between them are skipped over.
        now = time.monotonic()
        if self.pending:
            data = self.pending + data
        end = data.rfind(b"\n\n")
        if not self.subscribed.done():
            self._answered(data, end)
        if end < 0:  # no frame complete yet
            self.pending = data
            return
        self.pending = data[end + 2 :]
        at = data.find(POST_CREATED, 0, end)
        while at >= 0 and (at := data.find(POST_ID, at, end)) >= 0:
            at += len(POST_ID)
            self.client.arrived(data[at : at + UUID_LENGTH], now)
            at = data.find(POST_CREATED, at, end)

    def _answered(self, data: bytes, end: int) -> None:
        if not data.startswith(b"HTTP/1.1 200 "):
            if b"\r\n" in data:  # the status line is complete, and not a 200
                self.subscribed.set_exception(OpenFailed(data.partition(b"\r\n")[0].decode()))
                assert self.transport is not None
                self.transport.close()
            return
        if end >= 0 and data.find(b"retry:", 0, end) >= 0:
            self.subscribed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("closed before subscribing"))
        self.ended.set_result(None)


class Client:
    """The streams of one process and the arrivals of their events."""

    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.arrivals: dict[bytes, list[float]] = {}  # post id -> when each stream got it
        self.wanted = sys.maxsize  # arrivals of one post that complete a `collect`
        self.complete = asyncio.Event()

    def arrived(self, post: bytes, at: float) -> None:
        times = self.arrivals.setdefault(post, [])
        times.append(at)
        if len(times) >= self.wanted:
            self.complete.set()

    async def open(
        self,
        host: str,
        port: int,
        tokens: list[str],
        count: int,
        in_flight: int,
        within: float,
    ) -> dict[str, Any]:
        """Subscribe `count` streams, the tokens in turn, `in_flight` at a time, each within
        `within` seconds."""
        requests = [
            f"GET /api/v1/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {t}"
            "\r\nAccept: text/event-stream\r\n\r\n".encode()
            for t in tokens
        ]
        numbers = iter(range(count))
        errors: Counter[str] = Counter()
        loop = asyncio.get_running_loop()

        async def opener() -> None:
            for n in numbers:
                factory = partial(Stream, requests[n % len(requests)], self)
                stream: Stream | None = None
                try:
                    async with asyncio.timeout(within):
                        _, stream = await loop.create_connection(factory, host, port)
                        await stream.subscribed
                except (OSError, TimeoutError, OpenFailed) as exc:
                    errors[f"{type(exc).__name__}: {exc}"] += 1
                    if stream is not None and stream.transport is not None:
                        stream.transport.close()
                    continue
                self.streams.append(stream)

        started = time.monotonic()
        await asyncio.gather(*(opener() for _ in range(max(1, min(in_flight, count)))))
        return {
            "opened": len(self.streams),
            "seconds": time.monotonic() - started,
            "errors": dict(errors.most_common(5)),
        }

    async def burst(self, host: str, port: int, path: str, count: int) -> dict[str, Any]:
        """`count` GETs of `path` at once, a connection each; their statuses."""

        async def one() -> str:
            head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(head.encode())
                answer = await reader.read()
                writer.close()
            except OSError as exc:
                return type(exc).__name__
            return answer[9:12].decode()  # after "HTTP/1.1 "

        return {"statuses": Counter(await asyncio.gather(*(one() for _ in range(count))))}

    async def collect(self, post: str, within: float) -> dict[str, Any]:
        """When each open stream received the post's `post.created` (monotonic clock), waiting
        at most `within` seconds for all of them."""
        live = sum(not s.ended.done() for s in self.streams)
        key = post.encode()
        self.wanted = live
        with suppress(TimeoutError):
            async with asyncio.timeout(within):
                while len(self.arrivals.get(key, ())) < live:
                    self.complete.clear()
                    await self.complete.wait()
        self.wanted = sys.maxsize
        return {"times": self.arrivals.get(key, [])}

    async def close(self, within: float) -> dict[str, Any]:
        """Close every stream; how many the server had ended before."""
        ended = sum(s.ended.done() for s in self.streams)
        for stream in self.streams:
            if stream.transport is not None:
                stream.transport.close()
        if self.streams:
            await asyncio.wait([s.ended for s in self.streams], timeout=within)
        self.streams, self.arrivals = [], {}
        return {"ended_by_server": ended}


async def serve(client: Client) -> None:
    """Answer the commands on stdin, one JSON line each, until it closes."""
    loop = asyncio.get_running_loop()
    commands: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        "open": client.open,
        "burst": client.burst,
        "collect": client.collect,
        "close": client.close,
    }
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command: dict[str, Any] = json.loads(line)
        reply = await commands[command.pop("do")](**command)
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


class Clients:
    """Enough client processes for `streams` streams, driven over their stdin and stdout."""

    def __init__(self, streams: int, core: int | None) -> None:
        command = [sys.executable, "-m", "bench.stream_clients"]
        command += ["--core", str(core)] if core is not None else []
        self.processes = [
            subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(max(1, math.ceil(streams / PER_CLIENT)))
        ]

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            _pipe(process.stdin).close()  # no more commands: it exits, its sockets close
        for process in self.processes:
            try:
                process.wait(timeout=CLOSE_WITHIN)
            except subprocess.TimeoutExpired:
                process.kill()

    def ask(self, command: dict[str, Any], shares: list[int] | None = None) -> list[dict[str, Any]]:
        """Send `command` to every process (with its share as `count`); their replies."""
        for n, process in enumerate(self.processes):
            sent = command if shares is None else {**command, "count": shares[n]}
            _pipe(process.stdin).write(json.dumps(sent).encode() + b"\n")
            _pipe(process.stdin).flush()
        replies = []
        for process in self.processes:
            line = _pipe(process.stdout).readline()
            if not line:
                raise RuntimeError(f"a stream client exited with {process.wait()}")
            replies.append(json.loads(line))
        return replies

    def open(
        self, url: str, tokens: list[str], count: int, in_flight: int
    ) -> tuple[int, float, dict[str, int]]:
        """Open `count` streams, `in_flight` at a time; (opened, seconds, errors by kind)."""
        k = len(self.processes)
        command = {"do": "open", **_address(url), "tokens": tokens, "within": OPEN_WITHIN}
        command["in_flight"] = max(1, in_flight // k)
        replies = self.ask(command, [count // k + (n < count % k) for n in range(k)])
        seconds = max(r["seconds"] for r in replies)
        return sum(r["opened"] for r in replies), seconds, _added(r["errors"] for r in replies)

    def burst(self, url: str, path: str, count: int) -> dict[str, int]:
        """GET `path` on `count` connections at once; how many got each status."""
        k = len(self.processes)
        replies = self.ask({"do": "burst", **_address(url), "path": path}, [count // k] * k)
        return _added(r["statuses"] for r in replies)

    def collect(self, post: str) -> list[float]:
        """When each stream received the post's `post.created` (monotonic clock), waiting at
        most DELIVERY_WITHIN seconds for all of them."""
        replies = self.ask({"do": "collect", "post": post, "within": DELIVERY_WITHIN})
        return [t for reply in replies for t in reply["times"]]

    def close(self) -> int:
        """Close every stream; how many the server had ended before."""
        replies = self.ask({"do": "close", "within": CLOSE_WITHIN})
        return sum(r["ended_by_server"] for r in replies)


def _address(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {"host": parts.hostname, "port": parts.port}


def _added(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for each in counts:
        total.update(each)
    return dict(total)


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    assert stream is not None, "started with pipes"
    return stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--core", type=int, help="the CPU to run on")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:  # one socket a stream
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve(Client()))


if __name__ == "__main__":
    main()
