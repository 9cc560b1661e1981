"""Checks a component's command runs before it starts, so a wrong flag fails in one line.

A server framework that finds its port taken or its kubeconfig unreadable only once it runs
(uvicorn, kopf) logs a traceback and may keep running half-started; these checks name the flag
instead and raise the errors of :mod:`gpufair.cli.errors`.
"""

from __future__ import annotations

import os
import socket

from gpufair.cli import errors


def port_free(*, host: str, port: int, flag: str) -> None:
    """Raise if ``host:port`` cannot be listened on now (``host`` "" means every address)."""
    if port == 0:  # the system picks a free one
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise errors.RuntimeFailureError(
                f"{flag} {port}: cannot listen on {host or '*'}:{port}"
                f" ({errors.os_error_text(error)}); pass another port"
            ) from None


def readable_file(path: str, *, flag: str) -> None:
    """Raise a usage error naming ``flag`` unless ``path`` is a readable file."""
    if not os.path.isfile(path):
        raise errors.UsageError(f"{flag} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise errors.UsageError(f"{flag} {path}: not readable by this user")


def no_cluster(reason: object) -> errors.CliError:
    """The error for a component that found no cluster credentials, saying where to put them.

    A ``$KUBECONFIG`` naming no existing file is a usage error (the likely cause); otherwise
    the client library's own ``reason`` is given with the ways to provide credentials.
    """
    named = os.environ.get("KUBECONFIG", "")
    paths = [path for path in named.split(os.pathsep) if path]
    if paths and not any(os.path.isfile(path) for path in paths):
        return errors.UsageError(
            f"KUBECONFIG={named}: no such file; point it at a kubeconfig or unset it"
        )
    return errors.RuntimeFailureError(
        f"cannot start: {reason} (set KUBECONFIG to a kubeconfig file, or run in a pod"
        " with a service account)"
    )
