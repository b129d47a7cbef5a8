"""docs/tutorial.md runs as written: every command in order, on a copy of this checkout and the
embedded servers, printing what the page shows (the page's format: fixtures/tutorial_page.py).

Commands run in bash, one after another, as in one terminal: each keeps the working directory
and the variables of the ones before (TOKEN=$(...)). Output is stdout and stderr together, as
the reader sees it; every command must exit 0. The "terminal 1" blocks (`apictl serve`) run in
the background: a new one stops the one before (the reader's Ctrl-C) with SIGTERM, by its PID,
and the last is stopped at the end; each must exit 0 and have printed what its block shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import psutil
import pytest

from fixtures.checkout import SOURCE, copy_checkout
from fixtures.servers import RunningServer, free_port
from fixtures.tutorial_page import Command, Edit, PageError, Step, apply_diff, matches, steps

PAGE = SOURCE / "docs" / "tutorial.md"
TOOLS = Path(sys.executable).parent

# ---- Where this test departs from the page, and why: nowhere else ---------------------------
# Commands of the page the test does not run, each with what stands in for it.
NOT_RUN = {
    "git clone <repository-url> apictl": "the fixture copies this checkout to ./apictl",
    "python3 -m venv .venv": "the venv running this test stands in (its bin/ first on PATH)",
    "source .venv/bin/activate": "the same: that venv's bin/ is first on PATH",
    "pip install -r requirements/dev.txt": "installing again takes minutes and the network",
    "pip install --no-deps -e .": "the copy's packages are imported through PYTHONPATH",
}
DEFAULT_ADDRESS = "127.0.0.1:8080"  # replaced by a free port: 8080 may be taken on this machine


def environment(tmp_path: Path, project: Path, port: int) -> dict[str, str]:
    """The environment the page's commands run in: this one, with these changes only."""
    outside = ("DATABASE_URL", "REDIS_URL", "APICTL_")  # always the embedded servers
    env = {name: value for name, value in os.environ.items() if not name.startswith(outside)}
    return {
        **env,
        "PATH": f"{TOOLS}{os.pathsep}{env['PATH']}",  # stands in for `source .venv/bin/activate`
        "PYTHONPATH": str(project),  # stands in for `pip install -e .` of the copy
        "APICTL_PORT": str(port),  # 8080 may be taken
        "APICTL_DATA_DIR": str(tmp_path / ".apictl"),  # the embedded servers' data: in tmp_path
        # the generated tests' own temporary files and servers stay in tmp_path too
        "PYTEST_ADDOPTS": f"-p no:cacheprovider --basetemp={tmp_path / 'generated-tests'}",
    }


def page_steps(port: int) -> list[Step]:
    """The page's steps, at the free port instead of 8080."""
    return steps(PAGE.read_text().replace(DEFAULT_ADDRESS, f"127.0.0.1:{port}"))


# ---- Running the page --------------------------------------------------------------------------
# Each command runs in a new bash that restores, then saves, the directory and the variables of
# the commands before it (`set -a`: every variable assigned is exported, and so saved).
SHELL = """set -a -o pipefail
source "$0"
eval "$1"
set -- "$?" "$0"
{ export -p; printf 'cd %q\\n' "$PWD"; } > "$2"
exit "$1"
"""
BACKGROUND_SHELL = 'set -a; source "$0"; eval "exec $1"'  # exec: its PID is the command's


class Terminal:
    """The reader's terminals: commands in order in one, `apictl serve` in the other."""

    def __init__(self, tmp_path: Path, env: dict[str, str], port: int) -> None:
        self.state = tmp_path / "shell-state.sh"
        self.state.write_text(f"cd '{tmp_path}'\n")
        self.env, self.port, self.logs = env, port, tmp_path
        self.server: RunningServer | None = None
        self.server_command: Command | None = None

    def run(self, command: Command) -> None:
        """Run a command of terminal 2; assert it exits 0 printing what the page shows."""
        result = subprocess.run(
            ["bash", "-c", SHELL, str(self.state), command.text],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, failure(command, result.stdout, result.returncode)
        assert matches(command.expected, result.stdout), failure(command, result.stdout)

    def serve(self, command: Command) -> None:
        """Start terminal 1's command (stopping the one before) and wait until /health answers."""
        self.stop_server()
        log = self.logs / f"terminal-1-line-{command.line}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                ["bash", "-c", BACKGROUND_SHELL, str(self.state), command.text],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.server = RunningServer(process, f"http://127.0.0.1:{self.port}", log)
        self.server_command = command
        wait_until_healthy(self.server)

    def stop_server(self) -> None:
        """SIGTERM terminal 1's command; assert it exits 0 having printed what the page shows."""
        if self.server is None or self.server_command is None:
            return
        server, command, self.server = self.server, self.server_command, None
        code, output = server.stop(timeout=30)
        assert code == 0, failure(command, output, code)
        assert matches(command.expected, output), failure(command, output)

    def kill_server(self) -> None:
        """Whatever happened, leave no server running (a failed test's cleanup)."""
        if self.server is not None and self.server.process.poll() is None:
            self.server.process.send_signal(signal.SIGTERM)
            try:
                self.server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.process.kill()


def wait_until_healthy(server: RunningServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"`apictl serve` exited {server.process.returncode}:\n{server.log.read_text()}"
            )
        try:
            if httpx2.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"/health did not answer within {timeout} s:\n{server.log.read_text()}")


def failure(command: Command, output: str, code: int = 0) -> str:
    """What a reader needs to fix the page or the code: where, what ran, what came out."""
    exited = f" exited {code}" if code else " printed something else than the page"
    return (
        f"docs/tutorial.md line {command.line}: `{command.text}`{exited}\n"
        f"--- the page shows:\n{command.expected}\n--- it printed:\n{output}"
    )


def processes_under(path: Path) -> list[psutil.Process]:
    """Running processes whose command line or working directory is under `path`."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and (
                str(path) in " ".join(process.cmdline()) or str(path) in process.cwd()
            ):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture
def nothing_left_running(tmp_path: Path) -> Iterator[None]:
    """After the test, no process it started (apictl, the embedded servers) still runs."""
    yield
    deadline = time.monotonic() + 30  # PostgreSQL stops a few seconds after its last user
    while (left := processes_under(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for process in left:
        process.kill()
    assert left == [], f"still running after the tutorial: {[p.cmdline() for p in left]}"


@pytest.mark.slow
@pytest.mark.standalone
@pytest.mark.usefixtures("nothing_left_running")
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    project = copy_checkout(tmp_path / "apictl")  # where `git clone ... apictl` puts it
    port = free_port()
    terminal = Terminal(tmp_path, environment(tmp_path, project, port), port)
    try:
        for step in page_steps(port):
            if isinstance(step, Command) and step.text in NOT_RUN:
                assert step.expected == "", f"line {step.line}: the output of a command not run"
            elif isinstance(step, Command) and step.background:
                terminal.serve(step)
            elif isinstance(step, Command):
                terminal.run(step)
            elif isinstance(step, Edit):
                apply_diff(step.diff, project)
            else:
                (project / step.path).write_text(step.text)
        terminal.stop_server()
    finally:
        terminal.kill_server()


def test_the_runner_reads_every_block_of_the_tutorial() -> None:
    """Every block is run, written or applied, and every command kept out of the run is there."""
    try:
        found = steps(PAGE.read_text())
    except PageError as exc:
        pytest.fail(f"docs/tutorial.md: {exc}")
    commands = [step.text for step in found if isinstance(step, Command)]
    assert set(NOT_RUN) <= set(commands), "NOT_RUN names a command the page no longer has"
    assert any(isinstance(step, Command) and step.background for step in found)
    outside = [line for line in PAGE.read_text().splitlines() if line.lstrip().startswith("$ ")]
    assert len(outside) == len(commands), "a `$ ` line outside a console block is never run"
