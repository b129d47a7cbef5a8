"""The image of `apictl scaffold deploy`, built and run for real: podman builds the rendered
Dockerfile on a copy of this checkout, then the image migrates a database, serves it, reports
healthy and stops cleanly, as a non-root user on a read-only root.

No registry is reachable here, so the base (PYTHON_IMAGE) is Debian's Python, made with
mmdebstrap and imported into podman. The container uses the host's network: it reaches the
test's PostgreSQL and Redis on 127.0.0.1, through a relay of this test's when they listen on
unix sockets (the embedded servers, whose directories its user may not enter). Every image and
container is named after this run and removed at its end; nothing is cached across runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx2
import pytest

from fixtures.checkout import SOURCE, copy_checkout
from fixtures.servers import APICTL, free_port

pytestmark = [pytest.mark.slow, pytest.mark.standalone, pytest.mark.timeout(600)]

TOOLS = ("podman", "runc", "mmdebstrap")
# Debian 12's Python 3.11 with venv and pip: what the Dockerfile asks of its PYTHON_IMAGE
BASE_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
# crun, podman's default runtime, cannot set rlimits or use hybrid cgroups on these machines
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
"""
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # pip's way out through a TLS proxy
SHUTDOWN_DELAY = 1  # seconds of drain after SIGTERM (production's 5 would only slow the test)
# The image's read-only root with /tmp alone writable, as the Kubernetes manifests mount it
# (podman's --read-only would add tmpfs on /run and /var/tmp by itself).
READ_ONLY = ("--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp")


def require_tools() -> None:
    """Skip on a developer's machine without podman, runc or mmdebstrap; in CI (CI=true), where
    .ci/run installs them, fail instead."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (`apt-get install podman runc mmdebstrap`)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class Podman:
    """podman with this test's containers.conf; every name it makes starts with `prefix`."""

    conf: Path
    prefix: str

    def __call__(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args],
            env={**os.environ, "CONTAINERS_CONF": str(self.conf)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"podman {args[0]}: {result.stdout}{result.stderr}"
        return result


@dataclass(frozen=True)
class Image:
    """The built image: its name, the port it serves on, and the podman that built it."""

    name: str
    port: int
    podman: Podman


def make_base(podman: Podman, work: Path) -> str:
    """A Debian 12 root file system with Python, imported into podman; return its name."""
    rootfs = work / "rootfs.tar"
    command = ["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm"]
    made = subprocess.run(
        [*command, str(rootfs)], capture_output=True, text=True, timeout=300, check=False
    )
    assert made.returncode == 0, f"mmdebstrap failed:\n{made.stderr[-3000:]}"
    name = f"localhost/{podman.prefix}-base"
    podman("import", str(rootfs), name, timeout=120)
    rootfs.unlink()  # 250 MB, in podman's storage now
    return name


def render_project(work: Path, port: int) -> Path:
    """A copy of this checkout with the Dockerfile `apictl scaffold deploy` writes into it."""
    project = copy_checkout(work / "project")
    for name in ("README.md", "requirements"):  # the build's too: the readme and the lock
        if (SOURCE / name).is_dir():
            shutil.copytree(SOURCE / name, project / name)
        else:
            shutil.copy2(SOURCE / name, project / name)
    outside = ("DATABASE_URL", "REDIS_URL", "APICTL_")  # the developer's shell renders nothing
    env = {name: value for name, value in os.environ.items() if not name.startswith(outside)}
    # the port the image serves on, its EXPOSE and HEALTHCHECK: a free one on the host network
    env["APICTL_PORT"] = str(port)
    result = subprocess.run(
        [APICTL, "scaffold", "deploy", "--out", str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The project's image, built with podman on a base made here; removed afterwards."""
    require_tools()
    work = tmp_path_factory.mktemp("image")
    (work / "containers.conf").write_text(CONTAINERS_CONF)
    podman = Podman(work / "containers.conf", f"apictl-test-{secrets.token_hex(4)}")
    name, port = f"localhost/{podman.prefix}", free_port()
    project = render_project(work, port)
    base = make_base(podman, work)
    try:
        podman(
            "build",
            "--pull=never",
            "--network=host",
            "--format=docker",  # HEALTHCHECK is a Docker image field: OCI images drop it
            "--layers=false",  # no intermediate image of each step: nothing left to clean
            "--force-rm",
            *(["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.is_file() else []),
            "--build-arg",
            f"PYTHON_IMAGE={base}",  # both stages: the Dockerfile names no other image
            "--tag",
            name,
            str(project),
            timeout=400,
        )
        yield Image(name, port, podman)
    finally:
        for made in (name, base):  # one by one: a failed build leaves no `name`
            podman("rmi", "--force", made, check=False)


class _UnixRelay(socketserver.ThreadingTCPServer):
    """127.0.0.1:PORT relayed to a unix socket, one thread per connection (each joined by
    server_close: they end within a select() timeout of `stopping`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Relayed)


class _Relayed(socketserver.BaseRequestHandler):
    server: _UnixRelay

    def handle(self) -> None:
        with socket.socket(socket.AF_UNIX) as upstream, contextlib.suppress(OSError):
            upstream.connect(self.server.path)
            peer = {self.request: upstream, upstream: self.request}
            while not self.server.stopping.is_set():
                readable, _, _ = select.select(list(peer), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:  # one side hung up: so does the other, as the relay ends
                        return
                    peer[sock].sendall(data)


@contextlib.contextmanager
def unix_relay(path: str) -> Iterator[int]:
    """Relay 127.0.0.1:PORT to the unix socket `path` while inside; yield PORT."""
    relay = _UnixRelay(path)
    thread = threading.Thread(target=relay.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield relay.server_address[1]
    finally:
        relay.stopping.set()
        relay.shutdown()
        relay.server_close()
        thread.join()


@contextlib.contextmanager
def on_host_network(database_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL as the container reaches them on the host's network: TCP
    ones as they are, unix-socket ones through a relay."""
    with contextlib.ExitStack() as stack:
        database, redis = urlsplit(database_url), urlsplit(redis_url)
        query = dict(parse_qsl(database.query))
        if not database.hostname and "host" in query:  # postgresql://user@/db?host=/dir
            socket_path = f"{query['host']}/.s.PGSQL.{query.get('port', 5432)}"
            port = stack.enter_context(unix_relay(socket_path))
            user = database.username or "postgres"
            netloc = f"{user}@127.0.0.1:{port}"
            database_url = urlunsplit(("postgresql", netloc, database.path, "", ""))
        if redis.scheme == "unix":  # unix:///dir/redis.sock
            port = stack.enter_context(unix_relay(redis.path))
            db = dict(parse_qsl(redis.query)).get("db", "0")
            redis_url = f"redis://127.0.0.1:{port}/{db}"
        yield {"DATABASE_URL": database_url, "REDIS_URL": redis_url}


def environment(variables: dict[str, str]) -> list[str]:
    return [option for name, value in variables.items() for option in ("--env", f"{name}={value}")]


def wait_for_health(image: Image, container: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"http://127.0.0.1:{image.port}/health", timeout=1).status_code == 200:
                return
        state = image.podman("inspect", "--format", "{{.State.Status}}", container).stdout
        if state.strip() != "running":
            logs = image.podman("logs", container, check=False)
            pytest.fail(f"the container is {state.strip()}:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.2)
    pytest.fail(f"/health did not answer within {timeout} s")


def test_image_migrates_serves_reports_healthy_and_stops_within_its_drain(
    image: Image, empty_database_url: str, redis_url: str
) -> None:
    container = f"{image.podman.prefix}-serve"
    with on_host_network(empty_database_url, redis_url) as servers:
        migrated = image.podman(
            "run", "--rm", "--network=host", *READ_ONLY, "--no-healthcheck",
            *environment(servers), image.name, "apictl", "migrate",
        )  # fmt: skip
        assert "applied" in migrated.stdout, migrated.stdout + migrated.stderr

        variables = {**servers, "APICTL_SHUTDOWN_DELAY": str(SHUTDOWN_DELAY)}
        image.podman(
            "run", "--detach", "--name", container, "--network=host", *READ_ONLY,
            *environment(variables), image.name,
        )  # fmt: skip
        try:
            wait_for_health(image, container)
            user = image.podman("top", container, "huser").stdout  # of PID 1, apictl serve
            assert user.split() == ["HUSER", "10001"]  # the image's own USER, not root
            ready = httpx2.get(f"http://127.0.0.1:{image.port}/ready", timeout=5)
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["database"]["status"] == "ok"

            image.podman("healthcheck", "run", container)  # exits 0 when healthy
            health = image.podman("inspect", "--format", "{{.State.Health.Status}}", container)
            assert health.stdout.strip() == "healthy"

            started = time.monotonic()
            image.podman("stop", "--time", "30", container)  # SIGTERM, SIGKILL after 30 s
            stopped_in = time.monotonic() - started
            code = image.podman("inspect", "--format", "{{.State.ExitCode}}", container)
            assert code.stdout.strip() == "0"
            assert stopped_in < SHUTDOWN_DELAY + 4
        finally:
            image.podman("rm", "--force", container, check=False)


def test_image_has_no_embedded_servers_and_says_so_in_one_line(image: Image) -> None:
    result = image.podman(
        "run", "--rm", "--network=none", *READ_ONLY, "--no-healthcheck",
        "--env", "APICTL_ENV=development",
        image.name, "apictl", "serve",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "error: embedded servers are not installed (they are for development)",
        "hint: set DATABASE_URL and REDIS_URL, or pip install 'apictl[embedded]'",
    ]
