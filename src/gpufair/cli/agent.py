"""``gpufair agent``: the node agent that publishes per-GPU topology as node labels.

Runs as a DaemonSet on GPU nodes (node name from the downward API, ``NODE_NAME``), as a Job
with ``--once``, or by hand with ``--dry-run`` to see the labels a machine would get. See
``docs/agent.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpufair.agent import discovery

DEFAULT_INTERVAL_SECONDS = 300.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "agent",
        help="discover this node's GPU topology and publish it as node labels",
        description=(
            "Discover this node's GPU topology (NVML, or `nvidia-smi topo -m`) and publish it "
            "as gpufair.dev/ node labels, re-checking on an interval and on SIGHUP."
        ),
    )
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        help="the Node to label (default: $NODE_NAME, set from the downward API)",
    )
    parser.add_argument(
        "--interval",
        type=_positive_seconds,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=f"seconds between checks (default: {DEFAULT_INTERVAL_SECONDS:g})",
    )
    parser.add_argument("--once", action="store_true", help="check and label once, then exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the labels this node would get and exit; needs no cluster",
    )
    parser.add_argument(
        "--from-file",
        type=pathlib.Path,
        metavar="TOPO.txt",
        help="read the topology from a saved `nvidia-smi topo -m` output instead of the GPUs",
    )
    parser.add_argument(
        "--source",
        choices=["auto", "nvml", "nvidia-smi"],
        default="auto",
        help="where to discover the topology: NVML, nvidia-smi, or NVML then nvidia-smi (auto)",
    )
    parser.add_argument(
        "--idle-without-gpu",
        action="store_true",
        help="on a node without an NVIDIA GPU, idle and keep re-checking instead of exiting 1",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log verbosity (default: info)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gpufair.agent import discovery, publisher, runner

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("gpufair").setLevel(args.log_level.upper())
    if args.log_level != "debug":  # a failed request is logged once, by the runner
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    if args.from_file is not None and args.source != "auto":
        return _usage("--from-file and --source exclude each other")
    discover = discovery.Discoverer(source=discovery.Source(args.source), from_file=args.from_file)
    if args.dry_run:
        return _dry_run(discover, args)
    if not args.node_name:
        return _usage("no node to label: pass --node-name or set NODE_NAME")
    try:
        target = publisher.NodeLabelPublisher(api=publisher.connect(), node_name=args.node_name)
    except publisher.PublishError as error:
        print(f"gpufair agent: {error}", file=sys.stderr)
        return int(runner.ExitCode.FAILURE)
    wakeup = runner.Wakeup()
    options = runner.Options(
        interval=args.interval, once=args.once, idle_without_gpu=args.idle_without_gpu
    )
    with wakeup.signals():
        return int(
            runner.run(discover=discover, publish=target.publish, options=options, wakeup=wakeup)
        )


def _dry_run(discover: discovery.Discoverer, args: argparse.Namespace) -> int:
    """Print ``key=value`` per label on stdout, what was found on stderr."""
    from gpufair.agent import discovery, runner
    from gpufair.core import labels

    try:
        found = discover()
    except discovery.NoGpuError as error:
        if args.idle_without_gpu:
            print(f"gpufair agent: no NVIDIA GPU ({error}); nothing to label", file=sys.stderr)
            return int(runner.ExitCode.OK)
        print(f"gpufair agent: no NVIDIA GPU on this node: {error}", file=sys.stderr)
        return int(runner.ExitCode.FAILURE)
    except discovery.TopologyFileError as error:
        print(f"gpufair agent: {error}", file=sys.stderr)
        return int(runner.ExitCode.USAGE)
    except discovery.DiscoveryError as error:
        print(f"gpufair agent: {error}", file=sys.stderr)
        return int(runner.ExitCode.FAILURE)
    for note in found.notes:
        print(f"gpufair agent: skipped a source: {note}", file=sys.stderr)
    source = args.from_file if found.source is discovery.Source.FILE else found.source
    print(
        f"gpufair agent: {len(found.topology.gpus)} GPUs from {source}; labels it would set:",
        file=sys.stderr,
    )
    for key, value in labels.to_labels(found.topology).items():
        print(f"{key}={value}")
    return int(runner.ExitCode.OK)


def _usage(message: str) -> int:
    print(f"gpufair agent: {message}", file=sys.stderr)
    return 2


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return seconds
