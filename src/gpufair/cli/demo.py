"""``gpufair demo``: a local stand-in cluster, three tenants and a burst of GPU pods, scheduled by
the real operator and extender (``make demo``; see ``docs/demo.md``)."""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys

DEMO_EXTRA_MODULES = ("httpx", "kmock")
"""What the demo extra installs and the stand-in cluster imports (`pip install 'gpufair[demo]'`)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the local demo cluster: three tenants, a burst of GPU pods",
        description=__doc__,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=75.0,
        metavar="SECONDS",
        help="length of the burst (default 75; the jobs' run times scale with it)",
    )
    parser.add_argument(
        "--no-live",
        dest="live",
        action="store_false",
        help="plain lines every few seconds instead of the live table (CI logs, pipes)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the summary, leave the cluster up for kubectl until Ctrl-C",
    )
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        help="keep logs and the kubeconfig here (default: a temp dir, removed at the end)",
    )
    parser.add_argument(
        "--topology-dir",
        type=pathlib.Path,
        metavar="DIR",
        help="the nvidia-smi topo -m captures of the demo's nodes (default:"
        " ../shared/data/topology beside a checkout; an installed wheel needs this flag)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the jobs' run times")
    parser.add_argument(
        "--summary-json", type=pathlib.Path, metavar="PATH", help="also write the summary as JSON"
    )
    parser.add_argument(
        "--no-webhook",
        dest="webhook",
        action="store_false",
        help="run the operator with --dev (no admission webhook); the demo creates its pods"
        " already gated (the default runs the webhook over HTTPS, which needs openssl)",
    )
    parser.add_argument(
        "--print-manifest",
        action="store_true",
        help="print the embedded pool and quota manifest and exit",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.print_manifest:
        from gpufair.demo import cluster

        print(cluster.MANIFEST, end="")
        return 0
    if args.duration <= 0:
        print("gpufair demo: --duration must be positive", file=sys.stderr)
        return 2

    missing = [name for name in DEMO_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"gpufair demo: needs the demo extra ({', '.join(missing)} missing):"
            " pip install 'gpufair[demo]' (in a checkout: make demo)",
            file=sys.stderr,
        )
        return 2

    from gpufair.demo import runner

    return runner.run(
        runner.Options(
            duration=args.duration,
            live=args.live,
            keep_running=args.keep_running,
            workdir=args.workdir,
            topology_dir=args.topology_dir,
            seed=args.seed,
            summary_json=args.summary_json,
            webhook=args.webhook,
        )
    )
