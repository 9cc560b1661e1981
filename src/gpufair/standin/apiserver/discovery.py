"""Discovery documents, OpenAPI stubs and server-side ``Table`` output.

kmock 0.8 answers ``/api/v1`` with ``groupVersion: "/v1"`` (kopf and the official client then
mis-key the core group) and only lists groups for which it has seen objects or declarations; these
builders list every served resource, built-in or from a CRD, with the right group versions.

kubectl needs a little more than discovery:

- ``/openapi/v3`` and ``/openapi/v2``: kubectl's client-side validation and its strategic-merge
  patch metadata ask for them; the stand-in serves valid but empty documents, so kubectl falls
  back to its compiled-in schemas for built-in kinds and to JSON merge patch for custom ones.
- ``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``: ``kubectl get`` asks the server to
  render rows; custom resources use the CRD's ``additionalPrinterColumns`` (the JSONPath
  subset of :mod:`.jsonpath`: fields, indices, ``[*]``, filters such as
  ``[?(@.type=="Ready")]``), everything else shows ``NAME`` and ``AGE``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from gpufair.standin.apiserver import jsonpath, registry

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-gpufair-standin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(reg: registry.Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, vs) for g, vs in reg.group_versions().items() if g],
    }


def api_group(reg: registry.Registry, group: str) -> dict[str, Any] | None:
    versions = reg.group_versions().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def api_resource_list(reg: registry.Registry, group: str, version: str) -> dict[str, Any] | None:
    specs = reg.in_group_version(group, version)
    if not specs:
        return None
    resources: list[dict[str, Any]] = []
    for spec in specs:
        resources.append(spec.discovery())
        resources.extend(spec.subresource_discovery(sub) for sub in spec.subresources)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def root_paths(reg: registry.Registry) -> dict[str, Any]:
    paths = {
        "/api",
        "/api/v1",
        "/apis",
        "/healthz",
        "/livez",
        "/readyz",
        "/version",
        "/openapi/v2",
        "/openapi/v3",
    }
    for group, versions in reg.group_versions().items():
        if group:
            paths.add(f"/apis/{group}")
            paths.update(f"/apis/{group}/{v}" for v in versions)
    return {"paths": sorted(paths)}


def openapi_v2() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "gpufair stand-in", "version": SERVER_VERSION["gitVersion"]},
        "paths": {},
        "definitions": {},
    }


def openapi_v3_index(reg: registry.Registry) -> dict[str, Any]:
    """``/openapi/v3``: one document per group version (``api/v1``, ``apis/g/v``)."""
    paths = {}
    for group, versions in reg.group_versions().items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={reg.generation}"}
    return {"paths": paths}


def openapi_v3_group_version(reg: registry.Registry, key: str) -> dict[str, Any] | None:
    """``/openapi/v3/api/v1`` or ``/openapi/v3/apis/g/v``: PATCH operations, no schemas.

    kubectl reads these to learn whether the server validates fields itself (a ``fieldValidation``
    query parameter on the kind's PATCH operation); when it does, kubectl skips client-side
    validation, which would otherwise need full schemas. With no schemas in ``components``,
    kubectl computes apply patches from its compiled-in types (built-ins) or as JSON merge
    patches (custom resources), which is what the stand-in applies.
    """
    parts = key.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    specs = reg.in_group_version(group, version)
    if not specs:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    operations = {}
    for spec in specs:
        scope = "/namespaces/{namespace}" if spec.namespaced else ""
        operations[f"{prefix}{scope}/{spec.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{spec.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": group,
                    "version": version,
                    "kind": spec.kind,
                },
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": operations,
        "components": {"schemas": {}},
    }


def wants_table(accept: str | None) -> bool:
    """Whether the client asked for ``meta.k8s.io`` ``Table`` output first."""
    first = (accept or "").split(",")[0]
    return "as=Table" in first


def table(
    spec: registry.ResourceSpec,
    items: Sequence[Mapping[str, Any]],
    *,
    list_meta: Mapping[str, Any],
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` ``Table`` of ``items`` (one row each, objects as partial metadata)."""
    columns = [
        {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}
    ]
    extra = list(spec.printer_columns)
    if not extra:
        extra = [registry.PrinterColumn("Age", ".metadata.creationTimestamp", "date")]
    columns += [
        {
            "name": c.name,
            "type": c.type,
            "format": "",
            "description": c.description,
            "priority": c.priority,
        }
        for c in extra
    ]
    rows = []
    for item in items:
        metadata = item.get("metadata") or {}
        cells: list[Any] = [metadata.get("name", "")]
        cells += [_cell(item, column) for column in extra]
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": dict(metadata),
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta),
        "columnDefinitions": columns,
        "rows": rows,
    }


def _cell(obj: Mapping[str, Any], column: registry.PrinterColumn) -> Any:
    """The first value the column's JSONPath selects (kube-apiserver's rule), else empty."""
    try:
        value = jsonpath.first(obj, column.json_path)
    except jsonpath.JSONPathError:  # kube-apiserver would have refused the CRD
        return None
    if column.type == "date" and isinstance(value, str):
        return _age(value)
    return value


def _age(timestamp: str) -> str:
    try:
        then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC
        )
    except ValueError:
        return timestamp
    seconds = int((datetime.datetime.now(tz=datetime.UTC) - then).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
