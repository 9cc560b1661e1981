"""What a reconcile pass reports, as values: statuses and events.

:mod:`.plan` produces them, :mod:`.statuses` builds them, and :mod:`.reconciler` applies them.
The gate removals, evictions and namespace labels are the scheduling pass's intents
(:mod:`gpufair.state.scheduling`). Frozen dataclasses: they cross from the pure side to the
side that writes to the API server.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from gpufair.core import usage
from gpufair.state import model


class ObjectKind(enum.StrEnum):
    POD = "Pod"
    TENANT_QUOTA = "TenantQuota"
    GPU_POOL = "GPUPool"


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(enum.StrEnum):
    """Event and condition reasons the operator writes (CamelCase, as Kubernetes expects)."""

    ADMITTED = "Admitted"
    PREEMPTED = "Preempted"
    RECLAIMING = "Reclaiming"
    RECLAIMED_FROM = "ReclaimedFrom"
    RECONCILED = "Reconciled"
    INVALID_SPEC = "InvalidSpec"
    NAMESPACE_CONFLICT = "NamespaceConflict"
    NO_CONFLICT = "NoConflict"
    GUARANTEES_EXCEED_CAPACITY = "GuaranteesExceedCapacity"
    GUARANTEES_FIT = "GuaranteesFit"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    WITHIN_BUDGET = "WithinBudget"
    NO_MATCHING_NODES = "NoMatchingNodes"
    NODES_FOUND = "NodesFound"
    LABELS_MISSING = "TopologyLabelsMissing"
    LABELS_PRESENT = "TopologyLabelsPresent"
    UNKNOWN_POOL = "UnknownPool"
    RELEASED = "Released"
    WAITING = "Waiting"
    EVICTION_REFUSED = "EvictionRefused"


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: ObjectKind
    name: str
    namespace: str | None = None
    uid: str | None = None

    @classmethod
    def pod(cls, pod: model.GpuPod) -> ObjectRef:
        return cls(kind=ObjectKind.POD, name=pod.name, namespace=pod.namespace, uid=pod.uid)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    target: ObjectRef
    type: EventType
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class TenantPoolStatus:
    pool: str
    allocated: int
    """GPUs held on nodes by the tenant's pods (terminating ones included)."""
    guaranteed: int
    limit: int | None
    fair_share: float
    borrowed: float
    waiting: int
    """Pods behind the admission gate."""
    waiting_gpus: int
    demand: int
    """GPUs of bound, admitted and waiting pods (what the fair share was computed from)."""
    pending: int
    """Admitted pods not bound yet."""
    pending_gpus: int
    usage: usage.Usage
    decayed_now: float


@dataclasses.dataclass(frozen=True, slots=True)
class TenantStatus:
    name: str
    observed_generation: int
    namespaces: tuple[str, ...]
    pools: tuple[TenantPoolStatus, ...]
    conditions: tuple[model.Condition, ...]
    gpu_seconds: float
    """Cumulative GPU-seconds over all pools."""
    budget_used_gpu_hours: float
    budget_gpu_hours: float | None
    budget_exhausted: bool
    period_start: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class PoolStatus:
    name: str
    observed_generation: int
    nodes: int
    schedulable_nodes: int
    capacity: int
    allocated: int
    free: int
    largest_free_island: int
    fragmentation: float
    tenants: Mapping[str, int]
    shares: Mapping[str, float]
    conditions: tuple[model.Condition, ...]
