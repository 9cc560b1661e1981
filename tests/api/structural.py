"""A small validator and defaulter for the structural OpenAPI subset the CRDs use.

It does what the API server does with a custom object before CEL runs, for the keywords
``gpufair.api.crdgen`` emits: apply defaults, reject unknown fields (strict field validation),
check types, required fields, enums, bounds, lengths, patterns and list uniqueness. The tests
use it to check that the examples are valid against the generated schema, not just the models.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def with_defaults(instance: Any, schema: dict[str, Any]) -> Any:
    """``instance`` with the schema's defaults applied (recursively, as the server does)."""
    instance = copy.deepcopy(instance)
    _default(instance, schema)
    return instance


def _default(instance: Any, schema: dict[str, Any]) -> None:
    if isinstance(instance, dict) and "properties" in schema:
        for name, child in schema["properties"].items():
            if name not in instance and "default" in child:
                instance[name] = copy.deepcopy(child["default"])
            if name in instance:
                _default(instance[name], child)
    elif isinstance(instance, list) and "items" in schema:
        for item in instance:
            _default(item, schema["items"])


def errors(instance: Any, schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Every violation of ``schema`` by ``instance``, as ``path: message``."""
    kind = schema["type"]
    allowed = _TYPES[kind]
    if not isinstance(instance, allowed) or (kind != "boolean" and isinstance(instance, bool)):
        yield f"{path}: must be of type {kind}"
        return
    if "enum" in schema and instance not in schema["enum"]:
        yield f"{path}: must be one of {schema['enum']}"
    if "minimum" in schema:
        if schema.get("exclusiveMinimum") and not instance > schema["minimum"]:
            yield f"{path}: must be > {schema['minimum']}"
        elif instance < schema["minimum"]:
            yield f"{path}: must be >= {schema['minimum']}"
    if "maxLength" in schema and len(instance) > schema["maxLength"]:
        yield f"{path}: too long"
    if "minLength" in schema and len(instance) < schema["minLength"]:
        yield f"{path}: too short"
    if "pattern" in schema and not re.search(schema["pattern"], instance):
        yield f"{path}: must match {schema['pattern']}"
    if kind == "object":
        yield from _object_errors(instance, schema, path)
    if kind == "array":
        yield from _array_errors(instance, schema, path)


def _object_errors(instance: dict[str, Any], schema: dict[str, Any], path: str) -> Iterator[str]:
    for name in schema.get("required", ()):
        if name not in instance:
            yield f"{path}.{name}: required"
    properties = schema.get("properties")
    for name, value in instance.items():
        if properties is not None:
            if name not in properties:
                yield f"{path}.{name}: unknown field"
            else:
                yield from errors(value, properties[name], f"{path}.{name}")
        elif "additionalProperties" in schema:
            yield from errors(value, schema["additionalProperties"], f"{path}.{name}")


def _array_errors(instance: list[Any], schema: dict[str, Any], path: str) -> Iterator[str]:
    if "maxItems" in schema and len(instance) > schema["maxItems"]:
        yield f"{path}: too many items"
    if "minItems" in schema and len(instance) < schema["minItems"]:
        yield f"{path}: too few items"
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" and len(set(instance)) != len(instance):
        yield f"{path}: duplicate values"
    if list_type == "map":
        keys = [
            tuple(item.get(k) for k in schema["x-kubernetes-list-map-keys"])
            for item in instance
            if isinstance(item, dict)
        ]
        if len(set(keys)) != len(keys):
            yield f"{path}: duplicate map keys"
    for index, item in enumerate(instance):
        yield from errors(item, schema["items"], f"{path}[{index}]")
