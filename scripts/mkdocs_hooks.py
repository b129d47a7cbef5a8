"""MkDocs hooks: the benchmark's chart, written by bench/run.py beside its results, on the site."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

CHART = Path(__file__).resolve().parent.parent / "bench" / "results" / "latest.png"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Publish bench/results/latest.png as assets/benchmark.png (docs/ holds no copy)."""
    files.append(File.generated(config, "assets/benchmark.png", abs_src_path=str(CHART)))
    return files
