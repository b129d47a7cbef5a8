"""The documentation site: it builds strictly, works offline, and the README is its front page."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"
# an asset the browser fetches by itself: scripts, styles, images, fonts, frames
_ASSET = re.compile(r"<(?:script|link|img|source|iframe)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"")
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
# the contract document the project was built against lives outside it: never cite it
_OUTSIDE_CONTRACT = re.compile(r"\bSP" + r"EC\b|\.\./shared")
PROJECT_FILES = (
    "apictl",
    "service",
    "tests",
    "bench",
    "scripts",
    "docs",
    "templates",
    "migrations",
)


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = build(ROOT / "mkdocs.yml", out)
    assert built.returncode == 0, built.stderr
    return out


def test_every_page_of_the_navigation_is_built(site: Path) -> None:
    for page in ("tutorial", "reference/cli", "reference/configuration", "api/events"):
        assert (site / page / "index.html").is_file(), page
    assert (site / "assets" / "benchmark.png").stat().st_size > 10_000  # the benchmark chart


def test_the_site_fetches_nothing_from_another_host(site: Path) -> None:
    """Offline: no web fonts, CDN scripts or analytics; every asset is in the built site."""
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        html = page.read_text()
        for asset in _ASSET.findall(html):
            assert not re.match(r"(https?:)?//", asset), f"{page}: {asset}"
            where = asset.split("#")[0].split("?")[0]
            local = site / where.lstrip("/") if where.startswith("/") else page.parent / where
            assert local.exists(), f"{page}: {asset} is not in the site"
    for sheet in site.rglob("*.css"):
        for url in _CSS_URL.findall(sheet.read_text()):
            assert not re.match(r"(https?:)?//", url), f"{sheet}: {url}"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda docs: (docs / "orphan.md").write_text("# Orphan\n"), "orphan.md"),
        (
            lambda docs: (docs / "index.md").write_text("[gone](no-such-page.md)\n"),
            "no-such-page.md",
        ),
        (
            lambda docs: (docs / "index.md").write_text("[gone](tutorial.md#no-such-anchor)\n"),
            "no-such-anchor",
        ),
    ],
    ids=["page-not-in-navigation", "broken-link", "broken-anchor"],
)
def test_strict_build_fails_on_an_orphan_page_or_a_broken_link(
    tmp_path: Path, change: Callable[[Path], object], complaint: str
) -> None:
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    shutil.copytree(ROOT / "bench" / "results", copy / "bench" / "results")
    shutil.copy2(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    assert build(copy / "mkdocs.yml", tmp_path / "site").returncode == 0
    change(copy / "docs")
    failed = build(copy / "mkdocs.yml", tmp_path / "site")
    assert failed.returncode != 0
    assert complaint in failed.stderr


def test_readme_is_a_front_page_with_both_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for marker in ("<!-- serve-command -->", "<!-- test-command -->"):
        assert f"{marker}\n```sh\n" in readme, marker


def test_no_file_cites_a_document_outside_the_project() -> None:
    files = [ROOT / name for name in ("README.md", "pyproject.toml", "Makefile", "mkdocs.yml")]
    for folder in PROJECT_FILES:
        files += [
            p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    citing = []
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # the chart
        citing += [
            f"{path.relative_to(ROOT)}:{n}"
            for n, line in enumerate(text.splitlines(), 1)
            if _OUTSIDE_CONTRACT.search(line)
        ]
    assert not citing, "cite the docs page that states the rule instead:\n" + "\n".join(citing)
