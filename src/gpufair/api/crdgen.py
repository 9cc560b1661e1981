"""CustomResourceDefinitions generated from the pydantic models: one source of truth for the API.

``gpufair crds`` writes what :func:`definitions` returns to ``crds/``; a test fails when the
committed YAML differs. Pydantic's JSON Schema (2020-12) is turned into the *structural*
OpenAPI v3 subset the API server accepts: references inlined, ``Optional`` expressed by leaving
the field out of ``required`` (null values are pruned by the server), no titles, no
``additionalProperties: false`` (the server prunes unknown fields instead), numeric
``exclusiveMinimum`` turned into OpenAPI's boolean form, defaults kept only where the API
server should apply them. CEL rules and list semantics come from the models' schema extras
(see :func:`gpufair.api.common.cel_rules`). Every list, map and string is bounded, and a CRD
whose CEL rules a real API server would estimate as too expensive is refused
(:mod:`gpufair.api.celcost`). Pure: dictionaries in, dictionaries out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

import pydantic
import pydantic.json_schema
from pydantic_core import core_schema

from gpufair.api import celcost, common, names, pool, quota

KINDS: Final[tuple[tuple[type[common.Resource], tuple[common.PrinterColumn, ...]], ...]] = (
    (pool.GPUPool, pool.PRINTER_COLUMNS),
    (quota.TenantQuota, quota.PRINTER_COLUMNS),
)
CATEGORY: Final = "gpufair"
"""``kubectl get gpufair`` lists every gpufair object."""

_DROPPED_KEYWORDS: Final = frozenset({"title", "$schema", "examples"})
_KEPT_KEYWORDS: Final = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "default",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "maxProperties",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
    }
)


DATE_TIME_MAX_LENGTH: Final = 64
"""``maxLength`` of ``date-time`` strings: RFC 3339 with nanoseconds and an offset is 35."""
API_VERSION_MAX_LENGTH: Final = 253 + 1 + 63
"""A group (DNS subdomain), a slash and a version (DNS label)."""
KIND_MAX_LENGTH: Final = 63


class UnsupportedSchemaError(ValueError):
    """A model uses a construct that has no structural OpenAPI form (a union, say)."""


class UnboundedSchemaError(UnsupportedSchemaError):
    """A list, map or string without ``maxItems``, ``maxProperties`` or ``maxLength``: the API
    server would estimate CEL rules over it as unbounded."""


class OverBudgetError(ValueError):
    """A CRD whose CEL rules a real API server would refuse as too expensive."""


class _Generator(pydantic.json_schema.GenerateJsonSchema):
    """Pydantic's generator, plus ``default: {}`` for sub-objects built by a default factory,
    so that the API server applies the nested defaults when the user leaves the object out."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> Any:
        json_schema = super().default_schema(schema)
        factory = schema.get("default_factory")
        if isinstance(factory, type) and issubclass(factory, pydantic.BaseModel):
            json_schema = dict(json_schema)
            json_schema["default"] = {}
        return json_schema


def object_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model``'s wire form."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
    definitions = raw.get("$defs", {})
    return _structural(raw, definitions, path=model.__name__)


def definition(
    resource: type[common.Resource], columns: tuple[common.PrinterColumn, ...]
) -> dict[str, Any]:
    """The CustomResourceDefinition of one cluster-scoped gpufair kind."""
    fields = resource.model_fields
    spec_model = _model_of(fields["spec"].annotation)
    status_model = _model_of(fields["status"].annotation)
    kind_doc = _description(resource.__doc__ or resource.KIND)
    schema = {
        "type": "object",
        "description": kind_doc,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "The API version of the object.",
                "maxLength": API_VERSION_MAX_LENGTH,
            },
            "kind": {
                "type": "string",
                "description": "The kind of the object.",
                "maxLength": KIND_MAX_LENGTH,
            },
            "metadata": {"type": "object"},
            "spec": object_schema(spec_model),
            "status": object_schema(status_model),
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.PLURAL}.{names.GROUP}"},
        "spec": {
            "group": names.GROUP,
            "scope": "Cluster",
            "names": {
                "kind": resource.KIND,
                "listKind": f"{resource.KIND}List",
                "plural": resource.PLURAL,
                "singular": resource.KIND.lower(),
                "shortNames": list(resource.SHORT_NAMES),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [column.to_schema() for column in columns],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }
    refused = celcost.crd_errors(crd)
    if refused:
        raise OverBudgetError(celcost.invalid_message(crd, refused))
    return crd


def definitions() -> list[dict[str, Any]]:
    """Every gpufair CRD, in a stable order."""
    return [definition(resource, columns) for resource, columns in KINDS]


def file_name(crd: Mapping[str, Any]) -> str:
    """The file a CRD is written to: ``<group>_<plural>.yaml``, as kubebuilder names them."""
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def _model_of(annotation: Any) -> type[pydantic.BaseModel]:
    """The model class in ``Model`` or ``Model | None``."""
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    raise UnsupportedSchemaError(f"{annotation!r} is not a model")


def _description(text: str) -> str:
    """A docstring as a schema description: paragraphs unwrapped, reST literals as `x`."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    unwrapped = [" ".join(line.strip() for line in p.splitlines()) for p in paragraphs]
    return "\n\n".join(unwrapped).replace("``", "`")


def _structural(
    node: Mapping[str, Any], definitions: Mapping[str, Any], *, path: str
) -> dict[str, Any]:
    node = _resolve(node, definitions, path=path)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS or key == "$defs":
            continue
        if key not in _KEPT_KEYWORDS:
            raise UnsupportedSchemaError(f"{path}: keyword {key!r} has no structural form")
        if key == "properties":
            result[key] = {
                name: _structural(child, definitions, path=f"{path}.{name}")
                for name, child in value.items()
            }
        elif key in ("items", "additionalProperties"):
            if value is False:
                continue  # the API server prunes unknown fields; `false` is not structural
            result[key] = _structural(value, definitions, path=f"{path}[]")
        elif key == "description":
            result[key] = _description(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            result[bound] = value
            result[key] = True
        else:
            result[key] = copy.deepcopy(value)
    if "default" in result and not _applies(result):
        del result["default"]
    _bound(result, path=path)
    return result


def _bound(schema: dict[str, Any], *, path: str) -> None:
    """Give enum and date-time strings the ``maxLength`` they imply; refuse any other list,
    map or string without a bound (a model field lacks ``max_length``)."""
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema:
        if "enum" in schema:
            schema["maxLength"] = max(len(str(value)) for value in schema["enum"])
        elif schema.get("format") == "date-time":
            schema["maxLength"] = DATE_TIME_MAX_LENGTH
        else:
            raise UnboundedSchemaError(f"{path}: string without max_length")
    if kind == "array" and "maxItems" not in schema:
        raise UnboundedSchemaError(f"{path}: list without max_length (maxItems)")
    if kind == "object" and "additionalProperties" in schema and "maxProperties" not in schema:
        raise UnboundedSchemaError(f"{path}: dict without max_length (maxProperties)")


def _resolve(
    node: Mapping[str, Any], definitions: Mapping[str, Any], *, path: str
) -> dict[str, Any]:
    """Inline ``$ref`` and single ``allOf``, and drop the null branch of ``X | None``; sibling
    keywords (the field's own description and default) override the referenced ones."""
    node = dict(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_resolve(target, definitions, path=path), **node}
    if "allOf" in node:
        (only,) = node.pop("allOf")
        node = {**_resolve(only, definitions, path=path), **node}
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise UnsupportedSchemaError(f"{path}: unions have no structural form")
        node = {**_resolve(branches[0], definitions, path=path), **node}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def _applies(schema: Mapping[str, Any]) -> bool:
    """Whether the server should apply this node's default: not for "unset" (null, empty
    list or map), but ``{}`` for objects whose fields have defaults of their own."""
    default = schema["default"]
    if default is None or default == []:
        return False
    if default == {}:
        properties = schema.get("properties", {})
        return any("default" in child for child in properties.values())
    return True
