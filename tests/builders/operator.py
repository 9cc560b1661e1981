"""Builders for the operator's snapshot values, and a small simulated cluster that applies plans.

    tenant("a").namespaces("team-a").pool("h100", guaranteed=4).build()
    pod("team-a/p1").gpus(2).bound("n1", at=10.0).build()

:class:`SimCluster` plays the parts the operator does not: it binds admitted pods to GPUs (as
the extender would, with ``core.placement``), lets evicted pods terminate and be recreated by
their "job controller" (behind the gate again), and persists each planned status by writing and
re-reading it as Kubernetes JSON, exactly as a restarted operator would read it back.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from typing import Any, Self

from tests.builders import topology as topo_builders

from gpufair.core import placement, policy, topology, usage
from gpufair.operator import intents, objects, plan
from gpufair.state import groups, model, scheduling

POOL = "h100"
POOL_LABEL = "gpufair.test/pool"
HOUR = 3600.0


def node(
    name: str,
    *,
    gpus: int = 8,
    pool: str = POOL,
    node_topology: topology.NodeTopology | None = None,
    schedulable: bool = True,
    labelled: bool = True,
) -> model.Node:
    """An 8-GPU DGX-1-like node (two NVLink islands of four) in pool ``pool``."""
    shape = node_topology or (topo_builders.dgx1() if gpus == 8 else topo_builders.node(gpus))
    return model.Node(
        name=name,
        labels={POOL_LABEL: pool},
        allocatable={"nvidia.com/gpu": gpus, "cpu": 64},
        schedulable=schedulable,
        topology=shape if labelled else None,
    )


def gpu_pool(name: str = POOL, **changes: Any) -> model.Pool:
    return dataclasses.replace(
        model.Pool(name=name, selector={"matchLabels": {POOL_LABEL: name}}), **changes
    )


@dataclasses.dataclass
class TenantBuilder:
    name: str
    _changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    _pools: list[model.TenantPool] = dataclasses.field(default_factory=list)

    def namespaces(self, *names: str) -> Self:
        self._changes["namespaces"] = frozenset(names)
        return self

    def weight(self, value: float) -> Self:
        self._changes["weight"] = value
        return self

    def pool(
        self,
        name: str = POOL,
        *,
        guaranteed: int = 0,
        limit: int | None = None,
        lendable: int | None = None,
    ) -> Self:
        self._pools.append(
            model.TenantPool(pool=name, guaranteed=guaranteed, limit=limit, lendable=lendable)
        )
        return self

    def budget(
        self,
        gpu_hours: float,
        *,
        period: float = 720 * HOUR,
        enforcement: policy.BudgetEnforcement = policy.BudgetEnforcement.HARD,
    ) -> Self:
        self._changes["budget"] = model.Budget(
            gpu_hours=gpu_hours, period_seconds=period, enforcement=enforcement
        )
        return self

    def on_limit(self, value: policy.OnLimit) -> Self:
        self._changes["on_limit"] = value
        return self

    def min_runtime(self, seconds: float) -> Self:
        self._changes["min_runtime_seconds"] = seconds
        return self

    def invalid(self, reason: str) -> Self:
        self._changes["invalid"] = reason
        return self

    def build(self) -> model.Tenant:
        namespaces = self._changes.pop("namespaces", frozenset({self.name}))
        pools = tuple(self._pools) or (model.TenantPool(pool=POOL),)
        return model.Tenant(name=self.name, namespaces=namespaces, pools=pools, **self._changes)


def tenant(name: str) -> TenantBuilder:
    """Tenant ``name`` owning the namespace of the same name, with quota in pool ``h100``."""
    return TenantBuilder(name)


_uids = itertools.count(1)


@dataclasses.dataclass
class PodBuilder:
    namespace: str
    name: str
    _gpus: int = 1
    _state: model.PodState = model.PodState.GATED
    _created: float = 0.0
    _node: str | None = None
    _started: float | None = None
    _indices: frozenset[int] | None = None
    _priority: int = 0
    _fields: dict[str, Any] = dataclasses.field(default_factory=dict)

    def spec(self, **fields: Any) -> Self:
        """Set :class:`model.GpuPod` fields directly (``node_selector``, ``tolerations``,
        ``required_terms``, ``cpu_millis``, ``memory_bytes``...)."""
        self._fields.update(fields)
        return self

    def gpus(self, count: int) -> Self:
        self._gpus = count
        return self

    def group(self, name: str, size: int) -> Self:
        """A member of the gpufair pod group ``name`` of ``size`` pods (in the pod's namespace)."""
        key = groups.GroupKey(self.namespace, groups.Source.GPUFAIR, name)
        self._fields["group"] = groups.Membership(key=key, size=size)
        return self

    def created(self, at: float) -> Self:
        self._created = at
        return self

    def priority(self, value: int) -> Self:
        self._priority = value
        return self

    def bound(
        self, node_name: str, *, at: float = 0.0, indices: Iterable[int] | None = None
    ) -> Self:
        self._state = model.PodState.BOUND
        self._node = node_name
        self._started = at
        self._indices = frozenset(indices) if indices is not None else None
        return self

    def pending(self) -> Self:
        self._state = model.PodState.PENDING
        return self

    def build(self) -> model.GpuPod:
        return model.GpuPod(
            namespace=self.namespace,
            name=self.name,
            uid=f"uid-{self.namespace}-{self.name}-{next(_uids)}",
            gpus=self._gpus,
            state=self._state,
            created_at=self._created,
            node=self._node,
            started_at=self._started,
            gpu_indices=self._indices,
            priority=self._priority,
            **self._fields,
        )


def pod(key: str) -> PodBuilder:
    """A gated 1-GPU pod ``namespace/name`` created at time 0."""
    namespace, name = key.split("/")
    return PodBuilder(namespace, name)


def snap(
    *,
    now: float,
    nodes: Iterable[model.Node],
    tenants: Iterable[model.Tenant],
    pods: Iterable[model.GpuPod] = (),
    pools: Iterable[model.Pool] | None = None,
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
    blocked: Iterable[str] = (),
) -> model.Snapshot:
    tenant_list = list(tenants)
    names = {ns for t in tenant_list for ns in t.namespaces} | set(namespaces or {})
    return model.Snapshot(
        now=now,
        nodes={n.name: n for n in nodes},
        pods=tuple(pods),
        tenants={t.name: t for t in tenant_list},
        pools={p.name: p for p in (pools if pools is not None else [gpu_pool()])},
        namespaces={
            ns: model.Namespace(name=ns, labels=dict((namespaces or {}).get(ns, {})))
            for ns in names
        },
        blocked=frozenset(blocked),
    )


def persisted(tenant: model.Tenant, status: intents.TenantStatus) -> model.Tenant:
    """The tenant as a restarted operator reads it back: status written as Kubernetes JSON,
    parsed again (usage and conditions survive only if the round trip keeps them)."""
    wire = objects.tenant_status(status)
    return dataclasses.replace(
        tenant,
        usage=objects.persisted_usage(wire),
        conditions=objects._conditions(wire),
    )


@dataclasses.dataclass
class SimCluster:
    """A cluster the operator's plans act on; one :meth:`step` is one reconcile pass."""

    nodes: dict[str, model.Node]
    tenants: dict[str, model.Tenant]
    pods: dict[str, model.GpuPod] = dataclasses.field(default_factory=dict)
    pools: dict[str, model.Pool] = dataclasses.field(default_factory=lambda: {POOL: gpu_pool()})
    recreate_evicted: bool = True
    half_life: float = 24 * HOUR
    evictions: list[scheduling.Eviction] = dataclasses.field(default_factory=list)
    admissions: list[scheduling.Admission] = dataclasses.field(default_factory=list)
    events: list[intents.Event] = dataclasses.field(default_factory=list)
    departed: list[model.GpuPod] = dataclasses.field(default_factory=list)
    finished: list[model.GpuPod] = dataclasses.field(default_factory=list)
    last: plan.Plan | None = None

    def add(self, *pods: model.GpuPod) -> None:
        for p in pods:
            self.pods[p.uid] = p

    def snapshot(self, now: float) -> model.Snapshot:
        return snap(
            now=now,
            nodes=self.nodes.values(),
            tenants=self.tenants.values(),
            pods=[*self.pods.values(), *self.departed],
            pools=self.pools.values(),
        )

    def step(self, now: float) -> plan.Plan:
        """Plan at ``now`` and apply: persist statuses, admit, evict; then the world moves."""
        decided = plan.plan(self.snapshot(now), half_life=self.half_life)
        for name, status in decided.tenants.items():
            self.tenants[name] = persisted(self.tenants[name], status)
        self.departed.clear()
        for admitted in decided.admissions:
            self.pods[admitted.pod.uid] = dataclasses.replace(
                self.pods[admitted.pod.uid], state=model.PodState.PENDING, admitted_at=now
            )
        for eviction in decided.evictions:
            current = self.pods[eviction.pod.uid]
            assert current.state is model.PodState.BOUND, f"{current.key} evicted twice"
            self.pods[eviction.pod.uid] = dataclasses.replace(
                current, state=model.PodState.TERMINATING
            )
        self.admissions.extend(decided.admissions)
        self.evictions.extend(decided.evictions)
        self.events.extend(decided.events)
        self.last = decided
        return decided

    def world(self, now: float) -> None:
        """Between passes: terminating pods go (their jobs recreate them, gated), pending pods
        are bound by the scheduler where a GPU set fits."""
        for uid, current in list(self.pods.items()):
            if current.state is model.PodState.TERMINATING:
                del self.pods[uid]
                gone = dataclasses.replace(current, state=model.PodState.FINISHED, finished_at=now)
                self.departed.append(gone)
                self.finished.append(gone)
                if self.recreate_evicted:
                    again = pod(f"{current.namespace}/{current.name}-r").gpus(current.gpus)
                    self.add(again.created(now).build())
        for uid, current in sorted(self.pods.items(), key=lambda item: item[1].created_at):
            if current.state is not model.PodState.PENDING:
                continue
            spot = self._fit(current.gpus)
            if spot is not None:
                name, chosen = spot
                self.pods[uid] = dataclasses.replace(
                    current,
                    state=model.PodState.BOUND,
                    node=name,
                    started_at=now,
                    gpu_indices=frozenset(chosen),
                )

    def _fit(self, count: int) -> tuple[str, tuple[int, ...]] | None:
        for name, n in sorted(self.nodes.items()):
            assert n.topology is not None
            used = {
                gpu
                for p in self.pods.values()
                if p.node == name and p.gpu_indices is not None and p.holds_gpus
                for gpu in p.gpu_indices
            }
            free = frozenset(n.topology.indices) - used
            if len(free) < count:
                continue
            choice = placement.choose(n.topology, free=free, count=count)
            if isinstance(choice, placement.Choice):
                return name, choice.gpus
        return None

    def held(self, tenant_name: str) -> int:
        return sum(
            p.gpus
            for p in self.pods.values()
            if p.namespace in self.tenants[tenant_name].namespaces
            and p.state is model.PodState.BOUND
        )

    def usage_of(self, tenant_name: str, pool: str = POOL) -> usage.Usage:
        return self.tenants[tenant_name].usage[pool]
