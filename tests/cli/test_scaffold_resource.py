"""`apictl scaffold resource`: generated code that lints, migrates, passes its own tests and
serves; bad requests and existing files leave the tree as it was.

Every scaffold runs the real `apictl` on a copy of this checkout (PYTHONPATH points at the copy,
so its apictl/ and service/ are the ones imported), never on the checkout itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
import redis

from apictl.scaffold.fields import singular_of
from fixtures.checkout import copy_checkout
from fixtures.events import wait_for
from fixtures.servers import Servers
from service.events.bus import STREAM

TOOLS = Path(sys.executable).parent
# One field of every type; comments then refer to a scaffolded resource (notes).
NOTES = [
    "notes",
    "title:str:120",
    "body:text",
    "pages:int",
    "done:bool",
    "due:datetime?",
    "tag:uuid",
    "post:ref:posts",
]
COMMENTS = ["comments", "note:ref:notes", "text:str:500", "edited:datetime?"]
NOTES_FILES = [
    "migrations/0007_create_notes.sql",
    "migrations/0007_create_notes.rollback.sql",
    "service/notes/__init__.py",
    "service/notes/schemas.py",
    "service/notes/queries.py",
    "service/notes/service.py",
    "service/notes/routes.py",
    "tests/notes/test_api.py",
]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of this checkout to scaffold into (no .venv, .apictl, .git or caches)."""
    return copy_checkout(tmp_path / "project")


@pytest.fixture
def run(project: Path) -> Run:
    """Run a program in the copy, importing the copy's packages: run("apictl", "migrate")."""

    def run_in_copy(
        program: str,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        tools: Path = TOOLS,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tools / program), *args],
            cwd=project,
            env={**(env or os.environ), "PYTHONPATH": str(project)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run_in_copy


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its content (bytecode caches aside)."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def scaffold(run: Run, *args: str) -> None:
    result = run("apictl", "scaffold", "resource", *args)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_generated_code_is_clean_and_its_tests_pass(
    run: Run, project: Path, servers: Servers, tmp_path: Path
) -> None:
    scaffold(run, *NOTES)
    scaffold(run, *COMMENTS)
    generated = [
        "service/notes",
        "service/comments",
        "tests/notes/test_api.py",
        "tests/comments/test_api.py",
    ]
    for command in (["ruff", "check"], ["ruff", "format", "--check"]):
        result = run(*command, *generated)
        assert result.returncode == 0, result.stdout + result.stderr
    typed = run("mypy", "--explicit-package-bases", *generated)
    assert typed.returncode == 0, typed.stdout
    env = {
        **os.environ,
        "APICTL_TEST_DATABASE_URL": servers.postgres_url,
        "APICTL_TEST_REDIS_URL": servers.redis_url,
    }
    tests = run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--basetemp={tmp_path / 'generated'}",  # not the shared /tmp/pytest-of-* rotation
        "tests/notes/test_api.py",
        "tests/comments/test_api.py",
        env=env,
    )
    assert tests.returncode == 0, tests.stdout[-5000:]
    assert " passed" in tests.stdout
    assert "skipped" not in tests.stdout


@pytest.mark.slow
def test_migrated_and_served_without_hand_edits(
    run: Run,
    project: Path,
    server_env: dict[str, str],
    database_url: str,
    redis_url: str,
    start_server: Callable[..., Any],
    alice: Any,
) -> None:
    scaffold(run, *NOTES)
    migrated = run("apictl", "migrate", env=server_env)
    assert migrated.returncode == 0, migrated.stderr
    assert "0007_create_notes" in migrated.stdout
    server = start_server({**server_env, "PYTHONPATH": str(project)})
    with httpx2.Client(base_url=server.url, headers=alice.headers, timeout=10) as api:
        post = api.post("/api/v1/posts", json={"title": "referenced"}).json()
        note = {
            "title": "t",
            "body": "b",
            "pages": 3,
            "done": False,
            "tag": "00000000-0000-4000-8000-000000000001",
            "post_id": post["id"],
        }
        created = api.post("/api/v1/notes", json=note)
        assert created.status_code == 201, created.text
        assert created.json()["due"] is None
        assert api.get(f"/api/v1/notes/{created.json()['id']}").json() == created.json()
        assert [n["id"] for n in api.get("/api/v1/notes").json()["items"]] == [created.json()["id"]]
        too_big = api.post("/api/v1/notes", json={**note, "pages": 2**64})
        assert too_big.status_code == 422
        assert too_big.json()["details"][0]["field"] == "body.pages"
        dangling = api.post("/api/v1/notes", json={**note, "post_id": str(created.json()["id"])})
        assert dangling.status_code == 422
        assert dangling.json()["details"][0]["field"] == "body.post_id"
        assert "/api/v1/notes/{note_id}" in api.get("/openapi.json").json()["paths"]
    with redis.Redis.from_url(redis_url) as events:

        def relayed() -> bool:
            return b"note.created" in [e[b"type"] for _, e in events.xrange(STREAM)]

        wait_for(relayed, 5, "note.created on the Stream (the relay's promise)")
    code, _ = server.stop()
    assert code == 0
    assert run("apictl", "migrate", "down", env=server_env).returncode == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('notes')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["Notes", "x:int"], "not snake_case"),
        (["order", "x:int"], "reserved word in SQL"),
        (["class", "x:int"], "Python keyword"),
        (["posts", "title:str"], "'posts' is taken"),
        (["api_tokens", "x:int"], "table 'api_tokens' already exists"),
        (["notes", "x:float"], "unknown type 'float'"),
        (["notes", "x:int", "x:bool"], "given twice"),
        (["notes", "owner:ref:users"], "'owner_id' is reserved"),
        (["notes", "x:ref:api_tokens"], "only users, posts and scaffolded resources"),
        (["notes", "x:str:0"], "the length must be"),
        (["notes", "json:str"], "shadow a pydantic BaseModel attribute"),
        (["pages", "x:int"], "the singular 'page' makes Page in routes.py"),
        (["texts", "x:text"], "the singular 'text' makes Text in schemas.py"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(
    run: Run, project: Path, args: list[str], complaint: str
) -> None:
    before = snapshot(project)
    result = run("apictl", "scaffold", "resource", *args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the error and its hint
    assert snapshot(project) == before


def test_existing_files_are_refused_unless_forced(run: Run, project: Path) -> None:
    scaffold(run, *NOTES)
    generated = snapshot(project)
    service = project / "service/notes/service.py"
    service.write_text("# edited by hand\n")
    refused = run("apictl", "scaffold", "resource", *NOTES)
    assert refused.returncode == 1
    assert all(name in refused.stderr for name in NOTES_FILES)
    assert "--force" in refused.stderr
    assert service.read_text() == "# edited by hand\n"
    forced = run("apictl", "scaffold", "resource", *NOTES, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.count("overwrote") == len(NOTES_FILES)
    assert snapshot(project) == generated  # the same migration number, the same text


def test_every_file_written_is_listed_with_the_next_step(run: Run, project: Path) -> None:
    before = set(snapshot(project))
    result = run("apictl", "scaffold", "resource", *NOTES)
    assert result.returncode == 0, result.stderr
    assert set(snapshot(project)) - before == set(NOTES_FILES)
    assert [line.split()[-1] for line in result.stdout.splitlines()[:-1]] == NOTES_FILES
    assert "apictl migrate" in result.stdout
    assert "pytest tests/notes/" in result.stdout


def test_an_installed_apictl_refuses(run: Run, project: Path) -> None:
    (project / "service/_data").mkdir()  # how an installed wheel is laid out
    before = snapshot(project)
    result = run("apictl", "scaffold", "resource", *NOTES)
    assert result.returncode == 1
    assert "source checkout" in result.stderr
    assert snapshot(project) == before


def test_without_ruff_it_says_so_and_writes_nothing(
    run: Run, project: Path, tmp_path: Path
) -> None:
    """An environment with no ruff beside its python nor on PATH: one error line, a hint."""
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", bare], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(bare), "platbase": str(bare)}))
    # this environment's packages without its bin/ (where ruff is)
    (site / "packages.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n"
    )
    path = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "ruff").exists()]
    env = {**os.environ, "PATH": os.pathsep.join(path)}
    before = snapshot(project)
    result = run(
        "python", "-m", "apictl", "scaffold", "resource", *NOTES, env=env, tools=bare / "bin"
    )
    assert result.returncode == 1
    error, hint = result.stderr.strip().splitlines()
    assert "ruff" in error
    assert "development install" in hint
    assert snapshot(project) == before


def test_awkward_names_still_lint_clean(run: Run, project: Path) -> None:
    """Import order, wrapping and line lengths hold for short, digit and longest names."""
    longest = "x" * 24
    scaffold(run, "a1s", "x:int")
    scaffold(run, "d_items", "x:bool?")
    scaffold(run, "zs", "--singular", "z", "y:uuid?")
    scaffold(run, f"{longest[:23]}s", f"{longest}:str:50000", f"b{longest[1:]}:ref:a1s")
    for command in (["ruff", "check"], ["ruff", "format", "--check"]):
        result = run(*command, "service", "tests")
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("plural", "singular"),
    [
        ("notes", "note"),
        ("book_reviews", "book_review"),
        ("categories", "category"),
        ("boxes", "box"),
        ("addresses", "address"),
        ("matches", "match"),
        ("staff", "staff"),
    ],
)
def test_the_singular_is_derived_by_simple_rules(plural: str, singular: str) -> None:
    assert singular_of(plural) == singular
