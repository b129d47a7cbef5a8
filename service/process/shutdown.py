"""Learn of SIGTERM/SIGINT as it arrives, before uvicorn starts draining connections.

uvicorn runs the ASGI lifespan shutdown only after every connection has finished, so an open
event stream would hold the process until the drain timeout. Chaining onto uvicorn's signal
handler lets the app end its streams at once; uvicorn's own handling then proceeds unchanged.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType


def on_termination(callback: Callable[[], None]) -> None:
    """Run `callback` on the running loop when the process is asked to stop."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals only reach the main thread (in-process test clients run elsewhere)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: object = previous) -> None:
            loop.call_soon_threadsafe(callback)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)
