"""Extender settings: one pydantic-settings model read from ``GPUFAIR_*`` environment variables.

The CLI (``gpufair extender``) builds it from flags and the environment; routes receive it
through the cached :func:`get_settings` dependency, which tests override with
``app.dependency_overrides``. Nothing else reads the environment.
"""

from __future__ import annotations

import functools

import pydantic
import pydantic_settings


class ExtenderSettings(pydantic_settings.BaseSettings):
    """Everything the extender can be tuned with; each field is ``GPUFAIR_<NAME>`` in the env."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="GPUFAIR_", extra="ignore")

    extender_host: str = pydantic.Field(
        default="127.0.0.1",
        description="Address of the verbs: loopback (beside kube-scheduler in its pod) unless"
        " TLS with client certificates is configured, or --insecure.",
    )
    extender_port: int = pydantic.Field(
        default=8888, ge=0, le=65535, description="Port of the verbs (and /healthz, /readyz)."
    )
    probe_host: str = pydantic.Field(
        default="0.0.0.0", description="Address of the probes and /metrics (plain HTTP)."
    )
    probe_port: int = pydantic.Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz and /metrics only (no verbs; the chart uses"
        " 8889); 0: none.",
    )
    tls_cert_file: str | None = pydantic.Field(
        default=None, description="Serving certificate (PEM) of the verbs: HTTPS."
    )
    tls_key_file: str | None = pydantic.Field(default=None, description="Its private key (PEM).")
    tls_client_ca_file: str | None = pydantic.Field(
        default=None,
        description="CA bundle (PEM) that signs kube-scheduler's client certificate; every"
        " client must present one (mutual TLS).",
    )
    tls_reload_seconds: float = pydantic.Field(
        default=10.0, gt=0, description="How often the certificate files are checked for changes."
    )
    insecure: bool = pydantic.Field(
        default=False,
        description="Allow plain HTTP on a non-loopback address (anyone who reaches the port can"
        " bind pods): only for tests and trusted networks.",
    )
    staleness_seconds: float = pydantic.Field(
        default=90.0,
        gt=0,
        description="How long a watched kind may hear nothing from the API server (no event,"
        " no bookmark: one comes about every 60 s) before the cache counts as stale: /readyz"
        " answers 503 and the verbs answer an Error until the watch hears again.",
    )
    watch_timeout_seconds: int = pydantic.Field(
        default=300,
        gt=0,
        description="Server-side timeout of each watch request; the watch then resumes.",
    )
    relist_backoff_seconds: float = pydantic.Field(
        default=1.0, gt=0, description="Pause before re-listing after a watch error."
    )
    kubeconfig: str | None = pydantic.Field(
        default=None,
        description="Kubeconfig file; unset: $KUBECONFIG, then in-cluster, then ~/.kube/config.",
    )
    watch: bool = pydantic.Field(
        default=True,
        description="Feed the cache from the API server (off only for tests and benchmarks).",
    )
    log_level: str = pydantic.Field(
        default="info", description="Python logging level: debug, info, warning or error."
    )

    @pydantic.field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        if level.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return level.lower()


@functools.lru_cache(maxsize=1)
def get_settings() -> ExtenderSettings:
    """The process's settings, read once (a FastAPI dependency)."""
    return ExtenderSettings()
