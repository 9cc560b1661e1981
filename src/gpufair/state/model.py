"""The cluster at one instant as frozen values: the input of the scheduling pass.

These are the value types of the one cluster model (nodes, GPU pods, tenants, pools,
namespaces, and the :class:`Snapshot` that holds them). The operator's store
(:mod:`gpufair.operator.store`) keeps them up to date from kopf's watch events, the simulator
(:mod:`gpufair.sim.gpufair_policy`) builds them from its machines and jobs, tests build them
directly (``tests/builders/operator.py``); all hand a :class:`Snapshot` to
:func:`gpufair.state.scheduling.schedule`. Times are seconds since the epoch (or the replay's
clock) as ``float``; nothing here reads a clock or talks to Kubernetes.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from gpufair.core import policy, topology, usage
from gpufair.state import groups


class PodState(enum.StrEnum):
    """Where a GPU pod is in gpufair's flow (ARCHITECTURE.md §2)."""

    GATED = "Gated"
    """Waiting behind the ``gpufair.dev/admission`` scheduling gate."""
    PENDING = "Pending"
    """Admitted (no gate) but not bound to a node yet."""
    BOUND = "Bound"
    """On a node, holding its GPUs."""
    TERMINATING = "Terminating"
    """Being deleted or evicted; still holds its GPUs while on a node."""
    FINISHED = "Finished"
    """Succeeded, failed or gone; holds nothing."""


@dataclasses.dataclass(frozen=True, slots=True)
class GpuPod:
    """One pod that requests GPUs; ``started_at``/``finished_at`` bound the time it holds them."""

    namespace: str
    name: str
    uid: str
    gpus: int
    state: PodState
    created_at: float
    node: str | None = None
    pool_hint: str | None = None
    """The pool named in the pod's ``gpufair.dev/pool`` annotation: written by bind, and used
    only for a bound pod whose node left its tenant's pools (never for a waiting pod, whose
    pool comes from its node selector and affinity)."""
    priority: int = 0
    started_at: float | None = None
    """When it began holding GPUs (bound); ``None`` while it holds none."""
    finished_at: float | None = None
    """When it stopped holding GPUs (finished, or deleted and gone)."""
    admitted_at: float | None = None
    checkpoint_at: float | None = None
    gpu_indices: frozenset[int] | None = None
    """The GPUs bind recorded (``gpufair.dev/gpus``); ``None`` when unknown."""
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    required_terms: tuple[Mapping[str, Any], ...] | None = None
    """The ``nodeSelectorTerms`` of the pod's required node affinity (``None``: none)."""
    tolerations: tuple[Mapping[str, Any], ...] = ()
    unschedulable_since: float | None = None
    """When kube-scheduler last marked the pod unschedulable (``PodScheduled=False``)."""
    admission_token: str | None = None
    """``gpufair.dev/admission-token``: the webhook counted this pod until a pass saw it."""
    deleting_at: float | None = None
    """``metadata.deletionTimestamp``: when the pod's grace period ends."""
    cpu_millis: int = 0
    memory_bytes: int = 0
    """CPU and memory the pod requests (what kube-scheduler needs free on its node)."""
    group: groups.Membership | None = None
    """The pod group (``gpufair.state.groups``) the pod is admitted with, all or nothing;
    ``None``: it is admitted on its own. Only groups whose size is known are set here."""
    group_error: str | None = None
    """Why the pod's group annotations cannot be read (the pod waits until they are fixed)."""
    group_unsized: groups.GroupKey | None = None
    """A controller's group the pod belongs to whose size is not known (an owner object gpufair
    does not read, or has not seen): the pod is admitted on its own, and its event says so."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def holds_gpus(self) -> bool:
        return self.node is not None and self.state in (PodState.BOUND, PodState.TERMINATING)

    @property
    def waiting(self) -> bool:
        return self.state is PodState.GATED


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """A node as pools see it: labels, allocatable GPUs per resource name, topology if labelled."""

    name: str
    labels: Mapping[str, str]
    allocatable: Mapping[str, int]
    schedulable: bool = True
    """False when cordoned or not Ready."""
    topology: topology.NodeTopology | None = None
    taints: tuple[Mapping[str, Any], ...] = ()
    reachable: bool = True
    """Ready and not tainted unreachable: its kubelet acts on deletions."""
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    """Allocatable CPU and memory (``None``: not reported, not checked)."""


LabelSelector = Mapping[str, Any]
"""A Kubernetes LabelSelector in its JSON form (``matchLabels``, ``matchExpressions``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """A standard ``metav1.Condition`` (``status`` is ``"True"``/``"False"``/``"Unknown"``)."""

    type: str
    status: str
    reason: str
    message: str
    last_transition: float
    observed_generation: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    gpu_hours: float
    period_seconds: float
    enforcement: policy.BudgetEnforcement


@dataclasses.dataclass(frozen=True, slots=True)
class TenantPool:
    """A tenant's entitlement in one pool (``spec.pools[]``)."""

    pool: str
    guaranteed: int = 0
    limit: int | None = None
    lendable: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Tenant:
    """A TenantQuota: spec (``None`` fields when invalid) and what its status persisted."""

    name: str
    generation: int = 1
    created_at: float = 0.0
    weight: float = 1.0
    namespaces: frozenset[str] = frozenset()
    namespace_selector: LabelSelector | None = None
    pools: tuple[TenantPool, ...] = ()
    reclaim: bool = True
    min_runtime_seconds: float = 0.0
    on_limit: policy.OnLimit = policy.OnLimit.QUEUE
    budget: Budget | None = None
    invalid: str | None = None
    """Why the spec cannot be used (it slipped past the schema); the tenant then gets nothing."""
    usage: Mapping[str, usage.Usage] = dataclasses.field(default_factory=dict)
    """Persisted usage per pool name (amounts valid at each record's ``as_of``)."""
    conditions: tuple[Condition, ...] = ()
    """Conditions as persisted, to detect transitions (one event each)."""
    _by_pool: Mapping[str, TenantPool] = dataclasses.field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        by_pool: dict[str, TenantPool] = {}
        for entry in self.pools:
            by_pool.setdefault(entry.pool, entry)
        object.__setattr__(self, "_by_pool", by_pool)

    def entitlement(self, pool: str) -> TenantPool | None:
        """The tenant's entry for ``pool`` (the first, if listed twice), in constant time: a
        pass asks for every (tenant, pool) pair, and a tenant may list thousands of pools."""
        return self._by_pool.get(pool)


@dataclasses.dataclass(frozen=True, slots=True)
class Pool:
    """A GPUPool: which nodes, which resource, and its persisted conditions."""

    name: str
    generation: int = 1
    selector: LabelSelector = dataclasses.field(default_factory=dict)
    resource_name: str = "nvidia.com/gpu"
    mode: policy.PlacementMode = policy.PlacementMode.PACK
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED
    one_domain: bool = False
    """A pod group's members all within one multi-node NVLink domain (``groupDomain: Same``)."""
    invalid: str | None = None
    conditions: tuple[Condition, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one reconcile pass decides from, at time ``now``.

    ``pods`` includes pods that finished or vanished since the previous pass (state FINISHED,
    with ``finished_at``), so their last seconds are metered; the view drops them afterwards.
    ``blocked`` names pods (by uid) whose eviction a disruption budget refused recently; the
    planner does not pick them again until the view lets them go. ``synced`` says the view has
    gone through the initial listing of every kind it watches: until then a namespace may look
    like it belongs to no tenant only because its TenantQuota has not arrived yet.
    """

    now: float
    nodes: Mapping[str, Node]
    pods: tuple[GpuPod, ...]
    tenants: Mapping[str, Tenant]
    pools: Mapping[str, Pool]
    namespaces: Mapping[str, Namespace]
    blocked: frozenset[str] = frozenset()
    synced: bool = False
    other_requests: Mapping[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    """CPU millicores and memory bytes requested on each node by bound pods without GPUs."""
    unlisted_demand: Mapping[tuple[str, str], Mapping[int, int]] = dataclasses.field(
        default_factory=dict
    )
    """Gated pods not listed in ``pods``, per (tenant, pool): how many wait for each GPU count.
    They count in the tenant's demand (its fair share) and in the pool's waiting demand by size,
    but are never admitted or held. The operator lists every pod and leaves this empty; the
    simulator lists only the oldest jobs of each queue that one pass could act on
    (:mod:`gpufair.sim.gpufair_policy`) and declares the rest here, so the pass decides as it
    would shown the whole queue."""
