"""The chart as Helm itself renders it, for tests that check what a cluster would receive.

``helm_python`` (PyPI ``helm-python-sdk``) embeds Helm v4's library, so rendering and linting
here run Helm's own template engine, values merging and ``values.schema.json`` validation,
offline and without a helm binary. Tests import :func:`render_chart` (parsed objects) or
:func:`render_files` (the text per template) instead of reading templates themselves.
"""

from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Mapping
from typing import Any

import helm_python
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "gpufair"
RELEASE_NAME = "gpufair"
RELEASE_NAMESPACE = "gpufair-system"
KUBE_VERSION = "v1.36.0"


@functools.cache
def _chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART))


def render_files(
    values: Mapping[str, Any] | None = None,
    *,
    name: str = RELEASE_NAME,
    namespace: str = RELEASE_NAMESPACE,
) -> dict[str, str]:
    """Each template's rendered text by its path (``gpufair/templates/x.yaml``), as for
    ``helm install <name> -n <namespace>`` with ``values`` over the chart's defaults.

    Raises Helm's own ``HelmValuesError``/``HelmRenderError`` for values the schema refuses or
    templates that ``fail``."""
    # A JSON round trip gives Helm a private copy and refuses values no values file could hold.
    private = json.loads(json.dumps(dict(values or {})))
    return _chart().render(private, name=name, namespace=namespace, is_install=True)


def render_chart(
    values: Mapping[str, Any] | None = None,
    *,
    name: str = RELEASE_NAME,
    namespace: str = RELEASE_NAMESPACE,
) -> list[dict[str, Any]]:
    """Every object the chart installs (templates only, not ``crds/``), parsed, in template
    order; ``values`` go over the chart's defaults as ``helm install -f`` would put them."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render_files(values, name=name, namespace=namespace).items()):
        if pathlib.PurePosixPath(path).suffix not in (".yaml", ".yml"):
            continue  # NOTES.txt
        objects += [obj for obj in yaml.safe_load_all(text) if obj]
    return objects


def chart_crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in ``crds/``, which Helm installs before the templates."""
    return [
        obj
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for obj in yaml.safe_load_all(path.read_text())
        if obj
    ]


def lint(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``helm lint --strict --kube-version v1.36.0`` of the chart with ``values``: Helm's report
    (``messages`` with ``severity`` 1 info, 2 warning, 3 error, and ``errors``)."""
    private = json.loads(json.dumps(dict(values or {})))
    return helm_python.lint(
        str(CHART), private, strict=True, namespace=RELEASE_NAMESPACE, kube_version=KUBE_VERSION
    )


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The objects of ``kind`` (and ``metadata.name``, if given) among ``objects``."""
    return [
        obj
        for obj in objects
        if obj.get("kind") == kind and (name is None or obj["metadata"]["name"] == name)
    ]
