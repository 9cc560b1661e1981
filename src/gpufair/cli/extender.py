"""``gpufair extender``: run the kube-scheduler extender (FastAPI under uvicorn).

Flags override the ``GPUFAIR_*`` environment (:class:`gpufair.extender.settings.ExtenderSettings`).
The extender lists and watches nodes, pods, namespaces, TenantQuotas and GPUPools with the
credentials :mod:`gpufair.state.kubeconfig` chooses (``--kubeconfig``, ``$KUBECONFIG``,
in-cluster, ``~/.kube/config``) and is ready (``/readyz``) once every kind has been listed.
The verbs are ``POST /filter``, ``/prioritize``, ``/preempt`` and ``/bind``; ``/metrics`` is
on the same port.
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
    "assume_ttl_seconds": "--assume-ttl",
    "log_level": "--log-level",
}
"""The flag that sets each settings field, to name it in an error."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "extender",
        help="run the scheduler extender: filter, prioritize, preempt, bind",
        description=__doc__,
    )
    parser.add_argument("--host", dest="extender_host", help="address to listen on (0.0.0.0)")
    parser.add_argument("--port", type=int, dest="extender_port", help="port (default 8888)")
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)"
    )
    parser.add_argument(
        "--assume-ttl",
        type=float,
        dest="assume_ttl_seconds",
        help="seconds a bind's GPUs stay taken without the watch confirming it (default 60)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, help="debug, info, warning or error (default info)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import pydantic
    import uvicorn

    from gpufair.extender import app, settings

    overrides = {
        key: value
        for key in (
            "extender_host",
            "extender_port",
            "kubeconfig",
            "assume_ttl_seconds",
            "log_level",
        )
        if (value := getattr(args, key, None)) is not None
    }
    try:
        config = settings.ExtenderSettings(**overrides)
    except pydantic.ValidationError as exc:
        raise errors.invalid_settings(exc, flags=_FLAGS) from None
    if config.kubeconfig is not None:
        checks.readable_file(config.kubeconfig, flag="--kubeconfig")
    checks.port_free(host=config.extender_host, port=config.extender_port, flag="--port")
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        application = app.create_app(config)
    except Exception as exc:  # no kubeconfig, unreachable API server configuration, ...
        raise _cannot_start(exc, kubeconfig=config.kubeconfig) from None
    uvicorn.run(
        application,
        host=config.extender_host,
        port=config.extender_port,
        log_level=config.log_level.lower(),
        access_log=False,
    )
    return 0


def _cannot_start(exc: Exception, *, kubeconfig: str | None) -> errors.CliError:
    if kubeconfig is not None:
        return errors.UsageError(f"--kubeconfig {kubeconfig}: not a usable kubeconfig ({exc})")
    return checks.no_cluster(exc)
