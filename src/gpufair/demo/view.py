"""What the demo shows: the live per-tenant table, the node map, plain lines, the summary.

Two sources side by side: the operator's view, read from each ``TenantQuota`` status
(allocated, guaranteed, fair share, borrowed, waiting), and the demo's own account of its pods
(running, done, preempted, waits, placement quality). ``docs/demo.md`` explains every column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from gpufair.demo import tracker

TENANT_STYLES = ("bold cyan", "bold magenta", "bold yellow", "bold green", "bold blue")


@dataclasses.dataclass(frozen=True)
class Frame:
    """Everything one refresh shows."""

    elapsed: float
    duration: float
    jobs_total: int
    jobs_submitted: int
    figures: Sequence[tracker.TenantFigures]
    quotas: Mapping[str, Mapping[str, Any]]  # tenant -> TenantQuota status
    weights: Mapping[str, float]
    pool: Mapping[str, Any]  # GPUPool status
    node_usage: Mapping[str, Sequence[str | None]]
    node_shapes: Mapping[str, str]
    preemptions: Mapping[str, int]  # tenant -> the operator's gpufair_preemptions_total


def style_of(tenant: str, tenants: Sequence[str]) -> str:
    index = tenants.index(tenant) if tenant in tenants else len(tenants)
    return TENANT_STYLES[index % len(TENANT_STYLES)]


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits:
        return f"{float(value):.{digits}f}"
    return str(int(value))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def tenant_table(frame: Frame, *, title: str | None = None) -> Table:
    """The live per-tenant table; fits a 100-column terminal."""
    names = [figure.tenant for figure in frame.figures]
    table = Table(
        title=title,
        box=box.SIMPLE_HEAVY,
        title_justify="left",
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("tenant")
    for header in (
        "weight",
        "guar-\nanteed",
        "fair\nshare",
        "allo-\ncated",
        "bor-\nrowed",
        "wait-\ning",
        "run-\nning",
        "done",
        "pre-\nempted",
        "wait p50\n/ p95 (s)",
        "one\nisland",
    ):
        table.add_column(header, justify="right")
    for figure in frame.figures:
        status = frame.quotas.get(figure.tenant) or {}
        allocated = status.get("allocated")
        fair = status.get("fairShare")
        over = allocated is not None and fair is not None and allocated > float(fair) + 0.5
        waiting = status.get("waiting")
        table.add_row(
            Text(figure.tenant, style=style_of(figure.tenant, names)),
            _num(frame.weights.get(figure.tenant), 0),
            _num(status.get("guaranteed")),
            _num(fair, 1),
            Text(_num(allocated), style="bold red" if over else "bold"),
            _num(status.get("borrowed")),
            _num(waiting if waiting is not None else figure.waiting),
            str(figure.running),
            str(figure.done),
            str(figure.preempted),
            f"{_bare(figure.wait_p50)} / {_bare(figure.wait_p95)}",
            f"{_share(figure.placement_quality)} of {figure.multi_gpu_placed}",
        )
    return table


def _bare(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def node_map(frame: Frame, tenants: Sequence[str]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("node")
    table.add_column("shape", style="dim")
    table.add_column("GPUs")
    for node, slots in frame.node_usage.items():
        cells = Text()
        for slot in slots:
            if slot is None:
                cells.append("· ", style="dim")
            else:
                cells.append(f"{slot[0].upper()} ", style=style_of(slot, tenants))
        table.add_row(node, frame.node_shapes.get(node, ""), cells)
    return table


def pool_line(frame: Frame) -> Text:
    pool = frame.pool
    return Text.assemble(
        ("pool ", "dim"),
        (str(pool.get("name", "demo")), "bold"),
        f"  capacity {_num(pool.get('capacity'))}  allocated {_num(pool.get('allocated'))}",
        f"  free {_num(pool.get('free'))}",
        f"  largest free island {_num(pool.get('largestFreeIsland'))}",
    )


class Live:
    """The live display: progress, the tenant table, the pool and the node map."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
        )
        self._clock = self.progress.add_task("demo time (s)", total=1)
        self._jobs = self.progress.add_task("jobs submitted", total=1)

    def render(self, frame: Frame) -> RenderableType:
        tenants = [figure.tenant for figure in frame.figures]
        self.progress.update(
            self._clock, completed=min(frame.elapsed, frame.duration), total=frame.duration
        )
        self.progress.update(self._jobs, completed=frame.jobs_submitted, total=frame.jobs_total)
        return Group(
            self.progress,
            tenant_table(frame),
            pool_line(frame),
            node_map(frame, tenants),
            Text(allocations_line(frame.figures)),
            Text(
                "allocated (red: above fair share), guaranteed, fair share, borrowed, waiting:"
                " the operator's TenantQuota status; the rest: the demo's pods; one island: of"
                " the multi-GPU pods whose GPUs kubelet allocated (confirmed)",
                style="dim",
            ),
        )


def plain_lines(frame: Frame) -> list[str]:
    """One line per tenant, for CI logs and pipes (``--no-live``)."""
    lines = []
    for figure in frame.figures:
        status = frame.quotas.get(figure.tenant) or {}
        lines.append(
            f"[{frame.elapsed:5.1f}s] {figure.tenant:<9} "
            f"allocated {_num(status.get('allocated')):>3}"
            f"  guaranteed {_num(status.get('guaranteed')):>3}"
            f"  fair share {_num(status.get('fairShare'), 1):>5}"
            f"  borrowed {_num(status.get('borrowed')):>3}"
            f"  waiting {_num(status.get('waiting')):>3}"
            f"  running {figure.running:>3}  done {figure.done:>3}"
            f"  preempted {figure.preempted:>2}"
            f"  one island {_share(figure.placement_quality)}"
        )
    lines.append(f"[{frame.elapsed:5.1f}s] {allocations_line(frame.figures)}")
    pool = frame.pool
    lines.append(
        f"[{frame.elapsed:5.1f}s] pool {pool.get('name', 'demo')}: capacity"
        f" {_num(pool.get('capacity'))}, allocated {_num(pool.get('allocated'))}, free"
        f" {_num(pool.get('free'))}; jobs submitted {frame.jobs_submitted}/{frame.jobs_total}"
    )
    return lines


def allocations_line(figures: Sequence[tracker.TenantFigures]) -> str:
    """How many bound pods the node agents confirmed from kubelet, and how many they corrected."""
    bound = sum(figure.bound for figure in figures)
    confirmed = sum(figure.confirmed for figure in figures)
    corrected = sum(figure.corrected for figure in figures)
    return (
        f"allocations confirmed by kubelet: {confirmed} of {bound} bound pods,"
        f" {corrected} corrected (kubelet allocated other GPUs than bind chose)"
    )


def islands_line(figures: Sequence[tracker.TenantFigures], wide: tracker.IslandFigure) -> str:
    """Multi-GPU pods on one NVLink island, all tenants, and the widest pods' share of it."""
    placed = sum(figure.multi_gpu_placed for figure in figures)
    one_island = sum(figure.multi_gpu_one_island for figure in figures)
    return (
        f"multi-GPU pods on one island: {one_island} of {placed};"
        f" {wide.gpus}-GPU pods on one island: {wide.one_island} of {wide.placed}"
    )


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    tenant: str
    weight: float
    submitted: int
    scheduled: int
    done: int
    still_waiting: int
    preempted: int
    failed: int
    gpu_seconds_metered: float | None  # the operator's usage.gpuSeconds
    gpu_seconds_seen: float  # the demo's own bind-to-end account
    wait_p50: float | None
    wait_p95: float | None
    multi_gpu_placed: int
    multi_gpu_one_island: int
    placement_quality: float | None
    operator_preemptions: int
    bound: int = 0
    confirmed: int = 0
    corrected: int = 0


def summary_rows(frame: Frame) -> list[SummaryRow]:
    rows = []
    for figure in frame.figures:
        status = frame.quotas.get(figure.tenant) or {}
        usage = status.get("usage") or {}
        metered = usage.get("gpuSeconds")
        rows.append(
            SummaryRow(
                tenant=figure.tenant,
                weight=float(frame.weights.get(figure.tenant, 0)),
                submitted=figure.submitted,
                scheduled=figure.scheduled,
                done=figure.done,
                still_waiting=figure.waiting,
                preempted=figure.preempted,
                failed=figure.failed,
                gpu_seconds_metered=None if metered is None else float(metered),
                gpu_seconds_seen=figure.gpu_seconds,
                wait_p50=figure.wait_p50,
                wait_p95=figure.wait_p95,
                multi_gpu_placed=figure.multi_gpu_placed,
                multi_gpu_one_island=figure.multi_gpu_one_island,
                placement_quality=figure.placement_quality,
                operator_preemptions=frame.preemptions.get(figure.tenant, 0),
                bound=figure.bound,
                confirmed=figure.confirmed,
                corrected=figure.corrected,
            )
        )
    return rows


def summary_table(rows: Sequence[SummaryRow], *, title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", pad_edge=False)
    table.add_column("tenant")
    for header in (
        "weight",
        "pods",
        "scheduled",
        "done",
        "still waiting",
        "GPU-seconds",
        "wait p50",
        "wait p95",
        "one island",
        "preemptions",
    ):
        table.add_column(header, justify="right")
    tenants = [row.tenant for row in rows]
    for row in rows:
        metered = row.gpu_seconds_metered
        table.add_row(
            Text(row.tenant, style=style_of(row.tenant, tenants)),
            f"{row.weight:g}",
            str(row.submitted),
            str(row.scheduled),
            str(row.done),
            str(row.still_waiting),
            f"{metered:.0f}" if metered is not None else f"~{row.gpu_seconds_seen:.0f}",
            _seconds(row.wait_p50),
            _seconds(row.wait_p95),
            f"{_share(row.placement_quality)} ({row.multi_gpu_one_island}/{row.multi_gpu_placed})",
            f"{row.preempted} ({row.operator_preemptions})",
        )
    return table
