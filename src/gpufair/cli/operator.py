"""``gpufair operator``: run the kopf operator (≈ ``kopf run -m gpufair.operator.handlers``).

Flags override the ``GPUFAIR_*`` environment (:class:`gpufair.operator.settings.OperatorSettings`);
``--dev`` runs a single local replica without the admission webhook (no TLS needed), e.g.
against a kubeconfig of a test cluster. ``/metrics`` is served on ``--metrics-port``.

Before kopf starts, the settings, the webhook's certificate and port, and the API server are
checked, so that a wrong setup fails in one line naming the flag to fix rather than in kopf's
retries and tracebacks.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import ssl
from typing import TYPE_CHECKING, Any

from gpufair.cli import checks, errors

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


_FLAGS = {
    "namespaces": "--namespace",
    "metrics_port": "--metrics-port",
    "metrics_host": "--metrics-host",
    "peering": "--peering",
    "priority": "--priority",
    "tick_seconds": "--tick",
    "half_life_seconds": "--half-life",
    "webhook_host": "--webhook-host",
    "webhook_port": "--webhook-port",
    "webhook_certfile": "--webhook-cert",
    "webhook_pkeyfile": "--webhook-key",
}
"""The flag that sets each settings field, to name it in an error."""

NO_CERTIFICATE = (
    "the admission webhook needs a TLS certificate: pass --webhook-cert FILE and"
    " --webhook-key FILE (or GPUFAIR_WEBHOOK_CERTFILE and GPUFAIR_WEBHOOK_PKEYFILE),"
    " or --dev to run without the webhook"
)


def build_settings(args: argparse.Namespace) -> operator_settings.OperatorSettings:
    """The operator settings: environment first, flags on top.

    Raises :class:`errors.UsageError` naming the flag and variable of each invalid setting.
    """
    import pydantic

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
    try:
        return settings.OperatorSettings(**values)
    except pydantic.ValidationError as error:
        raise errors.invalid_settings(error, flags=_FLAGS) from None


def check_webhook_certificate(config: operator_settings.OperatorSettings) -> None:
    """Refuse to start a webhook kopf could not serve, before anything else starts.

    Without a certificate kopf self-signs one only if the optional ``certbuilder`` package is
    installed; a certificate and key are loaded here once, so a wrong path or a key that does
    not match its certificate is one line now rather than a traceback from kopf's server task.
    """
    if config.dev or config.webhook_tunnel:
        return
    cert, key = config.webhook_certfile, config.webhook_pkeyfile
    if cert is None and key is None:
        if importlib.util.find_spec("certbuilder") is None:
            raise errors.UsageError(NO_CERTIFICATE)
        return
    if cert is None or key is None:
        given, missing = (
            ("--webhook-cert", "--webhook-key")
            if key is None
            else (
                "--webhook-key",
                "--webhook-cert",
            )
        )
        raise errors.UsageError(f"{given} needs {missing} too: pass both, or --dev")
    checks.readable_file(cert, flag="--webhook-cert")
    checks.readable_file(key, flag="--webhook-key")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as error:
        raise errors.UsageError(
            f"--webhook-cert {cert} and --webhook-key {key}: not a PEM certificate and its"
            f" private key (ssl: {error.reason or error})"
        ) from None
    except OSError as error:
        raise errors.UsageError(
            f"--webhook-cert/--webhook-key: {errors.os_error_text(error)}"
        ) from None


def run(args: argparse.Namespace) -> int:
    config = build_settings(args)
    check_webhook_certificate(config)
    if not config.dev and not config.webhook_tunnel:
        checks.port_free(host="", port=config.webhook_port, flag="--webhook-port")

    import kopf

    from gpufair.operator import handlers, metrics, owners, settings
    from gpufair.state import kubeconfig

    try:  # fail fast and plainly; kopf would retry its startup handler every minute
        kubeconfig.use_as_default()
    except kubeconfig.KubeconfigError as error:
        raise checks.no_cluster(error) from None
    checks.api_server_answers()

    settings.use_settings(config)
    if not config.dev:
        from gpufair.operator import webhook_handlers

        del webhook_handlers
    kopf.configure(verbose=args.verbose)
    if not args.verbose:  # one INFO line per watch event is noise at fleet scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    handlers.watch_owners(owners.served(owners.api_lookup))  # after configure: logged once
    if config.metrics_port:
        try:
            metrics.serve(port=config.metrics_port, host=config.metrics_host)
        except OSError as error:
            raise errors.RuntimeFailureError(
                f"--metrics-port {config.metrics_port}: cannot listen on"
                f" {config.metrics_host}:{config.metrics_port} ({errors.os_error_text(error)});"
                " pass another port, or 0 to turn /metrics off"
            ) from None
    kopf.run(
        clusterwide=config.clusterwide,
        namespaces=config.namespaces,
        standalone=config.standalone,
        peering_name=config.peering or None,
        priority=config.priority,
        liveness_endpoint=args.liveness,
    )
    return 0
