"""Admission webhooks: the stand-in calls ``Mutating``/``ValidatingWebhookConfiguration`` URLs.

gpufair's operator serves a mutating webhook for pods (``schedulerName``, the admission gate, or
a denial with a readable reason when a tenant's policy says ``Reject``); on a real cluster the
API server calls it. kmock has no admission at all, so this module does the API server's part,
for what a local test needs:

- ``admissionregistration.k8s.io/v1`` configurations stored in the stand-in, each webhook with
  ``clientConfig.url`` (http or https; ``caBundle`` is used to verify https when given,
  otherwise the certificate is not verified: everything is on localhost). ``clientConfig.service``
  cannot be resolved here and counts as a call failure;
- ``rules`` (groups, versions, resources incl. ``pods/status``-style subresources and ``*``,
  operations ``CREATE``/``UPDATE``, scope), ``namespaceSelector`` and ``objectSelector``;
- ``AdmissionReview`` ``admission.k8s.io/v1``; mutating webhooks first (their ``JSONPatch``
  applied in order), then validating ones; a denial answers the client with the webhook's
  ``status`` (403 by default) and ``admission webhook "NAME" denied the request: MESSAGE``;
- ``failurePolicy`` (``Fail`` by default: 500; ``Ignore``: the request goes on) and
  ``timeoutSeconds`` (10 by default).

ValidatingAdmissionPolicies are evaluated after the webhooks (:mod:`.policies`).

Not done: DELETE and CONNECT admission, reinvocation, ``matchPolicy: Equivalent``, match
conditions (CEL), ``sideEffects``-based dry-run skipping (dry runs are not sent to webhooks).
"""

from __future__ import annotations

import base64
import contextvars
import copy
import json
import logging
import ssl
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import jsonpatch

from gpufair.standin.apiserver import errors, identity, policies, registry, store

logger = logging.getLogger("standin.admission")

CALLER: contextvars.ContextVar[identity.Identity] = contextvars.ContextVar(
    "standin_caller", default=identity.IDENTITIES[identity.ADMIN]
)
"""Who made the request being admitted (set per request by the server): the ``userInfo`` of
the AdmissionReview, as a real API server sends it, so a webhook can tell gpufair's service
accounts from a tenant."""

_KINDS = (
    ("mutatingwebhookconfigurations", True),
    ("validatingwebhookconfigurations", False),
)


async def admit(
    *,
    objects: store.Store,
    served: registry.Registry,
    spec: registry.ResourceSpec,
    operation: str,
    obj: dict[str, Any],
    old: Mapping[str, Any] | None,
    subresource: str | None,
) -> dict[str, Any]:
    """Run the matching webhooks over ``obj``; returns the (possibly mutated) object."""
    if spec.group == "admissionregistration.k8s.io":
        return obj  # webhooks never intercept their own configurations
    namespace_labels = _namespace_labels(objects, served, obj) if spec.namespaced else {}
    for plural, mutating in _KINDS:
        configs = served.lookup("admissionregistration.k8s.io", "v1", plural)
        if configs is None:
            continue
        for config in objects.items(configs, None):
            for webhook in config.get("webhooks") or []:
                if not _matches(webhook, spec, operation, subresource, obj, namespace_labels):
                    continue
                obj = await _call(
                    webhook,
                    spec=spec,
                    operation=operation,
                    obj=obj,
                    old=old,
                    subresource=subresource,
                    mutating=mutating,
                )
    # In-tree validating admission (ValidatingAdmissionPolicy) sees the mutated object.
    metadata = obj.get("metadata") or {}
    policies.validate(
        objects=objects,
        served=served,
        spec=spec,
        operation=operation,
        subresource=subresource,
        obj=obj,
        old=old,
        request={
            "operation": operation,
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace", ""),
            "userInfo": {"username": CALLER.get().user, "groups": list(CALLER.get().groups)},
        },
        namespace=_namespace_object(objects, served, obj) if spec.namespaced else None,
    )
    return obj


def _namespace_object(
    objects: store.Store, served: registry.Registry, obj: Mapping[str, Any]
) -> dict[str, Any] | None:
    namespaces = served.lookup("", "v1", "namespaces")
    name = (obj.get("metadata") or {}).get("namespace")
    if namespaces is None or not name:
        return None
    found = objects.get(namespaces, None, name)
    return dict(found) if found else None


def _namespace_labels(
    objects: store.Store, served: registry.Registry, obj: Mapping[str, Any]
) -> dict[str, str]:
    namespaces = served.lookup("", "v1", "namespaces")
    name = (obj.get("metadata") or {}).get("namespace")
    if namespaces is None or not name:
        return {}
    found = objects.get(namespaces, None, name)
    labels = dict((found.get("metadata") or {}).get("labels") or {})
    labels.setdefault("kubernetes.io/metadata.name", name)
    return labels


def _matches(
    webhook: Mapping[str, Any],
    spec: registry.ResourceSpec,
    operation: str,
    subresource: str | None,
    obj: Mapping[str, Any],
    namespace_labels: Mapping[str, str],
) -> bool:
    resource = f"{spec.plural}/{subresource}" if subresource else spec.plural
    scope = "Namespaced" if spec.namespaced else "Cluster"
    for rule in webhook.get("rules") or []:
        if not any_of(rule.get("apiGroups"), spec.group):
            continue
        if not any_of(rule.get("apiVersions"), spec.version):
            continue
        if not any_of(rule.get("operations"), operation):
            continue
        if rule.get("scope", "*") not in ("*", scope):
            continue
        resources = rule.get("resources") or []
        if not any(resource_matches(pattern, resource) for pattern in resources):
            continue
        break
    else:
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if not selector_matches(webhook.get("objectSelector"), labels):
        return False
    return not spec.namespaced or selector_matches(
        webhook.get("namespaceSelector"), namespace_labels
    )


def any_of(patterns: Any, value: str) -> bool:
    return bool(patterns) and ("*" in patterns or value in patterns)


def resource_matches(pattern: str, resource: str) -> bool:
    if pattern in ("*/*", resource):
        return True
    main, _, sub = resource.partition("/")
    if pattern == "*":
        return not sub
    pattern_main, _, pattern_sub = pattern.partition("/")
    return pattern_main in ("*", main) and pattern_sub == "*" and bool(sub)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


async def _call(
    webhook: Mapping[str, Any],
    *,
    spec: registry.ResourceSpec,
    operation: str,
    obj: dict[str, Any],
    old: Mapping[str, Any] | None,
    subresource: str | None,
    mutating: bool,
) -> dict[str, Any]:
    name = webhook.get("name", "")
    metadata = obj.get("metadata") or {}
    request_uid = str(uuid.uuid4())
    kind = {"group": spec.group, "version": spec.version, "kind": spec.kind}
    resource = {"group": spec.group, "version": spec.version, "resource": spec.plural}
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": request_uid,
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            **(
                {"subResource": subresource, "requestSubResource": subresource}
                if subresource
                else {}
            ),
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": CALLER.get().user, "groups": list(CALLER.get().groups)},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": {
                "apiVersion": "meta.k8s.io/v1",
                "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
            },
        },
    }
    try:
        answer = await _post(webhook, review)
        response = answer.get("response") or {}
        if response.get("uid") not in (None, request_uid):
            raise ValueError(f"response uid {response.get('uid')!r} != request uid")
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
        if webhook.get("failurePolicy", "Fail") == "Ignore":
            logger.warning("webhook %s failed (ignored): %r", name, exc)
            return obj
        raise errors.StatusError(
            500,
            errors.Reason.INTERNAL_ERROR,
            f'Internal error occurred: failed calling webhook "{name}": {exc!r}',
        ) from exc
    if not response.get("allowed", False):
        status = response.get("status") or {}
        message = status.get("message") or status.get("reason") or ""
        text = f'admission webhook "{name}" denied the request'
        raise errors.StatusError(
            int(status.get("code") or 403),
            status.get("reason") or "Forbidden",
            f"{text}: {message}" if message else f"{text} without explanation",
        )
    patch = response.get("patch")
    if not mutating or not patch:
        return obj
    try:
        operations = json.loads(base64.b64decode(patch))
        patched = jsonpatch.apply_patch(copy.deepcopy(obj), operations)
    except (ValueError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise errors.StatusError(
            500,
            errors.Reason.INTERNAL_ERROR,
            f'Internal error occurred: webhook "{name}" returned an unusable patch: {exc}',
        ) from exc
    if not isinstance(patched, dict):
        raise errors.StatusError(
            500,
            errors.Reason.INTERNAL_ERROR,
            f'webhook "{name}" patched the object into a non-object',
        )
    return patched


async def _post(webhook: Mapping[str, Any], review: Mapping[str, Any]) -> dict[str, Any]:
    client_config = webhook.get("clientConfig") or {}
    url = client_config.get("url")
    if not url:
        raise ValueError("only clientConfig.url is supported by the stand-in (no services)")
    ssl_context: ssl.SSLContext | bool = False
    if url.startswith("https://"):
        ssl_context = ssl.create_default_context()
        bundle = client_config.get("caBundle")
        if bundle:
            ssl_context.load_verify_locations(cadata=base64.b64decode(bundle).decode())
        else:  # localhost, self-signed: nothing to verify against
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
    timeout = aiohttp.ClientTimeout(total=float(webhook.get("timeoutSeconds") or 10))
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json=review, ssl=ssl_context) as answer,
    ):
        if answer.status != 200:
            raise ValueError(f"HTTP {answer.status}: {(await answer.text())[:300]}")
        result: dict[str, Any] = await answer.json(content_type=None)
        return result
