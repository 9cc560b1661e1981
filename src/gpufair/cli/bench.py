"""``gpufair bench extender``: per-pod cost of the extender's verbs on a synthetic large cluster.

Prints p50/p99 latency of filter, prioritize and bind (and the whole pod) in-process and over
HTTP through uvicorn, beside kube-scheduler's own budget of about 5.5 ms per pod. See
``docs/extender.md`` for recorded figures and :mod:`gpufair.bench.extender` for the method.

``gpufair bench operator``: p50/p99 of one operator planning pass (and per waiting pod) on a
synthetic large cluster; see ``docs/operator.md`` and :mod:`gpufair.bench.operator`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None
    if not counts or any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: node counts must be positive")
    return counts


def _counts_or_none(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else _counts(text)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("bench", help="run a benchmark", description=__doc__)
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    extender = targets.add_parser(
        "extender", help="extender verb latency on a synthetic cluster", description=__doc__
    )
    extender.add_argument(
        "--nodes",
        type=_counts,
        default=[1000, 5000, 10000],
        help="node counts (default 1000,5000,10000)",
    )
    extender.add_argument("--pods", type=int, default=200, help="measured pods per run (200)")
    extender.add_argument(
        "--runs", type=int, default=5, help="runs per figure; the median is shown (5)"
    )
    extender.add_argument(
        "--topology-dir",
        type=pathlib.Path,
        help="nvidia-smi topo -m captures (default ../shared/data/topology)",
    )
    extender.add_argument("--seed", type=int, default=1, help="random seed (1)")
    extender.add_argument(
        "--every-node",
        type=_counts_or_none,
        default=[5000],
        metavar="NODES",
        help="node counts at which filter is also sent every node, not only those "
        "kube-scheduler's own resource check passes (default 5000; 'none' for none)",
    )
    extender.add_argument(
        "--memory",
        type=_counts_or_none,
        default=[10000, 80000],
        metavar="NODES,PODS",
        help="nodes and GPU pods in the cache when measuring the extender's resident memory "
        "(default 10000,80000; 'none' to skip)",
    )
    extender.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        default="auto",
        help="uvicorn's HTTP parser (auto: httptools when installed, as `gpufair extender`)",
    )
    extender.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="uvicorn's event loop (auto: uvloop when installed, as `gpufair extender`)",
    )
    extender.add_argument("-o", "--output", choices=("table", "json"), default="table")
    extender.set_defaults(handler=run_extender)

    operator = targets.add_parser(
        "operator",
        help="operator planning-pass latency on a synthetic cluster",
        description="p50/p99 of one operator planning pass (plan.plan, with the operator's"
        " cache and watch events between passes) and per waiting pod, a cold pass, and the"
        " time from a TenantQuota change to its status patch.",
    )
    operator.add_argument(
        "--nodes", type=_counts, default=[1000, 5000], help="node counts, e.g. 1000,5000"
    )
    operator.add_argument("--waiting", type=int, default=200, help="gated pods (200)")
    operator.add_argument("--tenants", type=int, default=20, help="tenants (20)")
    operator.add_argument("--passes", type=int, default=20, help="measured passes per run (20)")
    operator.add_argument(
        "--events", type=int, default=20, help="watch events between two passes (20)"
    )
    operator.add_argument(
        "--quota-changes",
        type=int,
        default=5,
        help="TenantQuota edits timed to their status patch (5)",
    )
    operator.add_argument(
        "--topology-dir",
        type=pathlib.Path,
        help="nvidia-smi topo -m captures (default ../shared/data/topology)",
    )
    operator.add_argument("--seed", type=int, default=1, help="random seed (1)")
    operator.add_argument("-o", "--output", choices=("table", "json"), default="table")
    operator.set_defaults(handler=run_operator)


def run_extender(args: argparse.Namespace) -> int:
    from gpufair.bench import extender as bench

    for flag, value in (("--pods", args.pods), ("--runs", args.runs)):
        if value < 1:
            print(f"gpufair bench extender: {flag} must be at least 1", file=sys.stderr)
            return 2
    if args.memory and len(args.memory) != 2:
        print("gpufair bench extender: --memory takes NODES,PODS", file=sys.stderr)
        return 2
    try:
        report = bench.run(
            args.nodes,
            pods_per_run=args.pods,
            runs=args.runs,
            topology_dir=args.topology_dir,
            seed=args.seed,
            every_node=args.every_node,
            stack=bench.HttpStack(http=args.http, loop=args.loop),
            rss=(args.memory[0], args.memory[1]) if args.memory else None,
        )
    except FileNotFoundError as exc:
        print(f"gpufair bench extender: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.output == "json" else bench.render(report))
    return 0


def run_operator(args: argparse.Namespace) -> int:
    from gpufair.bench import operator as bench

    for flag, value, least in (
        ("--waiting", args.waiting, 0),
        ("--tenants", args.tenants, 1),
        ("--passes", args.passes, 1),
        ("--events", args.events, 0),
        ("--quota-changes", args.quota_changes, 1),
    ):
        if value < least:
            print(f"gpufair bench operator: {flag} must be at least {least}", file=sys.stderr)
            return 2
    try:
        report = bench.run(
            args.nodes,
            waiting=args.waiting,
            tenants=args.tenants,
            passes=args.passes,
            events=args.events,
            quota_changes=args.quota_changes,
            topology_dir=args.topology_dir,
            seed=args.seed,
        )
    except FileNotFoundError as exc:
        print(f"gpufair bench operator: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.output == "json" else bench.render(report))
    return 0
