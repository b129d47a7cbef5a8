"""Benchmark reports: medians over rounds, ratios to the reference, JSON, markdown and a chart."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

FIGURES = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")


def summarize(measurements: list[dict[str, Any]], connections: int) -> dict[str, dict[str, Any]]:
    """(target, workload) -> medians of every figure, summed errors, peak RSS."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in measurements:
        if m["connections"] == connections:
            groups.setdefault((m["target"], m["workload"]), []).append(m)
    summary: dict[str, dict[str, Any]] = {}
    for (target, workload), runs in groups.items():
        row: dict[str, Any] = {f: round(statistics.median(r[f] for r in runs), 2) for f in FIGURES}
        row["non_2xx"] = sum(r["non_2xx"] for r in runs)
        row["socket_errors"] = sum(r["socket_errors"] for r in runs)
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        row["rounds"] = len(runs)
        summary[f"{target}/{workload}"] = row
    for key, row in summary.items():
        target, workload = key.split("/")
        ref = summary.get(f"reference/{workload}")
        cached = summary.get(f"reference-cached/{workload}")
        if target == "apictl" and ref and ref["rps"]:
            row["rps_ratio"] = round(row["rps"] / ref["rps"], 2)
            row["p99_ratio"] = round(row["p99_ms"] / ref["p99_ms"], 2) if ref["p99_ms"] else None
        if target == "apictl" and cached and cached["rps"]:
            row["rps_ratio_cached"] = round(row["rps"] / cached["rps"], 2)
    return summary


def markdown(results: dict[str, Any]) -> str:
    settings = results["settings"]
    conns = settings["connections"]
    summary = summarize(results["measurements"], conns)
    lines = [
        f"Benchmark of {results['when']} ({results['machine']['cpus']} cores, Python "
        f"{results['machine']['python']}): one server worker pinned to a core, wrk on the other, "
        f"{conns} connections, {settings['duration']:g} s per measurement after "
        f"{settings['warmup']:g} s of warm-up, medians of {settings['rounds']} interleaved rounds.",
        "",
        "`ratio` is apictl over `reference` (SPEC section 9: raw ASGI, the same SQL and token "
        "lookup per request); `vs cached` is apictl over `reference-cached`, the same reference "
        "given apictl's in-process token cache.",
        "",
        "| target | workload | RPS | ratio | vs cached | p50 ms | p90 ms | p99 ms | p99 ratio "
        "| max ms | non-2xx | socket errors | peak RSS MB |",
        "| --- | --- " + "| ---: " * 11 + "|",
    ]
    for workload in ("health", "read", "write"):
        for target in ("reference", "reference-cached", "apictl"):
            row = summary.get(f"{target}/{workload}")
            if row is None:
                continue
            ratio = row.get("rps_ratio", 1.0 if target == "reference" else "")
            cached = row.get("rps_ratio_cached", "")
            p99_ratio = row.get("p99_ratio", 1.0 if target == "reference" else "")
            lines.append(
                f"| {target} | {workload} | {row['rps']:,.0f} | {ratio} | {cached} "
                f"| {row['p50_ms']} | {row['p90_ms']} | {row['p99_ms']} | {p99_ratio} "
                f"| {row['max_ms']} | {row['non_2xx']} | {row['socket_errors']} "
                f"| {row['peak_rss_mb']} |"
            )
    stress = settings.get("stress_connections")
    if stress:
        lines += [
            "",
            f"At {stress} connections (errors are the point here):",
            "",
            "| target | workload | RPS | p99 ms | non-2xx | socket errors |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for key, row in summarize(results["measurements"], stress).items():
            target, workload = key.split("/")
            lines.append(
                f"| {target} | {workload} | {row['rps']:,.0f} | {row['p99_ms']} "
                f"| {row['non_2xx']} | {row['socket_errors']} |"
            )
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> bool:
    """A bar chart of RPS per workload, apictl next to the reference (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    summary = summarize(results["measurements"], results["settings"]["connections"])
    workloads = ["health", "read", "write"]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    width = 0.27
    series = (
        (-width, "reference", "#9aa5b1"),
        (0.0, "reference-cached", "#cbd2d9"),
        (width, "apictl", "#1f6feb"),
    )
    for offset, target, colour in series:
        values = [summary.get(f"{target}/{w}", {}).get("rps", 0) for w in workloads]
        bars = ax.bar([i + offset for i in range(3)], values, width, label=target, color=colour)
        if target == "apictl":
            ratios = [summary.get(f"apictl/{w}", {}).get("rps_ratio", "") for w in workloads]
            ax.bar_label(bars, labels=[f"{r}x" for r in ratios], padding=2, fontsize=9)
    ax.text(
        0.01,
        0.97,
        "labels: apictl / reference",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        color="#52606d",
    )
    ax.set_xticks(range(3), workloads)
    ax.set_ylabel("requests per second (median)")
    ax.set_title("apictl vs. a bare ASGI + asyncpg + orjson reference (1 worker, 1 core)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_reports(results: dict[str, Any], out: Path, *, smoke: bool) -> None:
    """latest.json / latest.md / latest.png in `out` (smoke runs write smoke.* instead)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if smoke else "latest"
    results["summary"] = summarize(results["measurements"], results["settings"]["connections"])
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (out / f"{stem}.md").write_text(table)
    drew = not smoke and chart(results, out / f"{stem}.png")
    print("\n" + table + (f"\nchart: {out / (stem + '.png')}" if drew else ""))
