"""An OTLP/HTTP endpoint that takes every export and keeps nothing: the collector of the
benchmark's traced targets (`python -m bench.run --tracing`), so that they measure tracing with a
collector that answers, not the dropping of spans."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_sink() -> str:
    """Serve a sink on a free port of 127.0.0.1 for the rest of the process; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="otlp-sink", daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"
