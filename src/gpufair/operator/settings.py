"""Operator settings: one pydantic-settings model read from ``GPUFAIR_*`` environment variables.

The CLI (``gpufair operator``) builds it from flags and the environment; the kopf startup handler
copies the relevant parts into kopf's own settings. Nothing else reads the environment.
"""

from __future__ import annotations

import pathlib

import pydantic
import pydantic_settings


class OperatorSettings(pydantic_settings.BaseSettings):
    """Everything the operator can be tuned with; each field is ``GPUFAIR_<NAME>`` in the env."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="GPUFAIR_", extra="ignore")

    tick_seconds: float = pydantic.Field(
        default=5.0,
        gt=0,
        description="Longest time between two reconcile passes (metering, admission, reclaim); "
        "node, pod and quota changes trigger a pass sooner.",
    )
    status_interval_seconds: float = pydantic.Field(
        default=30.0,
        ge=0,
        description="Longest time a quota's persisted usage may lag; a status whose other fields"
        " changed is written at once. Lagging loses nothing: metering resumes at the persisted"
        " asOf.",
    )
    debounce_seconds: float = pydantic.Field(
        default=0.5,
        ge=0,
        description="How long a pass waits after a change for further changes to batch them.",
    )
    half_life_seconds: float = pydantic.Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="Half-life of the decayed usage that orders admission (HPC fair-share style).",
    )
    eviction_retry_seconds: float = pydantic.Field(
        default=30.0,
        gt=0,
        description="Delay before retrying an eviction a PodDisruptionBudget refused (HTTP 429).",
    )
    metrics_port: int = pydantic.Field(
        default=8080, ge=0, le=65535, description="Port of /metrics; 0 disables it."
    )
    metrics_host: str = "0.0.0.0"
    peering: str | None = pydantic.Field(
        default="gpufair",
        description="KopfPeering name for leader election (two replicas never both act); "
        "empty or None runs standalone.",
    )
    priority: int = pydantic.Field(default=0, description="Peering priority of this replica.")
    namespaces: tuple[str, ...] = pydantic.Field(
        default=(),
        description="Namespaces whose pods the operator watches; empty means cluster-wide.",
    )
    dev: bool = pydantic.Field(
        default=False,
        description="Local run: no admission webhook server, standalone (no peering).",
    )
    webhook_host: str | None = pydantic.Field(
        default=None, description="Host name the API server uses to reach the webhook."
    )
    webhook_port: int = pydantic.Field(default=9443, ge=1, le=65535)
    webhook_certfile: str | None = None
    webhook_pkeyfile: str | None = None
    webhook_tunnel: bool = pydantic.Field(
        default=False,
        description="Serve the webhook through kopf's auto-tunnel (ngrok, or a local cluster's"
        " host address) instead of HTTPS with a certificate: for local experiments.",
    )
    webhook_managed: bool = pydantic.Field(
        default=False,
        description="Let kopf create and maintain the MutatingWebhookConfiguration itself "
        "(otherwise apply operator/webhook.yaml).",
    )
    trusted_namespace: str | None = pydantic.Field(
        default_factory=lambda: _own_namespace(),
        description="Namespace whose service accounts may write gpufair's pod annotations"
        " (the chart sets the release namespace); unset: the operator's own namespace when it"
        " runs in a pod, else nobody.",
    )
    trusted_users: tuple[str, ...] = pydantic.Field(
        default=(),
        description="More usernames that may write gpufair's pod annotations (the demo's"
        " stand-in admin, which runs every component); empty in a cluster.",
    )
    reporting_instance: str = pydantic.Field(
        default="gpufair-operator", description="Event source instance (the pod name in-cluster)."
    )

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def standalone(self) -> bool:
        return self.dev or not self.peering


_in_force: list[OperatorSettings] = []


def use_settings(settings: OperatorSettings) -> None:
    """Make ``settings`` what :func:`current` returns (the CLI, once, before kopf runs)."""
    _in_force[:] = [settings]


SERVICE_ACCOUNT_NAMESPACE = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _own_namespace() -> str | None:
    """The namespace of the pod the operator runs in (``None`` outside a pod)."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def current() -> OperatorSettings:
    """The settings in force: those the CLI set, or else read from the environment now."""
    if not _in_force:
        _in_force.append(OperatorSettings())
    return _in_force[0]
