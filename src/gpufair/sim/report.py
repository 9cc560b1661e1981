"""Writes a benchmark run as ``report.json``, ``report.md`` and PNG plots, and renders the table.

The CLI calls :func:`write` once with every policy's :class:`~gpufair.sim.metrics.PolicyFigures`
from one run, so the figures side by side always come from the same trace, cluster and
machine. Plots use matplotlib's Agg backend (no display needed); matplotlib comes with the
``sim`` extra only (``pip install 'gpufair[sim]'``), so the runtime image goes without it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from gpufair.sim import goals, metrics

HOUR = 3600.0


class PlottingUnavailableError(RuntimeError):
    """Plots were asked for, but matplotlib (the ``sim`` extra) is not installed."""


def require_plotting() -> None:
    """Raise :class:`PlottingUnavailableError` saying what to install, before a long run."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlottingUnavailableError(
            "plots need matplotlib, which comes with the 'sim' extra: "
            "pip install 'gpufair[sim]' (or pass --no-plots)"
        )


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What was run, where, for the report's header."""

    command: str
    trace: str
    window: str
    jobs: int
    gpu_hours: float
    nodes: int
    capacity: int
    topologies: Sequence[str]
    baseline_pods: str
    machine: str
    tenants: Sequence[Mapping[str, Any]]
    assumptions: Mapping[str, Any]


def _clean(value: Any) -> Any:
    """JSON without NaN: NaN and infinities become ``null``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def to_json(info: RunInfo, results: Sequence[metrics.PolicyFigures]) -> dict[str, Any]:
    return {
        "run": _clean(dataclasses.asdict(info)),
        "policies": {figures.policy: _clean(dataclasses.asdict(figures)) for figures in results},
        "goals": [
            {**dataclasses.asdict(goal), "verdict": goal.verdict} for goal in goals.check(results)
        ],
    }


def _hours(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if seconds < HOUR:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / HOUR:.2f} h"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def _num(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def summary_rows(results: Sequence[metrics.PolicyFigures]) -> list[tuple[str, list[str]]]:
    """The side-by-side table: one row per figure, one column per policy."""

    def row(label: str, render: Any) -> tuple[str, list[str]]:
        return label, [render(figures) for figures in results]

    return [
        row("jobs finished / submitted", lambda f: f"{f.finished:,} / {f.jobs:,}"),
        row("mean deviation from entitled share", lambda f: _pct(f.mean_deviation)),
        row("worst deviation from entitled share", lambda f: _pct(f.worst_deviation)),
        row("Jain's index (share / entitlement)", lambda f: _num(f.jain, 4)),
        row("queue wait p50", lambda f: _hours(f.wait_s.p50)),
        row("queue wait p95", lambda f: _hours(f.wait_s.p95)),
        row("queue wait p99", lambda f: _hours(f.wait_s.p99)),
        row(
            "queue wait p95, jobs within guarantee",
            lambda f: (
                f"{_hours(f.wait_within_guarantee_s.p95)} (n={f.wait_within_guarantee_s.count:,})"
            ),
        ),
        row(
            "queue wait p99, jobs within guarantee", lambda f: _hours(f.wait_within_guarantee_s.p99)
        ),
        *[
            row(
                f"queue wait p95 / p99, {label}-GPU jobs",
                lambda f, label=label: (
                    f"{_hours(f.wait_by_size_s[label].p95)} /"
                    f" {_hours(f.wait_by_size_s[label].p99)} (n={f.wait_by_size_s[label].count:,})"
                ),
            )
            for label in (results[0].wait_by_size_s if results else {})
        ],
        row("time with jobs waiting", lambda f: _pct(f.contended)),
        row("GPU utilisation (busy)", lambda f: _pct(f.utilisation)),
        row("goodput (work at best-placement speed)", lambda f: _pct(f.goodput)),
        row("JCT mean", lambda f: _hours(f.jct_s.mean)),
        row("JCT p95", lambda f: _hours(f.jct_s.p95)),
        row(
            "multi-GPU jobs (2-8) on one machine",
            lambda f: f"{_pct(f.one_machine)} (n={f.multi_gpu_jobs:,})",
        ),
        row("multi-GPU jobs (2-8) in one NVLink island", lambda f: _pct(f.one_island)),
        row(
            "... of those that could have had one island",
            lambda f: f"{_pct(f.one_island_when_possible)} (n={f.island_possible_jobs:,})",
        ),
        row("mean placement slowdown, multi-GPU jobs", lambda f: f"{_num(f.mean_slowdown)}x"),
        row(
            "wide jobs (>8) on fewest machines",
            lambda f: f"{_pct(f.wide_fewest_machines)} (n={f.wide_jobs:,})",
        ),
        row("preemptions", lambda f: f"{f.preemptions:,}"),
        row("GPU-hours lost to preemption", lambda f: f"{f.lost_gpu_hours:,.0f}"),
        row("simulation wall time", lambda f: f"{f.wall_seconds:.1f} s"),
        row("events per second", lambda f: f"{f.events / max(f.wall_seconds, 1e-9):,.0f}"),
    ]


def to_markdown(
    info: RunInfo, results: Sequence[metrics.PolicyFigures], plots: Sequence[str]
) -> str:
    names = [figures.policy for figures in results]
    lines = [
        "# gpufair simulation report",
        "",
        f"- command: `{info.command}`",
        f"- machine: {info.machine}",
        f"- trace: `{info.trace}`, window {info.window}: {info.jobs:,} jobs,"
        f" {info.gpu_hours:,.0f} GPU-hours",
        f"- cluster: {info.nodes} machines, {info.capacity} GPUs"
        f" ({', '.join(info.topologies)}, evenly mixed)",
        f"- baselines' pods: {info.baseline_pods}",
        "- assumptions: "
        + ", ".join(f"{key} = {value}" for key, value in info.assumptions.items()),
        "",
        "## Figures",
        "",
        "| figure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in summary_rows(results)]
    lines += ["", *goals.to_markdown(goals.check(results))]
    lines += ["## Per tenant", ""]
    tenants = sorted(results[0].tenants, key=lambda name: -results[0].tenants[name].gpu_hours)
    header = ["tenant", "weight", "guaranteed", "GPU-hours"]
    for name in names:
        header += [f"{name} wait p50/p95/p99", f"{name} mean/worst dev.", f"{name} got/entitled"]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for tenant in tenants:
        first = results[0].tenants[tenant]
        cells = [tenant, f"{first.weight:g}", str(first.guaranteed), f"{first.gpu_hours:,.0f}"]
        for figures in results:
            mine = figures.tenants[tenant]
            cells += [
                " / ".join(_hours(q) for q in (mine.wait_s.p50, mine.wait_s.p95, mine.wait_s.p99)),
                f"{_pct(mine.mean_deviation)} / {_pct(mine.worst_deviation)}",
                _num(mine.share_ratio, 2),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{plot}]({plot})" for plot in plots]
    lines += [
        "",
        "Definitions: docs/simulator.md. Deviation = |allocated - entitled| / capacity while the"
        " tenant has demand; entitled = gpufair.core.fairshare on current demand (same rule for"
        " every policy).",
        "",
    ]
    return "\n".join(lines)


def plot(out: pathlib.Path, results: Sequence[metrics.PolicyFigures]) -> list[str]:
    """Per-policy share-over-time grids and a comparison bar chart; returns file names."""
    require_plotting()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    files: list[str] = []
    reference = results[0]
    tenants = sorted(
        (name for name, t in reference.tenants.items() if t.demand_hours > 0),
        key=lambda name: -reference.tenants[name].gpu_hours,
    )[:12]
    columns = 3
    rows = max(1, math.ceil(len(tenants) / columns))
    for figures in results:
        figure, axes = pyplot.subplots(
            rows, columns, figsize=(4.2 * columns, 2.4 * rows), sharex=True, squeeze=False
        )
        hours = figures.timeline_hours
        for index, tenant in enumerate(tenants):
            axis = axes[index // columns][index % columns]
            series = figures.timeline[tenant]
            axis.plot(hours, series["allocated"], label="allocated", linewidth=0.9)
            axis.plot(hours, series["entitled"], label="entitled", linewidth=0.9, linestyle="--")
            axis.set_title(tenant, fontsize=9)
            axis.tick_params(labelsize=7)
        for index in range(len(tenants), rows * columns):
            axes[index // columns][index % columns].axis("off")
        axes[0][0].legend(fontsize=7)
        figure.suptitle(f"{figures.policy}: share of the cluster over time (hours)", fontsize=10)
        figure.tight_layout()
        name = f"share-{figures.policy}.png"
        figure.savefig(out / name, dpi=110)
        pyplot.close(figure)
        files.append(name)

    panels: list[tuple[str, list[float]]] = [
        ("queue wait p95 (h)", [f.wait_s.p95 / HOUR for f in results]),
        ("mean deviation from share (%)", [100 * f.mean_deviation for f in results]),
        ("JCT mean (h)", [f.jct_s.mean / HOUR for f in results]),
        ("multi-GPU jobs on one machine (%)", [100 * f.one_machine for f in results]),
        ("goodput (%)", [100 * f.goodput for f in results]),
        ("GPU-hours lost to preemption", [f.lost_gpu_hours for f in results]),
    ]
    figure, axes = pyplot.subplots(2, 3, figsize=(12, 6), squeeze=False)
    names = [f.policy for f in results]
    for index, (title, values) in enumerate(panels):
        axis = axes[index // 3][index % 3]
        axis.bar(names, [0.0 if math.isnan(v) else v for v in values])
        axis.set_title(title, fontsize=9)
        axis.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(out / "comparison.png", dpi=110)
    pyplot.close(figure)
    files.append("comparison.png")
    return files


def write(
    out: pathlib.Path,
    info: RunInfo,
    results: Sequence[metrics.PolicyFigures],
    *,
    plots: bool = True,
) -> list[pathlib.Path]:
    """Write report.json, report.md and the plots into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    images = plot(out, results) if plots else []
    (out / "report.json").write_text(json.dumps(to_json(info, results), indent=1) + "\n")
    (out / "report.md").write_text(to_markdown(info, results, images))
    return [out / "report.json", out / "report.md", *(out / image for image in images)]
