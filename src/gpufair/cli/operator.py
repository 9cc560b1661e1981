"""``gpufair operator``: run the kopf operator (≈ ``kopf run -m gpufair.operator.handlers``).

Flags override the ``GPUFAIR_*`` environment (:class:`gpufair.operator.settings.OperatorSettings`);
``--dev`` runs a single local replica without the admission webhook (no TLS needed), e.g.
against a kubeconfig of a test cluster. ``/metrics`` is served on ``--metrics-port``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpufair.operator import settings as operator_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "operator",
        help="run the operator: quotas, pools, metering, admission, reclaim",
        description=__doc__,
    )
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch pods only in this namespace (repeatable; glob patterns as kopf takes them);"
        " default: cluster-wide",
    )
    parser.add_argument("--metrics-port", type=int, help="port of /metrics (0: off; default 8080)")
    parser.add_argument("--metrics-host", help="address /metrics listens on (default 0.0.0.0)")
    parser.add_argument("--peering", help="KopfPeering name for leader election (default gpufair)")
    parser.add_argument(
        "--standalone", action="store_true", help="no peering: this is the only replica"
    )
    parser.add_argument("--priority", type=int, help="peering priority of this replica")
    parser.add_argument(
        "--dev", action="store_true", help="local run: standalone, no admission webhook server"
    )
    parser.add_argument("--tick", type=float, dest="tick_seconds", help="seconds between passes")
    parser.add_argument(
        "--half-life", type=float, dest="half_life_seconds", help="usage half-life in seconds"
    )
    parser.add_argument("--webhook-host", help="host name the API server calls the webhook at")
    parser.add_argument("--webhook-port", type=int, help="webhook HTTPS port (default 9443)")
    parser.add_argument("--webhook-cert", dest="webhook_certfile", help="TLS certificate file")
    parser.add_argument("--webhook-key", dest="webhook_pkeyfile", help="TLS private key file")
    parser.add_argument(
        "--webhook-tunnel",
        action="store_true",
        help="serve the webhook through kopf's auto-tunnel (local experiments)",
    )
    parser.add_argument(
        "--webhook-managed",
        action="store_true",
        help="let kopf create and update the MutatingWebhookConfiguration",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.set_defaults(handler=run)


_OVERRIDES = (
    "metrics_port",
    "metrics_host",
    "peering",
    "priority",
    "tick_seconds",
    "half_life_seconds",
    "webhook_host",
    "webhook_port",
    "webhook_certfile",
    "webhook_pkeyfile",
)


def build_settings(args: argparse.Namespace) -> operator_settings.OperatorSettings:
    """The operator settings: environment first, flags on top."""
    from gpufair.operator import settings

    values: dict[str, Any] = {
        key: getattr(args, key) for key in _OVERRIDES if getattr(args, key) is not None
    }
    if args.namespaces:
        values["namespaces"] = tuple(args.namespaces)
    if args.dev:
        values["dev"] = True
    if args.webhook_tunnel:
        values["webhook_tunnel"] = True
    if args.webhook_managed:
        values["webhook_managed"] = True
    if args.standalone:
        values["peering"] = None
    return settings.OperatorSettings(**values)


def run(args: argparse.Namespace) -> int:
    import pydantic

    try:
        config = build_settings(args)
    except pydantic.ValidationError as error:
        print(f"gpufair operator: invalid settings: {error}", file=sys.stderr)
        return 2

    import kopf
    import kubernetes

    from gpufair.k8s import operator_io
    from gpufair.operator import handlers, metrics, settings

    try:  # fail fast and plainly; kopf would retry its startup handler every minute
        operator_io.load_config()
    except kubernetes.config.ConfigException as error:
        print(f"gpufair operator: cannot start: {error}", file=sys.stderr)
        return 1

    settings.use_settings(config)
    if not config.dev:
        from gpufair.operator import webhook_handlers

        del webhook_handlers
    del handlers
    kopf.configure(verbose=args.verbose)
    if not args.verbose:  # one INFO line per watch event is noise at fleet scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if config.metrics_port:
        metrics.serve(port=config.metrics_port, host=config.metrics_host)
    kopf.run(
        clusterwide=config.clusterwide,
        namespaces=config.namespaces,
        standalone=config.standalone,
        peering_name=config.peering or None,
        priority=config.priority,
        liveness_endpoint=args.liveness,
    )
    return 0
