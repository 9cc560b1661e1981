"""Is a rendered object one a Kubernetes 1.36 API server would accept? Offline, by schema.

Three sources of schemas, by the object's kind:

* built-in kinds: ``kubernetes-validate``'s strict schemas of Kubernetes 1.36 (generated from
  the API server's OpenAPI; strict means an unknown field is an error, as with
  ``kubectl apply``'s default ``--validate=strict``);
* custom kinds whose CRD the chart ships (``TenantQuota``, ``GPUPool``, ``ClusterKopfPeering``):
  the CRD's ``openAPIV3Schema``, with unknown fields refused where the schema does not
  preserve them (the API server's strict field validation);
* third-party kinds the chart renders but does not define (cert-manager's ``Certificate`` and
  ``Issuer``, prometheus-operator's ``ServiceMonitor`` and ``PrometheusRule``):
  ``kubernetes-validate`` has no schema for them and their CRDs are not on any reachable
  registry here, so :data:`THIRD_PARTY` holds a minimal hand-written schema per kind: the
  subset of the upstream v1 CRD's fields the chart uses (names and types copied from
  cert-manager v1.x and prometheus-operator v0.7x API references), no other field allowed.
  That catches a misspelt or misplaced field; it does not prove the full upstream validation.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

import jsonschema
import kubernetes_validate
from tests.helm import render

KUBERNETES_VERSION = "1.36.0"

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}


def _closed(properties: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required),
        "additionalProperties": False,
    }


_LABEL_SELECTOR = _closed(
    {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": _closed(
                {"key": _STRING, "operator": _STRING, "values": _STRINGS}, ("key", "operator")
            ),
        },
    }
)

THIRD_PARTY: dict[tuple[str, str], dict[str, Any]] = {
    ("cert-manager.io/v1", "Issuer"): _closed(
        {"selfSigned": _closed({"crlDistributionPoints": _STRINGS}), "ca": _closed({})}
    ),
    ("cert-manager.io/v1", "Certificate"): _closed(
        {
            "secretName": _STRING,
            "commonName": _STRING,
            "dnsNames": _STRINGS,
            "duration": _STRING,
            "renewBefore": _STRING,
            "isCA": {"type": "boolean"},
            "usages": _STRINGS,
            "issuerRef": _closed({"name": _STRING, "kind": _STRING, "group": _STRING}, ("name",)),
            "privateKey": _closed(
                {
                    "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                    "encoding": {"enum": ["PKCS1", "PKCS8"]},
                    "rotationPolicy": {"enum": ["Never", "Always"]},
                    "size": {"type": "integer"},
                }
            ),
        },
        ("secretName", "issuerRef"),
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _closed(
        {
            "jobLabel": _STRING,
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": _closed({"any": {"type": "boolean"}, "matchNames": _STRINGS}),
            "endpoints": {
                "type": "array",
                "items": _closed(
                    {
                        "port": _STRING,
                        "targetPort": {"type": ["string", "integer"]},
                        "path": _STRING,
                        "scheme": {"enum": ["http", "https"]},
                        "interval": _STRING,
                        "scrapeTimeout": _STRING,
                        "honorLabels": {"type": "boolean"},
                    }
                ),
            },
        },
        ("selector", "endpoints"),
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _closed(
        {
            "groups": {
                "type": "array",
                "items": _closed(
                    {
                        "name": _STRING,
                        "interval": _STRING,
                        "rules": {
                            "type": "array",
                            "items": _closed(
                                {
                                    "alert": _STRING,
                                    "record": _STRING,
                                    "expr": {"type": ["string", "integer"]},
                                    "for": _STRING,
                                    "keep_firing_for": _STRING,
                                    "labels": _STRING_MAP,
                                    "annotations": _STRING_MAP,
                                },
                                ("expr",),
                            ),
                        },
                    },
                    ("name", "rules"),
                ),
            }
        },
        ("groups",),
    ),
}
"""``spec`` schemas of the third-party kinds (see the module docstring)."""

_OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": _STRING,
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "required": ["name"],
}


def _strict_structural(schema: Any) -> Any:
    """A CRD's structural schema as JSON Schema with the API server's strict field validation:
    an object that lists its properties and does not preserve unknown fields refuses others."""
    if isinstance(schema, list):
        return [_strict_structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _strict_structural(value) for key, value in schema.items()}
    if schema.get("x-kubernetes-int-or-string"):
        converted.pop("type", None)
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable"):
        converted.pop("type", None)  # null or the declared type; the rest still applies
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        converted["additionalProperties"] = False
    return converted


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind)`` -> the served version's schema, for every CRD in ``crds/``."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in render.chart_crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served"):
                continue
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            properties = schema.setdefault("properties", {})
            properties.update(apiVersion=_STRING, kind=_STRING, metadata=_OBJECT_META)
            schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = (
                _strict_structural(schema)
            )
    return schemas


def _third_party_schema(spec_schema: Mapping[str, Any]) -> dict[str, Any]:
    return _closed(
        {"apiVersion": _STRING, "kind": _STRING, "metadata": _OBJECT_META, "spec": spec_schema},
        ("metadata", "spec"),
    )


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(root)"


def problems(obj: Mapping[str, Any]) -> list[str]:
    """What a Kubernetes 1.36 API server would refuse in ``obj``; empty when it is valid."""
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    schema = _crd_schemas().get(key)
    if schema is None and key in THIRD_PARTY:
        schema = _third_party_schema(THIRD_PARTY[key])
    if schema is not None:
        validator = jsonschema.Draft7Validator(schema)
        return [f"{_where(error)}: {error.message}" for error in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(dict(obj), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        return [error.message]
    except kubernetes_validate.ValidationError as error:
        return [f"{_where(error)}: {error.message}"]
    return []
