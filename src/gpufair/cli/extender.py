"""``gpufair extender``: run the kube-scheduler extender (FastAPI under uvicorn).

Flags override the ``GPUFAIR_*`` environment (:class:`gpufair.extender.settings.ExtenderSettings`).
The extender lists and watches nodes, pods, namespaces, TenantQuotas and GPUPools through the
kubeconfig (``--kubeconfig``, ``$KUBECONFIG`` or the in-cluster service account) and is ready
(``/readyz``) once every kind has been listed. The verbs are ``POST /filter``, ``/prioritize``,
``/preempt`` and ``/bind``; ``/metrics`` is on the same port.
"""

from __future__ import annotations

import argparse
import logging
import sys


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "extender",
        help="run the scheduler extender: filter, prioritize, preempt, bind",
        description=__doc__,
    )
    parser.add_argument("--host", dest="extender_host", help="address to listen on (0.0.0.0)")
    parser.add_argument("--port", type=int, dest="extender_port", help="port (default 8888)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--assume-ttl",
        type=float,
        dest="assume_ttl_seconds",
        help="seconds a bind's GPUs stay taken without the watch confirming it (default 60)",
    )
    parser.add_argument("--log-level", help="debug, info, warning or error (default info)")
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
        print(f"gpufair extender: invalid setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        application = app.create_app(config)
    except Exception as exc:  # no kubeconfig, unreachable API server configuration, ...
        print(f"gpufair extender: cannot start: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(
        application,
        host=config.extender_host,
        port=config.extender_port,
        log_level=config.log_level.lower(),
        access_log=False,
    )
    return 0
