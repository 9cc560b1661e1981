"""Immutable views of the objects the cache holds, as the extender's decisions need them.

A view keeps only the facts a decision reads (a pool's selector and placement policy, a
tenant's namespaces, limits and budget state, a node's free GPUs, a pod's GPUs), so snapshots
stay small and comparisons cheap. Built from Kubernetes JSON by :mod:`gpufair.state.cache`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gpufair.api import names
from gpufair.core import policy, topology
from gpufair.k8s import pods


class ViewError(ValueError):
    """An object the cache cannot use; the message names the object and the field."""


@dataclasses.dataclass(frozen=True, slots=True)
class PoolView:
    """A GPUPool: which nodes belong to it and how it places pods."""

    name: str
    node_selector: Mapping[str, Any] | None
    resource: str = names.DEFAULT_GPU_RESOURCE
    mode: policy.PlacementMode = policy.PlacementMode.PACK
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED


@dataclasses.dataclass(frozen=True, slots=True)
class TenantPool:
    """A tenant's entitlement in one pool (``spec.pools[]`` of its TenantQuota)."""

    guaranteed: int = 0
    limit: int | None = None
    lendable: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TenantView:
    """A TenantQuota: its namespaces, its pools, and whether its hard budget is used up."""

    name: str
    namespaces: pods.TenantNamespaces
    pools: Mapping[str, TenantPool]
    weight: float = 1.0
    reclaim: bool = True
    min_runtime_seconds: float = 0.0
    budget_exhausted: bool = False
    """A ``Hard`` budget whose ``BudgetExhausted`` condition the operator set to ``True``."""


@dataclasses.dataclass(frozen=True, slots=True)
class NodeView:
    """A GPU node as placement sees it.

    ``free`` already excludes GPUs of bound pods and of assumed (not yet confirmed) binds;
    ``hidden`` counts GPUs in use whose indices nobody recorded (pods bound without the
    ``gpufair.dev/gpus`` annotation, or allocatable below the labelled GPU count), so a
    request needs ``count <= len(free) - hidden``.
    """

    name: str
    pool: str | None
    topology: topology.NodeTopology
    topology_id: int
    """Equal for nodes with equal topology (an interned id, cheap to hash)."""
    allocatable: int
    schedulable: bool
    free: frozenset[int]
    hidden: int = 0
    problem: str | None = None
    """Why the node cannot take GPU pods at all (e.g. invalid topology labels)."""
    pods: tuple[PodView, ...] = ()
    """The GPU pods bound to the node (preempt looks its victims up here)."""
    shape_id: int = -1
    """Equal for nodes whose :meth:`shape` is equal (interned by the cache): every decision
    about a node depends only on its shape, so verbs judge each shape once per request."""

    def shape(self) -> tuple[object, ...]:
        """Everything a decision about this node depends on, except its name."""
        return (self.pool, self.topology_id, self.free, self.hidden, self.problem, self.schedulable)


@dataclasses.dataclass(frozen=True, slots=True)
class PodView:
    """A pod that asks for an extended resource (a GPU), bound or pending."""

    uid: str
    namespace: str
    name: str
    requests: Mapping[str, int]
    """Whole amounts of every domain-prefixed (extended) resource the pod requests."""
    node: str | None = None
    gpus: frozenset[int] | None = None
    """The indices recorded in ``gpufair.dev/gpus``; ``None`` when unrecorded."""
    priority: int = 0
    created: str | None = None
    started: str | None = None
    checkpoint: str | None = None
    terminal: bool = False
    problem: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def request(self, resource: str) -> int:
        return self.requests.get(resource, 0)


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ViewError(f"{_name(obj)}: spec is not an object")
    return spec


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def pool_view(obj: Mapping[str, Any]) -> PoolView:
    """A GPUPool object as a view; raises :class:`ViewError` naming the bad field."""
    spec = _spec(obj)
    placement = spec.get("placement") or {}
    try:
        mode = policy.PlacementMode(placement.get("mode") or policy.PlacementMode.PACK)
        rule = policy.TopologyRule(placement.get("topology") or policy.TopologyRule.PREFERRED)
    except ValueError as exc:
        raise ViewError(f"GPUPool {_name(obj)}: spec.placement: {exc}") from None
    return PoolView(
        name=_name(obj),
        node_selector=spec.get("nodeSelector"),
        resource=str(spec.get("resourceName") or names.DEFAULT_GPU_RESOURCE),
        mode=mode,
        rule=rule,
    )


def _whole(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ViewError(f"{where}: {value!r} is not a non-negative integer")
    return value


def tenant_view(obj: Mapping[str, Any]) -> TenantView:
    """A TenantQuota object as a view; raises :class:`ViewError` naming the bad field."""
    name = _name(obj)
    spec = _spec(obj)
    entries: dict[str, TenantPool] = {}
    for position, entry in enumerate(spec.get("pools") or []):
        where = f"TenantQuota {name}: spec.pools[{position}]"
        pool = entry.get("name")
        if not isinstance(pool, str) or not pool:
            raise ViewError(f"{where}.name: missing")
        entries[pool] = TenantPool(
            guaranteed=_whole(entry.get("guaranteed"), f"{where}.guaranteed") or 0,
            limit=_whole(entry.get("limit"), f"{where}.limit"),
            lendable=_whole(entry.get("lendable"), f"{where}.lendable"),
        )
    preemption = spec.get("preemption") or {}
    budget = spec.get("budget") or {}
    hard = (budget.get("enforcement") or policy.BudgetEnforcement.HARD) == "Hard"
    exhausted = any(
        condition.get("type") == "BudgetExhausted" and condition.get("status") == "True"
        for condition in ((obj.get("status") or {}).get("conditions") or [])
    )
    weight = spec.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ViewError(f"TenantQuota {name}: spec.weight: {weight!r} is not a positive number")
    return TenantView(
        name=name,
        namespaces=pods.TenantNamespaces(
            tenant=name,
            namespaces=frozenset(str(ns) for ns in spec.get("namespaces") or []),
            selector=spec.get("namespaceSelector"),
        ),
        pools=entries,
        weight=float(weight),
        reclaim=bool(preemption.get("reclaim", True)),
        min_runtime_seconds=float(preemption.get("minRuntimeSeconds") or 0),
        budget_exhausted=bool(budget) and hard and exhausted,
    )
