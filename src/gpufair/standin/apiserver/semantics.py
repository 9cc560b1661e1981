"""What the API server does to an object on create and update, beyond storing it.

These are the "strategies" of the real server (``PrepareForCreate``/``PrepareForUpdate``), reduced
to what gpufair's components and tests observe:

- create: a name (``generateName`` + 5 random characters), ``uid``, ``creationTimestamp``,
  ``generation: 1``, the namespace from the URL, ``apiVersion``/``kind`` filled in; pods get
  ``spec.schedulerName: default-scheduler`` when unset, requests defaulted from limits, and
  ``status.phase: Pending``; custom
  resources with a status subresource lose any ``status`` sent on create;
- update: identity fields (``uid``, ``creationTimestamp``, ``deletionTimestamp``, name, namespace)
  cannot change; with a status subresource the main resource ignores ``status`` and ``/status``
  changes nothing but ``status``; any change outside ``metadata`` and ``status`` bumps
  ``metadata.generation``.
"""

from __future__ import annotations

import copy
import datetime
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from gpufair.k8s import pods as k8s_pods
from gpufair.standin.apiserver import errors, registry

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as k8s.io/apimachinery/pkg/util/rand
_IDENTITY = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def now() -> str:
    """RFC 3339 in UTC with second precision, as ``metav1.Time`` serialises."""
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def prepare_create(
    spec: registry.ResourceSpec, body: Any, *, namespace: str | None
) -> dict[str, Any]:
    """The object to store for a create request (raises a ``StatusError`` for bad input)."""
    if not isinstance(body, Mapping):
        raise errors.bad_request("the request body must be a JSON object")
    obj = copy.deepcopy(dict(body))
    _check_type(spec, obj)
    metadata = obj.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise errors.bad_request("metadata must be an object")
    if not metadata.get("name") and metadata.get("generateName"):
        metadata["name"] = generated_name(metadata["generateName"])
    name = metadata.get("name")
    if not name:
        raise errors.invalid(
            kind=spec.kind,
            group=spec.group,
            name=None,
            why="metadata.name: Required value: name or generateName is required",
        )
    if len(name) > 253 or not _NAME.fullmatch(name):
        raise errors.invalid(
            kind=spec.kind,
            group=spec.group,
            name=name,
            why=f"metadata.name: Invalid value: "
            f"{name!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character",
        )
    if spec.namespaced:
        if metadata.get("namespace") and namespace and metadata["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        metadata["namespace"] = namespace or metadata.get("namespace")
    else:
        metadata.pop("namespace", None)
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        metadata.pop(field, None)
    metadata.pop("managedFields", None)
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = now()
    metadata["generation"] = 1
    obj = {"apiVersion": spec.api_version, "kind": spec.kind, **obj}
    obj["apiVersion"], obj["kind"] = spec.api_version, spec.kind

    if spec.custom and spec.has_status:
        obj.pop("status", None)
    if spec.group == "" and spec.kind == "Pod":
        pod_spec = obj.setdefault("spec", {})
        _default_requests_from_limits(pod_spec)
        pod_spec.setdefault("schedulerName", "default-scheduler")
        pod_spec.setdefault("priority", 0)
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(pod_spec)}
    if spec.group == "" and spec.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    return obj


def prepare_update(
    spec: registry.ResourceSpec,
    new: Any,
    old: Mapping[str, Any],
    *,
    subresource: str | None,
) -> dict[str, Any]:
    """The object to store for an update of ``old`` to ``new`` (PUT, or the result of a PATCH)."""
    if not isinstance(new, Mapping):
        raise errors.bad_request("the request body must be a JSON object")
    new = copy.deepcopy(dict(new))
    assert isinstance(new, dict)
    _check_type(spec, new)
    old_metadata = old["metadata"]
    metadata = new.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise errors.bad_request("metadata must be an object")
    if metadata.get("name", old_metadata["name"]) != old_metadata["name"]:
        raise errors.bad_request(
            f"the name of the object ({metadata.get('name')}) does not match the name on the URL "
            f"({old_metadata['name']})"
        )
    if (
        spec.namespaced
        and metadata.get("namespace", old_metadata["namespace"]) != old_metadata["namespace"]
    ):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if subresource == "status":
        # Only the status changes; everything else stays as stored.
        result = copy.deepcopy(dict(old))
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        return result

    metadata["name"] = old_metadata["name"]
    if spec.namespaced:
        metadata["namespace"] = old_metadata["namespace"]
    for field in _IDENTITY:
        if field in old_metadata:
            metadata[field] = old_metadata[field]
        else:
            metadata.pop(field, None)
    metadata.pop("managedFields", None)
    metadata["generation"] = old_metadata.get("generation", 1)
    new["apiVersion"] = spec.api_version
    new["kind"] = spec.kind
    if spec.has_status:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if _spec_part(new) != _spec_part(old):
        metadata["generation"] = int(metadata["generation"]) + 1
    return new


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _check_type(spec: registry.ResourceSpec, obj: Mapping[str, Any]) -> None:
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if kind and kind != spec.kind:
        raise errors.bad_request(
            f"the object kind {kind!r} does not match the resource {spec.plural!r} "
            f"(kind {spec.kind!r})"
        )
    if api_version and api_version != spec.api_version:
        raise errors.bad_request(
            f"the object apiVersion {api_version!r} does not match the URL's {spec.api_version!r}"
        )


def _default_requests_from_limits(pod_spec: dict[str, Any]) -> None:
    """API defaulting: a resource with a limit and no request gets the limit as its request."""
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key) or []:
            resources = container.get("resources") or {}
            limits = resources.get("limits") or {}
            if not limits:
                continue
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)
            container["resources"] = resources


def _qos_class(pod_spec: Mapping[str, Any]) -> str:
    containers = list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or [])
    requests_seen = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        requests_seen = requests_seen or bool(limits) or bool(requests)
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_seen else "BestEffort"


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """Whole extended-resource (``vendor/name``) requests of a pod, init containers and
    sidecars included, as kube-scheduler counts them (limits stand in for missing requests);
    a pod whose amounts cannot be read asks for nothing."""
    try:
        return k8s_pods.extended_requests(pod)
    except k8s_pods.PodError:
        return {}


def set_condition(obj: dict[str, Any], condition: Mapping[str, Any]) -> None:
    """Add or replace (by ``type``) a condition in ``status.conditions``."""
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    for index, existing in enumerate(conditions):
        if existing.get("type") == condition["type"]:
            if all(existing.get(k) == v for k, v in condition.items() if k != "lastTransitionTime"):
                return
            conditions[index] = dict(condition)
            return
    conditions.append(dict(condition))
