"""``gpufair simulate``: replay a GPU job trace under gpufair and the baseline policies.

Parses the options, builds one :class:`gpufair.sim.runner.Scenario`, runs each policy on it
(with a progress bar), prints the side-by-side table and writes ``report.md``, ``report.json``
and plots to ``-o DIR``. The defaults find the shared data relative to the trace
(``<data>/traces/philly/philly.csv`` -> ``<data>/topology``, ``<data>/placement-profiles``, the
VC sizes beside the trace).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import pathlib
import platform
import shlex
import sys

DEFAULT_NOMINAL_GPUS = 2816
"""Philly's size by the Helios VC table (352 machines of 8 GPUs)."""
VC_FILE = "philly_vc_nodes_heliosartifact.csv"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "simulate",
        help="replay a GPU job trace under gpufair and baseline policies",
        description="Discrete-event replay of a job trace (Philly CSV format) on a simulated "
        "cluster of 8-GPU machines, under each policy; prints and writes the figures.",
    )
    parser.add_argument("--trace", type=pathlib.Path, required=True, help="trace CSV")
    parser.add_argument("--start", help="first submit time kept (YYYY-MM-DD[ HH:MM:SS])")
    parser.add_argument("--end", help="submit times before this are kept (exclusive)")
    parser.add_argument(
        "--warmup-days",
        type=float,
        default=7.0,
        help="with --start, also replay the jobs of this many days before it, unmeasured, so "
        "the window starts on a loaded cluster (7)",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--cluster-gpus",
        type=int,
        help=f"cluster size in GPUs, rounded up to whole machines (default {DEFAULT_NOMINAL_GPUS})",
    )
    size.add_argument("--nodes", type=int, help="cluster size in machines")
    parser.add_argument(
        "--topology",
        help="machine topologies: comma-separated capture names (file stems in the topology "
        "folder), mixed evenly (default: DGX-1 V100 and an 8-GPU PCIe box)",
    )
    parser.add_argument("--topology-dir", type=pathlib.Path, help="folder of topology captures")
    parser.add_argument("--profiles", type=pathlib.Path, help="folder of placement profiles")
    parser.add_argument(
        "--weights",
        type=pathlib.Path,
        help="tenant weights: CSV tenant,weight[,guaranteed[,limit]] or 'vc,node num' "
        f"(default: {VC_FILE} beside the trace, scaled to the cluster)",
    )
    parser.add_argument(
        "--policy",
        default="gpufair,default,quota,kueue-tas,gang-binpack",
        help="comma-separated policies to compare (default: these five: gpufair, default "
        "kube-scheduler, quota (Kueue), kueue-tas (Kueue with topology-aware scheduling), "
        "gang-binpack (Volcano/KAI style)); also gpufair-without-proxy (gpufair picks the "
        "machine, NVIDIA's allocator the GPUs)",
    )
    parser.add_argument(
        "-o", "--output", type=pathlib.Path, default=pathlib.Path("sim-out"), help="report folder"
    )
    parser.add_argument(
        "--baseline-pods",
        choices=["gpu", "job"],
        default="gpu",
        help="baselines' pod shape: one pod per GPU (spread by kube-scheduler, default) "
        "or one pod per job",
    )
    parser.add_argument("--placement-mode", choices=["Pack", "Spread"], default="Pack")
    parser.add_argument("--topology-rule", choices=["Preferred", "Required"], default="Preferred")
    parser.add_argument(
        "--no-island-keeping",
        action="store_true",
        help="gpufair places by link quality only, without weighing the waiting demand by size",
    )
    parser.add_argument(
        "--half-life-hours", type=float, default=168.0, help="decayed-usage half-life (168)"
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=60.0,
        help="jobs checkpoint this often; preemption loses the work since (60; 0 = never)",
    )
    parser.add_argument(
        "--reclaim-interval",
        type=float,
        default=60.0,
        help="seconds between reclaim attempts while a tenant is starved (60)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


class UsageError(ValueError):
    """Bad options or input files: reported on stderr with exit code 2."""


def run(args: argparse.Namespace) -> int:
    from gpufair.sim import report, slowdown, tenants, trace

    try:
        return _run(args)
    except (
        UsageError,
        report.PlottingUnavailableError,
        trace.TraceError,
        tenants.TenantFileError,
        slowdown.ProfileError,
    ) as error:
        print(f"gpufair simulate: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from rich import console as rich_console
    from rich import progress as rich_progress
    from rich import table as rich_table

    from gpufair.core import policy as core_policy
    from gpufair.sim import engine, report, runner, slowdown, tenants, trace

    console = rich_console.Console(stderr=True)
    try:
        start = trace.parse_time(args.start) if args.start else None
        end = trace.parse_time(args.end) if args.end else None
    except ValueError as error:
        raise UsageError(f"--start/--end: {error}") from error
    try:
        policies = [runner.PolicyName(name.strip()) for name in args.policy.split(",") if name]
    except ValueError as error:
        known = ",".join(p.value for p in runner.PolicyName)
        raise UsageError(f"--policy: {error} (known: {known})") from error
    if not policies:
        raise UsageError("--policy: name at least one policy")
    if not args.trace.is_file():
        raise UsageError(f"--trace: {args.trace}: no such file")
    if not args.no_plots:
        report.require_plotting()  # before the run, not after minutes of it
    data = args.trace.resolve().parent.parent.parent
    topology_dir = args.topology_dir or data / "topology"
    profiles_dir = args.profiles or data / "placement-profiles"
    names = (
        [name.strip() for name in args.topology.split(",") if name.strip()]
        if args.topology
        else list(runner.DEFAULT_TOPOLOGIES)
    )
    if not topology_dir.is_dir():
        raise UsageError(
            f"--topology-dir: {topology_dir} is not a folder (by default the captures are found"
            " relative to the trace, <data>/traces/philly/philly.csv -> <data>/topology)"
        )
    try:
        types = runner.load_machine_types(topology_dir, names)
    except runner.TopologyError as error:
        raise UsageError(f"--topology: {error}") from error
    machine_gpus = max(machine.size for machine in types)
    if args.nodes is not None:
        nodes = args.nodes
    else:
        gpus = args.cluster_gpus if args.cluster_gpus is not None else DEFAULT_NOMINAL_GPUS
        nodes = math.ceil(gpus / machine_gpus)
    if nodes < 1:
        raise UsageError("--nodes/--cluster-gpus: the cluster needs at least one machine")
    for name, value in (("--half-life-hours", args.half_life_hours),):
        if not value > 0:
            raise UsageError(f"{name}: must be > 0")
    if args.checkpoint_minutes < 0 or args.reclaim_interval <= 0:
        raise UsageError("--checkpoint-minutes must be >= 0 and --reclaim-interval > 0")

    if args.warmup_days < 0:
        raise UsageError("--warmup-days: must be >= 0")
    with console.status(f"reading {args.trace}"):
        jobs = trace.load(
            args.trace, start=start, end=end, warmup=datetime.timedelta(days=args.warmup_days)
        )
    measured = jobs.measured
    if not measured:
        raise UsageError(f"{args.trace}: no jobs submitted in the chosen window")
    capacity = sum(types[node % len(types)].size for node in range(nodes))
    weights = args.weights or args.trace.parent / VC_FILE
    specs = (
        tenants.load(weights, capacity=capacity, tenants=jobs.tenants)
        if args.weights or weights.is_file()
        else [engine.TenantSpec(name=name) for name in jobs.tenants]
    )
    scenario = runner.Scenario(
        trace=jobs,
        machine_types=tuple(types),
        nodes=nodes,
        tenants=tuple(specs),
        slowdowns=slowdown.load_profiles(profiles_dir, machine_gpus=machine_gpus),
        baseline_pods=runner.BaselinePods(args.baseline_pods),
        placement_mode=core_policy.PlacementMode(args.placement_mode),
        topology_rule=core_policy.TopologyRule(args.topology_rule),
        keep_islands=not args.no_island_keeping,
        settings=engine.Settings(checkpoint_interval=args.checkpoint_minutes * 60),
        half_life=args.half_life_hours * 3600,
        reclaim_interval=args.reclaim_interval,
    )
    window_start = jobs.origin + datetime.timedelta(seconds=jobs.measure_from)
    window = (
        f"{window_start:%Y-%m-%d %H:%M:%S} + {(jobs.span - jobs.measure_from) / 86400:.2f} days"
        f" of submissions (after {jobs.measure_from / 86400:g} days of unmeasured warm-up;"
        " runs continue until every job finishes)"
    )
    measured_hours = sum(job.gpus * job.duration for job in measured) / 3600
    console.print(
        f"{len(measured):,} jobs measured ({len(jobs.jobs) - len(measured):,} warm-up),"
        f" {measured_hours:,.0f} GPU-hours, {len(specs)} tenants;"
        f" {nodes} machines / {capacity} GPUs ({', '.join(names)})"
    )

    results = []
    with rich_progress.Progress(
        rich_progress.TextColumn("{task.description:>8}"),
        rich_progress.BarColumn(),
        rich_progress.MofNCompleteColumn(),
        rich_progress.TextColumn("jobs done"),
        rich_progress.TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    ) as bar:
        for name in policies:
            task = bar.add_task(name.value, total=len(jobs.jobs))

            def advance(done: int, task: rich_progress.TaskID = task) -> None:
                bar.update(task, completed=done)

            result = runner.run_policy(scenario, name, progress=advance)
            figures = result.figures
            results.append(figures)
            console.print(
                f"{name.value}: {figures.events:,} events in {figures.wall_seconds:.1f} s"
                f" = {figures.events / max(figures.wall_seconds, 1e-9):,.0f} events/s"
            )

    table = rich_table.Table(title=f"{len(measured):,} jobs on {capacity} GPUs")
    table.add_column("figure", no_wrap=True)
    for figures in results:
        table.add_column(figures.policy, justify="right")
    for label, cells in report.summary_rows(results):
        table.add_row(label, *cells)
    out = rich_console.Console()
    rich_console.Console(width=max(out.width, 120)).print(table)

    info = report.RunInfo(
        command="gpufair simulate " + shlex.join(sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "simulate"
        else "gpufair simulate (called from Python)",
        trace=str(args.trace),
        window=window,
        jobs=len(measured),
        gpu_hours=measured_hours,
        nodes=nodes,
        capacity=capacity,
        topologies=names,
        baseline_pods=args.baseline_pods,
        machine=_machine(),
        tenants=[
            {"tenant": s.name, "weight": s.weight, "guaranteed": s.guaranteed, "limit": s.limit}
            for s in specs
        ],
        assumptions={
            "half-life": f"{args.half_life_hours:g} h",
            "checkpoint every": f"{args.checkpoint_minutes:g} min",
            "reclaim interval": f"{args.reclaim_interval:g} s",
            "gpufair placement": f"{args.placement_mode}/{args.topology_rule}"
            + ("" if args.no_island_keeping else ", keeping islands for waiting demand"),
        },
    )
    written = report.write(args.output, info, results, plots=not args.no_plots)
    console.print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _machine() -> str:
    """CPU model, core count and Python version, for the report header."""
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, one process"
