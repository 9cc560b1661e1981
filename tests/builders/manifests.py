"""Builders of GPUPool and TenantQuota objects in their wire (``kubectl apply``) form.

    tenant_quota("team-a", weight=2, pools=[pool_entry("h100", guaranteed=16, limit=32)])
    gpu_pool("h100", placement={"mode": "Spread"})
    yaml_stream(gpu_pool("h100"), tenant_quota("team-a"))

Everything not said is the smallest valid object: namespace ``<name>``, pool ``h100``.
"""

from __future__ import annotations

from typing import Any

import yaml

from gpufair.api import names


def pool_entry(name: str = "h100", **fields: Any) -> dict[str, Any]:
    """One ``spec.pools[]`` entry of a TenantQuota."""
    return {"name": name, **fields}


def tenant_quota(
    name: str = "team-a", *, pools: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    """A TenantQuota; ``spec`` keys are wire names (``namespaceSelector``, ``budget`` …)."""
    body: dict[str, Any] = {
        "namespaces": [name],
        "pools": [pool_entry()] if pools is None else pools,
    }
    body.update(spec)
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.TENANT_QUOTA_KIND,
        "metadata": {"name": name},
        "spec": body,
    }


def gpu_pool(name: str = "h100", **spec: Any) -> dict[str, Any]:
    """A GPUPool selecting nodes labelled ``gpufair.test/pool=<name>``."""
    body: dict[str, Any] = {"nodeSelector": {"matchLabels": {"gpufair.test/pool": name}}}
    body.update(spec)
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.GPU_POOL_KIND,
        "metadata": {"name": name},
        "spec": body,
    }


def yaml_stream(*objects: dict[str, Any]) -> str:
    """Objects as one multi-document YAML stream, as ``kubectl apply -f`` takes it."""
    return yaml.safe_dump_all(list(objects), sort_keys=False)
