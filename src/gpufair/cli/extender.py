"""``gpufair extender``: run the kube-scheduler extender (FastAPI under uvicorn).

Flags override the ``GPUFAIR_*`` environment (:class:`gpufair.extender.settings.ExtenderSettings`).
The extender lists and watches nodes, pods, namespaces, TenantQuotas and GPUPools with the
credentials :mod:`gpufair.state.kubeconfig` chooses (``--kubeconfig``, ``$KUBECONFIG``,
in-cluster, ``~/.kube/config``) and is ready (``/readyz``) once every kind has been listed.
The verbs are ``POST /filter``, ``/prioritize``, ``/preempt`` and ``/bind``, on 127.0.0.1 unless
mutual TLS is configured (``--tls-*``) or ``--insecure`` is given; ``/healthz``, ``/readyz`` and
``/metrics`` are also on ``--probe-port``.
"""

from __future__ import annotations

import argparse
import logging

from gpufair.cli import checks, errors

LOG_LEVELS = ("debug", "info", "warning", "error")
_FLAGS = {
    "extender_host": "--host",
    "extender_port": "--port",
    "kubeconfig": "--kubeconfig",
    "staleness_seconds": "--staleness-bound",
    "log_level": "--log-level",
    "probe_host": "--probe-host",
    "probe_port": "--probe-port",
    "tls_cert_file": "--tls-cert-file",
    "tls_key_file": "--tls-key-file",
    "tls_client_ca_file": "--tls-client-ca-file",
    "insecure": "--insecure",
}
"""The flag that sets each settings field, to name it in an error."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "extender",
        help="run the scheduler extender: filter, prioritize, preempt, bind",
        description=__doc__,
    )
    parser.add_argument(
        "--host", dest="extender_host", help="address of the verbs (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, dest="extender_port", help="port (default 8888)")
    parser.add_argument("--probe-host", help="address of probes and /metrics (default 0.0.0.0)")
    parser.add_argument(
        "--probe-port",
        type=int,
        help="port of probes and /metrics, no verbs (default 0: none)",
    )
    parser.add_argument("--tls-cert-file", help="serving certificate (PEM): HTTPS")
    parser.add_argument("--tls-key-file", help="its private key (PEM)")
    parser.add_argument(
        "--tls-client-ca-file", help="CA (PEM) of kube-scheduler's client certificate (mTLS)"
    )
    parser.add_argument(
        "--insecure",
        action="store_const",
        const=True,
        help="allow plain HTTP on a non-loopback --host (anyone reaching it can bind pods)",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)"
    )
    parser.add_argument(
        "--staleness-bound",
        type=float,
        dest="staleness_seconds",
        help="seconds a watch may hear nothing from the API server before the extender stops"
        " being ready and answers every verb with an Error (default 90)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, help="debug, info, warning or error (default info)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    import pydantic

    from gpufair.extender import app, listener, settings

    overrides = {key: value for key in _FLAGS if (value := getattr(args, key, None)) is not None}
    try:
        config = settings.ExtenderSettings(**overrides)
    except pydantic.ValidationError as exc:
        raise errors.invalid_settings(exc, flags=_FLAGS) from None
    if config.kubeconfig is not None:
        checks.readable_file(config.kubeconfig, flag="--kubeconfig")
    try:
        listener.decide(config)
    except listener.ListenerError as exc:
        raise errors.UsageError(str(exc)) from None
    for path, flag in (
        (config.tls_cert_file, "--tls-cert-file"),
        (config.tls_key_file, "--tls-key-file"),
        (config.tls_client_ca_file, "--tls-client-ca-file"),
    ):
        if path is not None:
            checks.readable_file(path, flag=flag)
    checks.port_free(host=config.extender_host, port=config.extender_port, flag="--port")
    if config.probe_port:
        checks.port_free(host=config.probe_host, port=config.probe_port, flag="--probe-port")
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        application = app.create_app(config)
    except Exception as exc:  # no kubeconfig, unreachable API server configuration, ...
        raise _cannot_start(exc, kubeconfig=config.kubeconfig) from None
    serving = listener.Serving(config, application, app.create_probe_app(application))
    asyncio.run(serving.run())
    return 0


def _cannot_start(exc: Exception, *, kubeconfig: str | None) -> errors.CliError:
    if kubeconfig is not None:
        return errors.UsageError(f"--kubeconfig {kubeconfig}: not a usable kubeconfig ({exc})")
    return checks.no_cluster(exc)
