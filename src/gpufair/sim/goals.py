"""The scheduling-quality goals gpufair is held to (issue 17), judged on one simulation run.

A report is only useful against a bar: this module reads the figures of every policy of a run
(:class:`~gpufair.sim.metrics.PolicyFigures`) and says, goal by goal, what gpufair reached, what
the bar was and whether it holds, so ``report.md`` and ``report.json`` carry the verdict with
the figures it comes from. Goals relative to a baseline (a third of the best baseline's
deviation, 1.3x stock kube-scheduler's mean JCT, utilisation within 5 points of the best) are
``None`` (not judged) when the run did not include that baseline.

"Best baseline" is the best figure among the baselines of the run (``default``, ``quota``,
``kueue-tas``, ``gang-binpack``); gpufair's own variants are not baselines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from gpufair.sim import metrics

GPUFAIR = "gpufair"
DEFAULT = "default"
BASELINES = ("default", "quota", "kueue-tas", "gang-binpack")

MAX_DEVIATION = 0.05
"""Worst tenant's time-weighted deviation from its entitled share, as a share of the cluster."""
DEVIATION_VS_BEST = 1 / 3
MIN_JAIN = 0.98
MAX_LOST = 0.01
"""GPU-hours lost to preemption, as a share of the GPU-hours submitted."""
MIN_JCT_GAIN = 1.3
MIN_SHARE_RATIO = 0.9
MAX_GUARANTEED_WAIT_P99_S = 120.0
MIN_ONE_ISLAND = 0.95
MAX_UTILISATION_GAP = 0.05


@dataclasses.dataclass(frozen=True)
class Goal:
    """One goal: what it asks, gpufair's figure, the bar it was judged against."""

    goal: str
    target: str
    value: str
    met: bool | None
    """``None``: not judged (the run lacks the baseline the goal compares with)."""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "missed", None: "not judged"}[self.met]


def worst_tenant_deviation(figures: metrics.PolicyFigures) -> tuple[str, float]:
    """The tenant whose time-weighted deviation from its entitled share is largest, and it."""
    active = _in_demand(figures)
    if not active:
        return "-", 0.0
    name = max(active, key=lambda tenant: (active[tenant].mean_deviation, tenant))
    return name, active[name].mean_deviation


def lowest_share_ratio(figures: metrics.PolicyFigures) -> tuple[str, float]:
    """The tenant that got the smallest part of its entitlement while it had demand, and it."""
    active = _in_demand(figures)
    if not active:
        return "-", 1.0
    name = min(active, key=lambda tenant: (active[tenant].share_ratio, tenant))
    return name, active[name].share_ratio


def _in_demand(figures: metrics.PolicyFigures) -> dict[str, metrics.TenantFigures]:
    """The tenants that had demand during the window (the others are entitled to nothing)."""
    return {name: tenant for name, tenant in figures.tenants.items() if tenant.demand_hours > 0}


def check(results: Sequence[metrics.PolicyFigures]) -> list[Goal]:
    """gpufair's goals on this run; empty when the run has no gpufair policy."""
    by_name = {figures.policy: figures for figures in results}
    mine = by_name.get(GPUFAIR)
    if mine is None:
        return []
    baselines = [by_name[name] for name in BASELINES if name in by_name]
    default = by_name.get(DEFAULT)
    tenant, deviation = worst_tenant_deviation(mine)
    starved, ratio = lowest_share_ratio(mine)
    lost = mine.lost_gpu_hours / mine.gpu_hours_submitted if mine.gpu_hours_submitted else 0.0
    goals = [
        Goal(
            "worst tenant's time-weighted deviation from its entitled share",
            f"<= {_pct(MAX_DEVIATION)} of the cluster",
            f"{_pct(deviation)} ({tenant})",
            deviation <= MAX_DEVIATION,
        ),
        _against_best(
            "... against the best baseline's",
            mine,
            baselines,
            figure=lambda f: worst_tenant_deviation(f)[1],
            best=min,
            target=lambda best: f"<= 1/3 of {_pct(best)} = {_pct(best * DEVIATION_VS_BEST)}",
            holds=lambda value, best: value <= best * DEVIATION_VS_BEST,
            render=_pct,
        ),
        Goal(
            "Jain's index (share / entitlement)",
            f">= {MIN_JAIN}",
            f"{mine.jain:.4f}",
            mine.jain >= MIN_JAIN,
        ),
        Goal(
            "every tenant's share of its entitlement",
            f">= {MIN_SHARE_RATIO}",
            f"lowest {ratio:.2f} ({starved})",
            ratio >= MIN_SHARE_RATIO,
        ),
        Goal(
            "queue wait p99 of jobs within their guarantee",
            f"<= {MAX_GUARANTEED_WAIT_P99_S / 60:g} min",
            _duration(mine.wait_within_guarantee_s.p99),
            mine.wait_within_guarantee_s.p99 <= MAX_GUARANTEED_WAIT_P99_S,
        ),
        Goal(
            "GPU-hours lost to preemption",
            f"<= {_pct(MAX_LOST)} of the GPU-hours submitted",
            f"{_pct(lost)} ({mine.lost_gpu_hours:,.0f} GPU-hours)",
            lost <= MAX_LOST,
        ),
        Goal(
            "multi-GPU jobs in one NVLink island when one was free",
            f">= {_pct(MIN_ONE_ISLAND)}",
            f"{_pct(mine.one_island_when_possible)} (n={mine.island_possible_jobs:,})",
            mine.one_island_when_possible >= MIN_ONE_ISLAND,
        ),
        _against_best(
            "GPU utilisation (busy)",
            mine,
            baselines,
            figure=lambda f: f.utilisation,
            best=max,
            target=lambda best: f">= best baseline {_pct(best)} - 5 points",
            holds=lambda value, best: value >= best - MAX_UTILISATION_GAP,
            render=_pct,
        ),
    ]
    if default is None:
        goals += [
            Goal(
                "mean JCT against stock kube-scheduler",
                f">= {MIN_JCT_GAIN}x better",
                _duration(mine.jct_s.mean),
                None,
            ),
            Goal(
                "queue wait p95 of jobs wider than a machine",
                "below stock kube-scheduler's",
                "-",
                None,
            ),
        ]
        return goals
    gain = default.jct_s.mean / mine.jct_s.mean if mine.jct_s.mean else 0.0
    wide = [label for label in mine.wait_by_size_s if label.startswith(">")]
    goals.append(
        Goal(
            "mean JCT against stock kube-scheduler",
            f">= {MIN_JCT_GAIN}x better",
            f"{gain:.2f}x ({_duration(mine.jct_s.mean)} vs {_duration(default.jct_s.mean)})",
            gain >= MIN_JCT_GAIN,
        )
    )
    for label in wide:
        ours, theirs = mine.wait_by_size_s[label].p95, default.wait_by_size_s[label].p95
        goals.append(
            Goal(
                f"queue wait p95 of {label}-GPU jobs",
                f"below stock kube-scheduler's {_duration(theirs)}",
                _duration(ours),
                ours < theirs,
            )
        )
    return goals


def _against_best(
    goal: str,
    mine: metrics.PolicyFigures,
    baselines: Sequence[metrics.PolicyFigures],
    *,
    figure: Callable[[metrics.PolicyFigures], float],
    best: Callable[[list[float]], float],
    target: Callable[[float], str],
    holds: Callable[[float, float], bool],
    render: Callable[[float], str],
) -> Goal:
    value = figure(mine)
    if not baselines:
        return Goal(goal, "needs a baseline in the run", render(value), None)
    values = {f.policy: figure(f) for f in baselines}
    bar = best(list(values.values()))
    leader = next(name for name, v in values.items() if v == bar)
    return Goal(goal, f"{target(bar)} ({leader})", render(value), holds(value, bar))


def to_markdown(goals: Sequence[Goal]) -> list[str]:
    """The goals as a markdown section (no lines when there are none)."""
    if not goals:
        return []
    met = sum(1 for goal in goals if goal.met)
    judged = sum(1 for goal in goals if goal.met is not None)
    lines = [
        "## Goals (issue 17)",
        "",
        f"gpufair meets {met} of the {judged} goals judged on this run.",
        "",
        "| goal | target | gpufair | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g.goal} | {g.target} | {g.value} | {g.verdict} |" for g in goals]
    return [*lines, ""]


def _pct(value: float) -> str:
    """``0.57%`` below one percent (deviations live there), ``85.2%`` above."""
    return f"{value * 100:.2f}%" if abs(value) < 0.01 else f"{value * 100:.1f}%"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
