"""The four PATCH flavours of the API server, applied to a plain JSON object.

kmock 0.8 treats every PATCH body as a recursive dict merge (and a JSON-patch list as a crash), so
the stand-in dispatches on ``Content-Type`` like the real server:

- ``application/json-patch+json`` (RFC 6902, kopf's finalizer and ``test`` ops): via ``jsonpatch``;
  a failing ``test`` or a missing path is ``422 Invalid``, which kopf expects.
- ``application/merge-patch+json`` (RFC 7386): dicts merge, ``null`` deletes, lists replace.
- ``application/strategic-merge-patch+json`` (kubectl on built-in kinds): the merge patch plus
  merging of well-known lists by key (containers by ``name``, conditions by ``type``, …) and the
  ``$patch``/``$setElementOrder``/``$deleteFromPrimitiveList``/``$retainKeys`` directives. The key
  table is a fixed subset of the upstream Go struct tags, enough for what kubectl sends.
- ``application/apply-patch+yaml`` (server-side apply): the applied object is merged as a
  strategic patch. There are no managed fields, so a field removed from the applied manifest is
  not pruned (a documented gap; client-side ``kubectl apply`` prunes through its own annotation).
"""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Mapping
from typing import Any

import jsonpatch
import yaml


class PatchType(enum.StrEnum):
    JSON = "application/json-patch+json"
    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


class PatchError(ValueError):
    """The patch cannot be applied to the object (answered as 422 Invalid)."""


def patch_type(content_type: str | None) -> PatchType | None:
    media = (content_type or "").split(";")[0].strip().lower()
    try:
        return PatchType(media)
    except ValueError:
        return None


def decode(kind: PatchType, body: bytes) -> Any:
    """The patch document; YAML for apply (JSON is YAML), JSON for the others."""
    try:
        return yaml.safe_load(body) if kind is PatchType.APPLY else json.loads(body or b"null")
    except (ValueError, yaml.YAMLError) as exc:
        raise PatchError(f"the patch is not valid {kind.value}: {exc}") from exc


def apply(kind: PatchType, obj: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """A new object: ``obj`` with ``patch`` applied (``obj`` is not modified)."""
    base = copy.deepcopy(dict(obj))
    if kind is PatchType.JSON:
        if not isinstance(patch, list):
            raise PatchError("a JSON patch must be a list of operations")
        try:
            result = jsonpatch.apply_patch(base, patch, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise PatchError(f"the JSON patch could not be applied: {exc}") from exc
        if not isinstance(result, dict):
            raise PatchError("a JSON patch must leave an object")
        return result
    if not isinstance(patch, Mapping):
        raise PatchError(f"a {kind.value} patch must be an object")
    merged: dict[str, Any] = (
        merge(base, patch) if kind is PatchType.MERGE else strategic_merge(base, patch)
    )
    return merged


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


# Lists that strategic merge merges element-wise, by field name -> merge key (Go struct tags).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "readinessGates": "conditionType",
    "addresses": "type",
    "taints": "key",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# Primitive lists that strategic merge treats as sets (patchStrategy "merge").
MERGE_PRIMITIVE_LISTS = frozenset({"finalizers"})

_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge(target: Any, patch: Mapping[str, Any]) -> Any:
    """Strategic merge patch on dicts, with list merging for :data:`MERGE_KEYS`."""
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith(_ORDER) or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE) :]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_keyed_list(result.get(key) or [], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in MERGE_PRIMITIVE_LISTS:
            existing = list(result.get(key) or [])
            result[key] = existing + [v for v in value if v not in existing]
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_keyed_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    if any(isinstance(item, Mapping) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, Mapping) and "$patch" in i)]
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, Mapping) or merge_key not in item:
            result.append(copy.deepcopy(item))
            continue
        index = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, Mapping) and existing.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result
