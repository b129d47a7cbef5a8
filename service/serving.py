"""The serving process: uvicorn with apictl's protocol, nothing of the CLI loaded.

`apictl serve` prepares everything (settings, servers, migrations, the hand-over) and then
either runs `run()` itself (while it holds embedded servers, which it must stop on exit) or,
with servers of your own, replaces itself with `python -m service.serving`: the same
process id (signals, supervisors and probes see no change), without typer, rich and the CLI
in its memory.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from service.config import load_settings
from service.process.memory import ALLOCATOR

WORKERS_ENV = "APICTL_WORKERS"  # set by `apictl serve --workers N` for this module


@contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Several workers count into shared files, so /metrics adds them up whichever one
    answers; the folder is removed when serving ends (unless PROMETHEUS_MULTIPROC_DIR is set)."""
    if workers == 1 or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="apictl-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # read by prometheus-client
        yield


def run(workers: int = 1, reload: bool = False) -> None:
    """uvicorn until a signal has drained it; each worker builds its app with app_from_env."""
    import uvicorn

    from service.http.frameworks.uvicorn import LimitedHttpToolsProtocol

    settings = load_settings()
    # uvicorn re-raises SIGTERM/SIGINT once it has drained: ignored, a graceful stop exits 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    with _metrics_dir(workers):
        uvicorn.run(
            "service.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            reload=reload,
            reload_dirs=["service"] if reload else None,
            loop="uvloop",
            http=LimitedHttpToolsProtocol,  # httptools, with deadlines and caps on headers
            log_config=None,
            access_log=False,
            proxy_headers=False,  # X-Forwarded-For is judged against APICTL_TRUSTED_PROXIES
            server_header=False,
            timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        )


def exec_serving(workers: int) -> None:
    """Become `python -m service.serving` (same pid, the hand-over in the environment)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[WORKERS_ENV] = str(workers)
    for name, value in ALLOCATOR.items():  # Python's objects from glibc: memory that goes back
        os.environ.setdefault(name, value)
    # the interpreter's -X options go along; -P: the working directory shadows no package
    options = [f"-X{k}" if v is True else f"-X{k}={v}" for k, v in sys._xoptions.items()]
    argv = [sys.executable, *options, "-P", "-m", "service.serving"]
    os.execv(sys.executable, argv)  # noqa: S606  (our own interpreter, no input in argv)


if __name__ == "__main__":
    from service.process.logs import configure_logging

    configure_logging(load_settings())
    run(workers=int(os.environ.get(WORKERS_ENV, "1")))
