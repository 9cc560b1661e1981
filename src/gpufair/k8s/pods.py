"""Facts about a Pod, read from its Kubernetes JSON (a dict as the API server or kube-scheduler
sends it): how many GPUs it asks for, which tenant owns it, which GPUs it was bound to.

Used by the extender's verbs and cache, and by the operator (metering, admission, eviction), so
both components read a pod the same way. Pure functions; nothing here talks to the API server.
"""

from __future__ import annotations

import fractions
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gpufair.api import names

PodDict = Mapping[str, Any]


class PodError(ValueError):
    """A pod whose GPU facts cannot be read; the message says which field and why."""


_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_MAX_QUANTITY_LENGTH = 64
"""Longer than any quantity the API server accepts (it keeps them within int64)."""
_MAX_EXPONENT = 30
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": fractions.Fraction(1, 10**9),
    "u": fractions.Fraction(1, 10**6),
    "m": fractions.Fraction(1, 10**3),
    "k": fractions.Fraction(10**3),
    "M": fractions.Fraction(10**6),
    "G": fractions.Fraction(10**9),
    "T": fractions.Fraction(10**12),
    "P": fractions.Fraction(10**15),
    "E": fractions.Fraction(10**18),
}


def parse_quantity(value: object) -> fractions.Fraction:
    """A Kubernetes resource quantity (``"4"``, ``"500m"``, ``"1Ki"``, ``"1e3"``, or a number)."""
    if isinstance(value, bool):
        raise PodError(f"quantity {value!r} is not a number")
    if isinstance(value, int):
        return fractions.Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PodError(f"quantity {value!r} is not a finite number")
        return fractions.Fraction(str(value))
    if not isinstance(value, str):
        raise PodError(f"quantity {value!r} is not a string")
    if len(value) > _MAX_QUANTITY_LENGTH:
        raise PodError(f"quantity {value[:20]!r}... is longer than {_MAX_QUANTITY_LENGTH}")
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise PodError(f"quantity {value!r} is not a Kubernetes quantity")
    number = fractions.Fraction(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if suffix:
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:  # 10**huge would take forever to compute
            raise PodError(f"quantity {value!r} is out of range")
        return number * fractions.Fraction(10) ** exponent
    return number


def _container_amount(container: Mapping[str, Any], resource: str) -> fractions.Fraction:
    """A container's request for ``resource``; an extended resource's request defaults to its
    limit (the API server's defaulting does the same, this also covers undefaulted objects)."""
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    if resource in requests:
        return parse_quantity(requests[resource])
    if resource in limits:
        return parse_quantity(limits[resource])
    return fractions.Fraction(0)


def resource_request(pod: PodDict, resource: str) -> fractions.Fraction:
    """How much of ``resource`` the pod needs while it runs, as kube-scheduler counts it.

    The sum over app containers and restartable init containers (sidecars), or the largest
    one-shot init container plus the sidecars started before it, whichever is larger; plus
    ``spec.overhead``. Requests count, and limits where no request is given.
    Raises :class:`PodError` for an unreadable amount.
    """
    spec = pod.get("spec") or {}
    try:
        total = sum(
            (_container_amount(c, resource) for c in spec.get("containers") or []),
            fractions.Fraction(0),
        )
        sidecars = fractions.Fraction(0)
        init_peak = fractions.Fraction(0)
        for container in spec.get("initContainers") or []:
            amount = _container_amount(container, resource)
            if container.get("restartPolicy") == "Always":
                sidecars += amount
                total += amount
            else:
                init_peak = max(init_peak, amount + sidecars)
        total = max(total, init_peak)
        overhead = spec.get("overhead") or {}
        if resource in overhead:
            total += parse_quantity(overhead[resource])
    except PodError as exc:
        raise PodError(f"pod {ref(pod)}: {resource}: {exc}") from None
    return total


def gpu_request(pod: PodDict, resource: str = names.DEFAULT_GPU_RESOURCE) -> int:
    """How many units of ``resource`` the pod needs while it runs (:func:`resource_request`).
    Raises :class:`PodError` for an unreadable or fractional amount."""
    total = resource_request(pod, resource)
    if total.denominator != 1 or total < 0:
        raise PodError(f"pod {ref(pod)} requests {float(total):g} {resource}: not a whole number")
    return int(total)


def container_requests(
    pod: PodDict, resource: str = names.DEFAULT_GPU_RESOURCE, *, init: bool = False
) -> list[tuple[str, int]]:
    """The app containers (``init``: the init containers) that request ``resource``, in spec
    order, which is kubelet's admission order, with their amounts.

    kubelet allocates devices container by container; the device-plugin proxy and the demo's
    kubelet stand-in both follow this order. Raises :class:`PodError` for an unreadable or
    fractional amount.
    """
    spec = pod.get("spec") or {}
    found = []
    for container in spec.get("initContainers" if init else "containers") or []:
        try:
            amount = _container_amount(container, resource)
        except PodError as exc:
            raise PodError(f"pod {ref(pod)}: {resource}: {exc}") from None
        if amount.denominator != 1:
            raise PodError(
                f"pod {ref(pod)} requests {float(amount):g} {resource}: not a whole number"
            )
        if amount > 0:
            found.append((str(container.get("name") or ""), int(amount)))
    return found


def request_shares(pod: PodDict, resources: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Per resource that several app containers request: their amounts in spec order (kubelet
    asks the device plugin once per container). Raises :class:`PodError`."""
    shares = {}
    for resource in resources:
        amounts = tuple(amount for _, amount in container_requests(pod, resource))
        if len(amounts) > 1:
            shares[resource] = amounts
    return shares


def gpu_request_any(pod: PodDict, resources: Iterable[str]) -> tuple[str, int] | None:
    """The first of ``resources`` the pod requests, with the amount; ``None`` when it asks none."""
    for resource in resources:
        amount = gpu_request(pod, resource)
        if amount > 0:
            return resource, amount
    return None


def extended_requests(pod: PodDict) -> dict[str, int]:
    """Every extended (domain-prefixed, e.g. ``nvidia.com/gpu``) resource the pod requests,
    with its whole amount as :func:`gpu_request` counts it. Raises :class:`PodError`."""
    spec = pod.get("spec") or {}
    resources: set[str] = set()
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for part in ("requests", "limits"):
            resources.update(((container.get("resources") or {}).get(part) or {}).keys())
    resources.update((spec.get("overhead") or {}).keys())
    amounts = {resource: gpu_request(pod, resource) for resource in resources if "/" in resource}
    return {resource: amount for resource, amount in amounts.items() if amount > 0}


def name(pod: PodDict) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def namespace(pod: PodDict) -> str:
    return str((pod.get("metadata") or {}).get("namespace", ""))


def uid(pod: PodDict) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


def ref(pod: PodDict) -> str:
    """``namespace/name``, as people write a pod in ``kubectl``."""
    return f"{namespace(pod)}/{name(pod)}"


def node_name(pod: PodDict) -> str | None:
    """The node the pod is bound to, or ``None`` while it is pending."""
    node = (pod.get("spec") or {}).get("nodeName")
    return str(node) if node else None


def phase(pod: PodDict) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminal(pod: PodDict) -> bool:
    """Succeeded or Failed: the pod holds no GPU any more (deleting pods still do)."""
    return phase(pod) in ("Succeeded", "Failed")


def scheduler_name(pod: PodDict) -> str:
    return str((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")


def priority(pod: PodDict) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return int(value) if isinstance(value, int) else 0


def is_deleting(pod: PodDict) -> bool:
    """Whether the pod's deletion was requested (``metadata.deletionTimestamp``): a bound pod
    keeps its GPUs until its grace period ends, but is leaving."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_gated(pod: PodDict) -> bool:
    """Whether gpufair's admission gate still holds the pod (``spec.schedulingGates``)."""
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any((gate or {}).get("name") == names.ADMISSION_GATE for gate in gates)


def node_selector(pod: PodDict) -> dict[str, str]:
    """The pod's ``spec.nodeSelector`` (labels a node must carry to run it)."""
    return {str(k): str(v) for k, v in ((pod.get("spec") or {}).get("nodeSelector") or {}).items()}


def annotations_of(pod: PodDict) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("annotations") or {}


def creation_timestamp(pod: PodDict) -> str | None:
    value = (pod.get("metadata") or {}).get("creationTimestamp")
    return str(value) if value else None


def start_time(pod: PodDict) -> str | None:
    """RFC 3339 time the kubelet started the pod (``status.startTime``)."""
    value = (pod.get("status") or {}).get("startTime")
    return str(value) if value else None


def format_gpus(gpus: Iterable[int]) -> str:
    """The ``gpufair.dev/gpus`` annotation value: sorted indices, comma-separated."""
    return ",".join(str(index) for index in sorted(gpus))


def parse_gpus(value: str) -> frozenset[int]:
    """Read a ``gpufair.dev/gpus`` value (``"0,1,2,3"``); raises :class:`PodError` if malformed."""
    indices: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit():
            raise PodError(f"{names.GPUS_ANNOTATION}={value!r}: {part!r} is not a GPU index")
        indices.append(int(part))
    if len(set(indices)) != len(indices):
        raise PodError(f"{names.GPUS_ANNOTATION}={value!r}: an index appears twice")
    return frozenset(indices)


def bound_gpus(pod: PodDict) -> frozenset[int] | None:
    """The pod's GPU indices: confirmed by the node agent if it has, else bind's choice.

    ``None`` when the pod carries neither annotation; raises :class:`PodError` for a malformed
    one.
    """
    confirmed = confirmed_gpus(pod)
    return confirmed if confirmed is not None else chosen_gpus(pod)


def chosen_gpus(pod: PodDict) -> frozenset[int] | None:
    """The GPU indices bind chose (``gpufair.dev/gpus``), whatever kubelet did."""
    return _gpus_annotation(pod, names.GPUS_ANNOTATION)


def confirmed_gpus(pod: PodDict) -> frozenset[int] | None:
    """The GPU indices kubelet allocated, as the agent read them from PodResources."""
    return _gpus_annotation(pod, names.GPUS_CONFIRMED_ANNOTATION)


def _gpus_annotation(pod: PodDict, key: str) -> frozenset[int] | None:
    value = annotations_of(pod).get(key)
    if value is None or value == "":
        return None
    return parse_gpus(str(value))


def bound_pool(pod: PodDict) -> str | None:
    value = annotations_of(pod).get(names.POOL_ANNOTATION)
    return str(value) if value else None


def without_tenant_label(labels: Mapping[str, str]) -> Mapping[str, str]:
    """Namespace labels as tenant selectors see them: without ``gpufair.dev/tenant``, which
    gpufair writes from ownership, so a label someone else sets can never claim a tenant."""
    if names.TENANT_LABEL not in labels:
        return labels
    return {key: value for key, value in labels.items() if key != names.TENANT_LABEL}
