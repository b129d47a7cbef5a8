"""Benchmark reports: medians over rounds, ratios to the reference, JSON, markdown and a chart;
the event streams' figures in a table of their own."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

FIGURES = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")


WORKLOADS = ("health", "read", "list", "write")
REFERENCES = ("reference-cached", "reference")


def targets(results: dict[str, Any]) -> list[str]:
    """Every target measured, references first, in the order they were run."""
    seen = dict.fromkeys(m["target"] for m in results["measurements"])
    return [*(t for t in REFERENCES if t in seen), *(t for t in seen if t not in REFERENCES)]


def summarize(measurements: list[dict[str, Any]], connections: int) -> dict[str, dict[str, Any]]:
    """(target, workload) -> medians of every figure, summed errors, peak RSS; every apictl
    target also gets its ratios to reference-cached (the headline) and to reference."""
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
        if target in REFERENCES:
            continue
        ref = summary.get(f"reference/{workload}")
        cached = summary.get(f"reference-cached/{workload}")
        if cached and cached["rps"]:
            row["rps_ratio_cached"] = round(row["rps"] / cached["rps"], 2)
            if cached["p99_ms"]:
                row["p99_ratio_cached"] = round(row["p99_ms"] / cached["p99_ms"], 2)
        if ref and ref["rps"]:
            row["rps_ratio"] = round(row["rps"] / ref["rps"], 2)
    return summary


def markdown(results: dict[str, Any]) -> str:
    if results["measurements"]:
        lines = http_markdown(results)
    else:  # the event streams alone
        machine = results["machine"]
        lines = [
            f"Benchmark of {results['when']} ({machine['cpus']} cores, Python "
            f"{machine['python']}): one server worker pinned to a core, its clients on the other."
        ]
    return "\n".join(lines + streams_markdown(results)) + "\n"


def http_markdown(results: dict[str, Any]) -> list[str]:
    settings = results["settings"]
    conns = settings["connections"]
    summary = summarize(results["measurements"], conns)
    lines = [
        f"Benchmark of {results['when']} ({results['machine']['cpus']} cores, Python "
        f"{results['machine']['python']}): one server worker pinned to a core, wrk on the other, "
        f"{conns} connections, {settings['duration']:g} s per measurement after "
        f"{settings['warmup']:g} s of warm-up, medians of {settings['rounds']} interleaved rounds.",
        "",
        "`vs cached` (the headline) is a target over `reference-cached`: raw ASGI with asyncpg and "
        "orjson doing the same SQL with the same in-process token cache apictl has; `vs ref` is "
        "over `reference`, which looks every token up in PostgreSQL (the benchmark's original "
        "yardstick).",
        "",
        "| target | workload | RPS | vs cached | vs ref | p50 ms | p90 ms | p99 ms "
        "| p99 vs cached | max ms | non-2xx | socket errors | peak RSS MB |",
        "| --- | --- " + "| ---: " * 11 + "|",
    ]
    for workload in WORKLOADS:
        for target in targets(results):
            row = summary.get(f"{target}/{workload}")
            if row is None:
                continue
            lines.append(
                f"| {target} | {workload} | {row['rps']:,.0f} | {row.get('rps_ratio_cached', '')} "
                f"| {row.get('rps_ratio', '')} | {row['p50_ms']} | {row['p90_ms']} "
                f"| {row['p99_ms']} | {row.get('p99_ratio_cached', '')} | {row['max_ms']} "
                f"| {row['non_2xx']} | {row['socket_errors']} | {row['peak_rss_mb']} |"
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
    return lines


def streams_markdown(results: dict[str, Any]) -> list[str]:
    """The `stream` workload's table (bench/streams.py), when it ran."""
    streams = results.get("streams")
    if not streams:
        return []
    settings = results["settings"]
    lines = [
        "",
        "Idle event streams (`stream`), apictl only: the reference serves no event stream. Each "
        "count on a worker started afresh; clients on the other core. KB per stream: what the "
        "worker's RSS grew by with them open, per stream; idle CPU: the worker's, in % of a "
        f"core over {settings['stream_idle']:g} s; fan-out: one `post.created`, from its POST's "
        f"201 to each stream, medians of {settings['stream_events']} events (max: the slowest "
        "stream of any; reached: the fewest streams an event reached); after closing: the "
        "`apictl_sse_subscribers` gauge, open files, RSS over RSS before.",
        "",
        "| target | streams | opened in s | KB per stream | idle CPU % | fan-out p50 ms | p99 ms "
        "| max ms | reached | gauge after | fds before / after | RSS after / before |",
        "| --- " + "| ---: " * 11 + "|",
    ]
    for m in streams:
        idle = "" if m["idle_cpu_percent"] is None else m["idle_cpu_percent"]
        lines.append(
            f"| {m['target']} | {m['opened']:,} of {m['streams']:,} | {m['open_seconds']} "
            f"| {m['kb_per_stream']} | {idle} | {m['fanout_p50_ms']} | {m['fanout_p99_ms']} "
            f"| {m['fanout_max_ms']} | {m['delivered_min']:,} | {m['subscribers_after']:g} "
            f"| {m['fds_before']} / {m['fds_after']} | {m['rss_after_ratio']} |"
        )
    return lines


def chart(results: dict[str, Any], path: Path) -> bool:
    """A bar chart of RPS per workload, every target side by side (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    summary = summarize(results["measurements"], results["settings"]["connections"])
    names = targets(results)
    if not names:  # no HTTP workload ran
        return False
    fig, ax = plt.subplots(figsize=(9, 4.4), dpi=110)
    width = 0.8 / len(names)
    colours = ["#cbd2d9", "#9aa5b1", "#1f6feb", "#f0a30a", "#8e44ad"]
    for i, target in enumerate(names):
        offset = (i - (len(names) - 1) / 2) * width
        values = [summary.get(f"{target}/{w}", {}).get("rps", 0) for w in WORKLOADS]
        positions = [n + offset for n in range(len(WORKLOADS))]
        bars = ax.bar(positions, values, width, label=target, color=colours[i % len(colours)])
        if target not in REFERENCES:
            ratios = [
                summary.get(f"{target}/{w}", {}).get("rps_ratio_cached", "") for w in WORKLOADS
            ]
            ax.bar_label(bars, labels=[f"{r}" for r in ratios], padding=2, fontsize=8)
    ax.text(
        0.01, 0.97, "labels: RPS / reference-cached", transform=ax.transAxes, va="top",
        fontsize=8, color="#52606d",
    )  # fmt: skip
    ax.set_xticks(range(len(WORKLOADS)), WORKLOADS)
    ax.set_ylabel("requests per second (median)")
    ax.set_title("apictl vs. a bare ASGI + asyncpg + orjson reference (1 worker, 1 core)")
    ax.legend(fontsize=8)
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
