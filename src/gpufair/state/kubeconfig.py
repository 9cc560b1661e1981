"""Where every gpufair component finds its Kubernetes credentials: one documented precedence.

The operator, the extender and the node agent used to load credentials three ways (in-cluster
first; kubeconfig first with in-cluster as fallback; in-cluster first with ``$KUBECONFIG``
read by hand). They now all call :func:`client_configuration`, which follows the precedence
of controller-runtime's ``GetConfig`` (what Go operators do):

1. the ``--kubeconfig`` flag, when the component has one;
2. ``$KUBECONFIG`` (a list of files separated by ``os.pathsep``, merged as kubectl does);
3. the in-cluster service account (``KUBERNETES_SERVICE_HOST`` and the mounted token);
4. ``~/.kube/config``.

A source that is chosen but unusable (a flag or ``$KUBECONFIG`` naming no file) is an error
naming it, never a silent fall-through to the next source.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping

import kubernetes

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
HOME_KUBECONFIG = "~/.kube/config"


class KubeconfigError(RuntimeError):
    """No usable credentials; the message names the source that was tried and why it failed."""


class Source(enum.StrEnum):
    FLAG = "--kubeconfig"
    ENVIRONMENT = "$KUBECONFIG"
    IN_CLUSTER = "in-cluster service account"
    HOME = HOME_KUBECONFIG


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    """The credentials source chosen, and the kubeconfig path(s) for a file source."""

    source: Source
    path: str | None = None


def choose(
    flag: str | None,
    *,
    environ: Mapping[str, str],
    token_exists: bool,
    home_config: str | None,
) -> Choice:
    """The source the precedence picks (pure: the caller says what exists). ``home_config`` is
    the expanded ``~/.kube/config`` path when that file exists, else ``None``."""
    if flag:
        return Choice(Source.FLAG, flag)
    if environ.get("KUBECONFIG"):
        return Choice(Source.ENVIRONMENT, environ["KUBECONFIG"])
    if environ.get("KUBERNETES_SERVICE_HOST") and token_exists:
        return Choice(Source.IN_CLUSTER)
    if home_config is not None:
        return Choice(Source.HOME, home_config)
    raise KubeconfigError(
        "no Kubernetes credentials: no --kubeconfig, no $KUBECONFIG, not running in a pod"
        f" with a service account, and no {HOME_KUBECONFIG}"
    )


def current_choice(flag: str | None = None) -> Choice:
    """:func:`choose` for this process (its environment and files)."""
    home = os.path.expanduser(HOME_KUBECONFIG)
    return choose(
        flag,
        environ=os.environ,
        token_exists=os.path.isfile(SERVICE_ACCOUNT_TOKEN),
        home_config=home if os.path.isfile(home) else None,
    )


def client_configuration(flag: str | None = None) -> kubernetes.client.Configuration:
    """The client configuration from the first source of the precedence; raises
    :class:`KubeconfigError` naming the source when it is unusable."""
    choice = current_choice(flag)
    configuration = kubernetes.client.Configuration()
    try:
        if choice.source is Source.IN_CLUSTER:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            _require_files(choice)
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=choice.path, client_configuration=configuration
            )
    except (kubernetes.config.ConfigException, OSError, TypeError) as error:
        raise KubeconfigError(f"{_named(choice)}: {error}") from error
    return configuration


def use_as_default(flag: str | None = None) -> kubernetes.client.Configuration:
    """:func:`client_configuration`, also made the default of ``kubernetes.client`` (for code
    that builds ``ApiClient()`` without arguments)."""
    configuration = client_configuration(flag)
    kubernetes.client.Configuration.set_default(configuration)
    return configuration


def _require_files(choice: Choice) -> None:
    paths = [path for path in (choice.path or "").split(os.pathsep) if path]
    if not any(os.path.isfile(os.path.expanduser(path)) for path in paths):
        raise KubeconfigError(f"{_named(choice)}: no such file")


def _named(choice: Choice) -> str:
    if choice.source is Source.FLAG:
        return f"--kubeconfig {choice.path}"
    if choice.source is Source.ENVIRONMENT:
        return f"KUBECONFIG={choice.path}"
    return str(choice.source)
