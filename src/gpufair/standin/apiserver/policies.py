"""ValidatingAdmissionPolicies: the stand-in evaluates them with cel-python, as the API server
does in-tree (``admissionregistration.k8s.io/v1``, GA since Kubernetes 1.30).

gpufair's chart ships a policy that keeps GPU pods in tenant namespaces on the gpufair
scheduler even while the operator's webhook is down; kmock knows nothing of admission, so this
module does the API server's part for what e2e needs:

- policies matched through their bindings (``spec.policyName``); a binding's
  ``matchResources`` narrows by ``namespaceSelector``/``objectSelector``;
- ``matchConstraints``: ``resourceRules`` (groups, versions, operations, resources) and
  ``excludeResourceRules``, ``namespaceSelector``, ``objectSelector``; ``matchConditions``;
- ``variables`` (in order, each seeing the earlier ones), ``validations`` with ``message``,
  ``messageExpression`` and ``reason``; the CEL variables ``object``, ``oldObject``,
  ``request``, ``namespaceObject`` and ``variables`` (``params`` is always null: no
  ``paramKind`` support, a policy with one is refused as misconfigured, like a missing param);
- ``validationActions``: ``Deny`` refuses with the API server's text
  (``ValidatingAdmissionPolicy 'P' with binding 'B' denied request: MESSAGE``); ``Warn`` and
  ``Audit`` only log;
- ``failurePolicy``: an expression that does not compile or evaluate fails the request
  (``Fail``, the default) or is skipped (``Ignore``).

Not done: the ``authorizer`` variable, CEL cost limits, type checking against the schema.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import celpy

from gpufair.standin.apiserver import admission, errors, registry, store

logger = logging.getLogger("standin.policies")

GROUP = "admissionregistration.k8s.io"
_STATUS = {"Forbidden": 403, "Invalid": 422, "Unauthorized": 401, "RequestEntityTooLarge": 413}


class _ExpressionError(Exception):
    pass


def _evaluate(expression: str, activation: Mapping[str, Any]) -> Any:
    env = celpy.Environment()
    try:
        program = env.program(env.compile(expression))
        result = program.evaluate(activation)
    except Exception as exc:  # celpy raises its own error types, and TypeErrors
        raise _ExpressionError(f"expression {expression!r}: {exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        raise _ExpressionError(f"expression {expression!r}: {result}")
    return result


def validate(
    *,
    objects: store.Store,
    served: registry.Registry,
    spec: registry.ResourceSpec,
    operation: str,
    subresource: str | None,
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    request: Mapping[str, Any],
    namespace: Mapping[str, Any] | None,
) -> None:
    """Raise the API server's error when a bound policy denies the request."""
    if spec.group == GROUP:
        return
    resource = f"{spec.plural}/{subresource}" if subresource else spec.plural
    policies_spec = served.lookup(GROUP, "v1", "validatingadmissionpolicies")
    bindings_spec = served.lookup(GROUP, "v1", "validatingadmissionpolicybindings")
    if policies_spec is None or bindings_spec is None:
        return
    policies = {p["metadata"]["name"]: p for p in objects.items(policies_spec, None)}
    namespace_labels = dict(((namespace or {}).get("metadata") or {}).get("labels") or {})
    object_labels = (obj.get("metadata") or {}).get("labels") or {}
    for binding in objects.items(bindings_spec, None):
        policy = policies.get((binding.get("spec") or {}).get("policyName", ""))
        if policy is None:
            continue
        match = (binding.get("spec") or {}).get("matchResources") or {}
        if spec.namespaced and not admission.selector_matches(
            match.get("namespaceSelector"), namespace_labels
        ):
            continue
        if not admission.selector_matches(match.get("objectSelector"), object_labels):
            continue
        if not _policy_matches(policy, spec, resource, operation, namespace_labels, object_labels):
            continue
        apply_policy(policy, binding, obj=obj, old=old, request=request, namespace=namespace)


def _policy_matches(
    policy: Mapping[str, Any],
    spec: registry.ResourceSpec,
    resource: str,
    operation: str,
    namespace_labels: Mapping[str, str],
    object_labels: Mapping[str, str],
) -> bool:
    constraints = (policy.get("spec") or {}).get("matchConstraints") or {}
    if not any(
        _rule_matches(rule, spec, resource, operation)
        for rule in constraints.get("resourceRules") or []
    ):
        return False
    if any(
        _rule_matches(rule, spec, resource, operation)
        for rule in constraints.get("excludeResourceRules") or []
    ):
        return False
    if spec.namespaced and not admission.selector_matches(
        constraints.get("namespaceSelector"), namespace_labels
    ):
        return False
    return admission.selector_matches(constraints.get("objectSelector"), object_labels)


def _rule_matches(
    rule: Mapping[str, Any], spec: registry.ResourceSpec, resource: str, operation: str
) -> bool:
    return (
        admission.any_of(rule.get("apiGroups"), spec.group)
        and admission.any_of(rule.get("apiVersions"), spec.version)
        and admission.any_of(rule.get("operations"), operation)
        and any(
            admission.resource_matches(pattern, resource) for pattern in rule.get("resources") or []
        )
    )


def apply_policy(
    policy: Mapping[str, Any],
    binding: Mapping[str, Any],
    *,
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    request: Mapping[str, Any],
    namespace: Mapping[str, Any] | None,
) -> None:
    """Evaluate one bound policy over the request; raise the API server's error on ``Deny``."""
    body = policy.get("spec") or {}
    policy_name = policy["metadata"]["name"]
    binding_name = binding["metadata"]["name"]
    actions = (binding.get("spec") or {}).get("validationActions") or []
    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(dict(obj)),
        "oldObject": celpy.json_to_cel(dict(old) if old is not None else None),
        "request": celpy.json_to_cel(dict(request)),
        "namespaceObject": celpy.json_to_cel(dict(namespace) if namespace else None),
        "params": celpy.json_to_cel(None),
    }
    try:
        if body.get("paramKind"):
            raise _ExpressionError("paramKind is not supported by the stand-in")
        variables: dict[str, Any] = {}
        for variable in body.get("variables") or []:
            activation["variables"] = _cel_map(variables)
            variables[variable["name"]] = _evaluate(variable["expression"], activation)
        activation["variables"] = _cel_map(variables)
        for condition in body.get("matchConditions") or []:
            if not bool(_evaluate(condition["expression"], activation)):
                return
        failures = [
            _message(validation, activation)
            for validation in body.get("validations") or []
            if not bool(_evaluate(validation["expression"], activation))
        ]
    except _ExpressionError as exc:
        if body.get("failurePolicy", "Fail") == "Ignore":
            logger.warning("policy %s failed (ignored): %s", policy_name, exc)
            return
        failures = [(f"failed expression: {exc}", "Invalid")]
    if not failures:
        return
    message, reason = failures[0]
    text = (
        f"ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}'"
        f" denied request: {message}"
    )
    if "Deny" not in actions:
        logger.warning("%s (%s only)", text, ", ".join(actions) or "no action")
        return
    raise errors.StatusError(_STATUS.get(reason, 422), reason, text)


def _cel_map(values: Mapping[str, Any]) -> Any:
    return celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in values.items()})


def _message(validation: Mapping[str, Any], activation: Mapping[str, Any]) -> tuple[str, str]:
    reason = str(validation.get("reason") or "Invalid")
    expression = validation.get("messageExpression")
    if expression:
        try:
            return str(_evaluate(expression, activation)), reason
        except _ExpressionError:
            pass  # the API server falls back to message, then to the expression
    message = validation.get("message") or f"failed expression: {validation['expression']}"
    return str(message), reason
