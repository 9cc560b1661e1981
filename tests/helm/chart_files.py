"""Read the Helm chart's files without a helm binary (none is installable here).

A template's *skeleton* is the template with every Go template action removed: an action that
fills a whole line (``{{- if … }}``, ``{{- include … | nindent 4 }}``, ``{{- end }}``) drops
the line, an inline action (``port: {{ .Values.x }}``) becomes the placeholder
:data:`PLACEHOLDER`, and a raw string action (``{{`…`}}``, e.g. a Prometheus template) first
becomes its content. What remains is the chart's literal YAML, which must parse and which holds
the facts the tests compare (kinds, RBAC rules, the scheduler configuration, env names).
Both branches of an ``if``/``else`` stay in the skeleton, so templates keep alternatives apart
(different keys), which the chart does.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "gpufair"
TEMPLATES = CHART / "templates"
DASHBOARDS = CHART / "dashboards"

PLACEHOLDER = "TEMPLATED"

_ACTION = re.compile(r"\{\{-?.*?-?\}\}")
_COMMENT = re.compile(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", re.DOTALL)
_RAW = re.compile(r"\{\{-?\s*`([^`]*)`\s*-?\}\}")
"""A raw string action (``{{`{{ $labels.pool }}`}}``) outputs its content literally."""


def skeleton(text: str) -> str:
    """``text`` with its template actions removed (see the module docstring)."""
    text = _RAW.sub(lambda match: match.group(1), _COMMENT.sub("", text))
    lines = []
    for line in text.splitlines():
        if _ACTION.search(line) and not _ACTION.sub("", line).strip():
            continue
        lines.append(_ACTION.sub(PLACEHOLDER, line))
    return "\n".join(lines) + "\n"


def template_files() -> list[pathlib.Path]:
    """Every template that renders to YAML (not the helpers, not NOTES.txt)."""
    return sorted(TEMPLATES.glob("*.yaml"))


def documents(path: pathlib.Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a template's skeleton."""
    return [doc for doc in yaml.safe_load_all(skeleton(path.read_text())) if doc]


def all_documents() -> Iterator[tuple[pathlib.Path, dict[str, Any]]]:
    for path in template_files():
        for doc in documents(path):
            yield path, doc


def find(kind: str, *, file: str) -> list[dict[str, Any]]:
    """The documents of ``kind`` in ``templates/<file>``."""
    return [doc for doc in documents(TEMPLATES / file) if doc.get("kind") == kind]


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def container(workload: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The container ``name`` of a Deployment or DaemonSet skeleton."""
    for item in workload["spec"]["template"]["spec"]["containers"]:
        if item["name"] == name:
            found: dict[str, Any] = item
            return found
    raise AssertionError(f"no container {name!r} in {workload['metadata']['name']}")
