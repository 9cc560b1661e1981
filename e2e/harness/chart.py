"""The Helm chart as Helm renders it (``helm_python``, Helm's own engine embedded), and the
component each rendered object belongs to. The RBAC proof (``e2e/test_rbac_least_privilege.py``)
checks the stand-in's record of each component's calls against these objects.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import yaml

from e2e.harness import processes
from e2e.standin import identity

CHART = processes.REPO_ROOT / "helm" / "gpufair"
COMPONENT_LABEL = "app.kubernetes.io/component"


def render(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object of the chart installed as release ``gpufair`` in ``gpufair-system`` (the
    names the stand-in's identities use), with ``values`` over the chart's defaults."""
    import helm_python

    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(
        dict(values or {}),
        name=identity.RELEASE_NAME,
        namespace=identity.RELEASE_NAMESPACE,
        is_install=True,
    )
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if pathlib.PurePosixPath(path).suffix in (".yaml", ".yml"):
            objects += [obj for obj in yaml.safe_load_all(text) if obj]
    return objects


def component_of(obj: Mapping[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(COMPONENT_LABEL)
    return str(value) if value else None
