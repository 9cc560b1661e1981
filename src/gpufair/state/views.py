"""Immutable views of the objects the cache holds, as the extender's decisions need them.

A view keeps only the facts a decision reads (a pool's selector and placement policy, a
tenant's namespaces, limits and budget state, a node's free GPUs, a pod's GPUs), so snapshots
stay small and comparisons cheap. Built from Kubernetes JSON by :mod:`gpufair.state.cache`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pydantic

from gpufair.api import common, names, pool, quota
from gpufair.core import policy, topology
from gpufair.state import rules


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
    namespaces: rules.TenantNamespaces
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
    waiting: frozenset[int] = frozenset()
    """Request sizes of gpufair pods bound here that the node's agent has not confirmed yet
    (only on nodes running the device-plugin proxy; see ``core.allocation.blocks_bind``)."""
    shape_id: int = -1
    """Equal for nodes whose :meth:`shape` is equal (interned by the cache): every decision
    about a node depends only on its shape, so verbs judge each shape once per request."""

    @property
    def usable(self) -> frozenset[int]:
        """The GPUs that can be handed out (:attr:`gpufair.state.rules.FreeGpus.usable`); the
        operator's free set of the node is this one."""
        return rules.FreeGpus(indices=self.free, hidden=self.hidden).usable

    def shape(self) -> tuple[object, ...]:
        """Everything a decision about this node depends on, except its name."""
        return node_shape(
            pool=self.pool,
            topology_id=self.topology_id,
            free=self.free,
            hidden=self.hidden,
            problem=self.problem,
            schedulable=self.schedulable,
            waiting=self.waiting,
        )


def node_shape(
    *,
    pool: str | None,
    topology_id: int,
    free: frozenset[int],
    hidden: int,
    problem: str | None,
    schedulable: bool,
    waiting: frozenset[int],
) -> tuple[object, ...]:
    """:meth:`NodeView.shape` from its parts (the cache interns it before building the view)."""
    return (pool, topology_id, free, hidden, problem, schedulable, waiting)


@dataclasses.dataclass(frozen=True, slots=True)
class PodView:
    """A pod that asks for an extended resource (a GPU), bound or pending."""

    uid: str
    namespace: str
    name: str
    requests: Mapping[str, int]
    """Whole amounts of every domain-prefixed (extended) resource the pod requests."""
    shares: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    """Per resource several app containers request: their amounts, in kubelet's admission
    order (``k8s.pods.request_shares``); the device-plugin proxy answers each separately."""
    node: str | None = None
    gpus: frozenset[int] | None = None
    """The indices recorded in ``gpufair.dev/gpus``; ``None`` when unrecorded."""
    priority: int = 0
    created: str | None = None
    started: str | None = None
    checkpoint: str | None = None
    terminal: bool = False
    problem: str | None = None
    confirmed: bool = False
    """Whether the node agent confirmed the GPUs from kubelet (``gpufair.dev/gpus-confirmed``)."""
    gated: bool = False
    """Whether gpufair's admission gate still holds the pod (it waits for admission)."""
    deleting: bool = False
    """Whether its deletion was requested: it holds its GPUs, but claims no fair share."""
    pool_hint: str | None = None
    """The pool bind recorded (``gpufair.dev/pool``); a bound pod's only, never a waiting one's."""
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    required_terms: tuple[Mapping[str, Any], ...] | None = None
    """Its required node affinity terms (``requiredDuringSchedulingIgnoredDuringExecution``)."""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def request(self, resource: str) -> int:
        return self.requests.get(resource, 0)


BUDGET_EXHAUSTED = "BudgetExhausted"
"""The TenantQuota condition the operator sets when the budget of the period is used up."""


def _invalid(kind: str, obj: Mapping[str, Any], exc: pydantic.ValidationError) -> ViewError:
    name = (obj.get("metadata") or {}).get("name", "?")
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return ViewError(f"{kind} {name}: {where}: {error['msg']}")


def pool_view(obj: Mapping[str, Any]) -> PoolView:
    """A GPUPool object as a view (validated by :class:`gpufair.api.pool.GPUPool`, so defaults
    and rules are the CRD's); raises :class:`ViewError` naming the bad field."""
    try:
        model = pool.GPUPool.model_validate(obj)
    except pydantic.ValidationError as exc:
        raise _invalid(names.GPU_POOL_KIND, obj, exc) from None
    return PoolView(
        name=model.name,
        node_selector=model.spec.node_selector.to_wire(),
        resource=model.spec.resource_name,
        mode=model.spec.placement.mode,
        rule=model.spec.placement.topology,
    )


def tenant_view(obj: Mapping[str, Any]) -> TenantView:
    """A TenantQuota object as a view (validated by :class:`gpufair.api.quota.TenantQuota`);
    raises :class:`ViewError` naming the bad field."""
    try:
        model = quota.TenantQuota.model_validate(obj)
    except pydantic.ValidationError as exc:
        raise _invalid(names.TENANT_QUOTA_KIND, obj, exc) from None
    spec = model.spec
    conditions = model.status.conditions if model.status is not None else []
    exhausted = any(
        condition.type == BUDGET_EXHAUSTED and condition.status == common.ConditionStatus.TRUE
        for condition in conditions
    )
    return TenantView(
        name=model.name,
        namespaces=rules.TenantNamespaces(
            tenant=model.name,
            namespaces=frozenset(spec.namespaces or ()),
            selector=spec.namespace_selector.to_wire()
            if spec.namespace_selector is not None
            else None,
        ),
        pools={
            entry.name: TenantPool(
                guaranteed=entry.guaranteed, limit=entry.limit, lendable=entry.lendable
            )
            for entry in spec.pools
        },
        weight=spec.weight,
        reclaim=spec.preemption.reclaim,
        min_runtime_seconds=float(spec.preemption.min_runtime_seconds),
        budget_exhausted=spec.budget is not None
        and spec.budget.enforcement is policy.BudgetEnforcement.HARD
        and exhausted,
    )
