"""The Helm chart as Helm renders it (``tests/helm/render.py``: Helm's own engine embedded by
``helm_python``), and the component each rendered object belongs to. The RBAC proof
(``e2e/test_rbac_least_privilege.py``) checks the stand-in's record of each component's calls
against these objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpufair.standin.apiserver import identity

COMPONENT_LABEL = "app.kubernetes.io/component"
E2E_VALUES = {"agent": {"allocation": {"confirm": True, "proxy": True}}}
"""The install the e2e suite plays: the chart's defaults with the agent's GPU allocation on
(``e2e/test_scenario_allocation.py`` runs the proxy and the PodResources reconciler)."""


def render(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object of the chart installed as release ``gpufair`` in ``gpufair-system`` (the
    names the stand-in's identities use), with ``values`` over the chart's defaults."""
    from tests.helm import render as helm_render

    return helm_render.render_chart(
        values, name=identity.RELEASE_NAME, namespace=identity.RELEASE_NAMESPACE
    )


def component_of(obj: Mapping[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(COMPONENT_LABEL)
    return str(value) if value else None
