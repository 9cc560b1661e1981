"""Whether a node may take a pod, by the rules kube-scheduler's own filters apply.

Bind uses these to refuse what kube-scheduler would never ask (a node the pod's
``nodeSelector``, required node affinity or untolerated taints exclude), and the operator uses
:func:`node_admits` to find the pool a waiting pod can land in, since a pod's pool comes from
its selector and affinity, never from an annotation the tenant can write. The pod and node are
taken in their Kubernetes JSON form; each check returns ``None`` when the node is allowed, or a
short reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = Mapping[str, Any]

_FILTERING_EFFECTS = ("NoSchedule", "NoExecute")


def _spec(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _node_labels(node: Obj) -> Mapping[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def _node_name(node: Obj) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def selector_excludes(pod: Obj, labels: Mapping[str, str]) -> str | None:
    """The first ``nodeSelector`` entry the labels do not satisfy."""
    for key, value in (_spec(pod).get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"node does not match the pod's nodeSelector {key}={value}"
    return None


def _requirement_holds(requirement: Obj, value: str | None) -> bool:
    operator = requirement.get("operator")
    values: Sequence[str] = requirement.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def _term_holds(term: Obj, node: Obj) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no node, as in Kubernetes
    labels = _node_labels(node)
    if not all(_requirement_holds(r, labels.get(str(r.get("key")))) for r in expressions):
        return False
    return all(
        r.get("key") == "metadata.name" and _requirement_holds(r, _node_name(node)) for r in fields
    )


def required_terms(pod: Obj) -> tuple[Mapping[str, Any], ...] | None:
    """The ``nodeSelectorTerms`` of the pod's required node affinity (``None``: it has none)."""
    affinity = (_spec(pod).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms")
    return None if terms is None else tuple(terms)


def terms_admit(terms: Sequence[Obj] | None, node: Obj) -> bool:
    """Whether required node affinity terms (``None``: none) allow the node: any term holds."""
    return terms is None or any(_term_holds(term, node) for term in terms)


def affinity_excludes(pod: Obj, node: Obj) -> str | None:
    """Why the pod's required node affinity excludes the node (no term holds), if it does."""
    if terms_admit(required_terms(pod), node):
        return None
    return "node does not match the pod's required node affinity"


def _tolerates(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: Obj, node: Obj) -> str | None:
    """The first ``NoSchedule``/``NoExecute`` taint of the node that the pod does not tolerate."""
    tolerations = _spec(pod).get("tolerations") or []
    for taint in _spec(node).get("taints") or []:
        if taint.get("effect") not in _FILTERING_EFFECTS:
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return (
                f"node has taint {taint.get('key')}:{taint.get('effect')} the pod does not tolerate"
            )
    return None


def node_excludes(pod: Obj, node: Obj) -> str | None:
    """Why kube-scheduler's filters would keep the pod off the node, or ``None``."""
    return (
        selector_excludes(pod, _node_labels(node))
        or affinity_excludes(pod, node)
        or untolerated_taint(pod, node)
    )


def labels_admit(
    *,
    node_selector: Mapping[str, str],
    terms: Sequence[Obj] | None,
    node_name: str,
    labels: Mapping[str, str],
) -> bool:
    """Whether a pod's ``nodeSelector`` and required affinity terms allow a node with these
    labels (taints aside): how the operator finds the pool a waiting pod can land in."""
    if any(labels.get(key) != value for key, value in node_selector.items()):
        return False
    return terms_admit(terms, {"metadata": {"name": node_name, "labels": labels}})
