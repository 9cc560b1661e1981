"""Kubernetes LabelSelector matching (``matchLabels`` and ``matchExpressions``), as the API
server evaluates it. GPUPool ``nodeSelector`` and TenantQuota ``namespaceSelector`` use it.

The selector is taken in its Kubernetes JSON form, so both a raw dict and a pydantic model
dumped ``by_alias`` work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SelectorError(ValueError):
    """A selector that is not a valid LabelSelector; the message names the offending part."""


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy ``selector``; an empty selector matches everything and
    ``None`` matches nothing (as in Kubernetes, where a null selector selects no objects)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        if not _expression_matches(expression, labels):
            return False
    return True


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = expression.get("key")
    operator = expression.get("operator")
    values = expression.get("values") or []
    if not isinstance(key, str):
        raise SelectorError(f"matchExpressions entry {dict(expression)!r} has no key")
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise SelectorError(f"matchExpressions operator {operator!r} for key {key!r} is not known")
