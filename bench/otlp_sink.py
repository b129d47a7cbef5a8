"""An HTTP endpoint that takes every POST and keeps nothing: the OTLP collector of the
benchmark's traced targets (`python -m bench.run --tracing`), so that they measure tracing with a
collector that answers, not the dropping of spans; and the webhook endpoint of `--webhook`."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # connections kept alive, as a real collector or receiver does

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_sink(core: int | None = None) -> str:
    """Serve a sink on a free port of 127.0.0.1 for the rest of the process (its threads on
    `core`, if given); its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True

    def serve() -> None:
        if core is not None:  # this thread, and the threads it starts for requests
            os.sched_setaffinity(0, {core})
        server.serve_forever()

    threading.Thread(target=serve, name="sink", daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"
