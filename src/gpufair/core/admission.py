"""Which gated pods to admit now, and why every other one waits (ARCHITECTURE.md §2 step 3, §4).

The operator calls :func:`decide` on every pass over the pods waiting behind the
``gpufair.dev/admission`` gate and removes the gate of :attr:`Decision.admit`; the holds become
the pods' condition messages, events and the ``gpufair_waiting_pods`` metric. The simulator runs
the same function on its replayed queue. :func:`check_limit` is the one limit test, reused by the
extender's filter; :func:`reject` is the admission webhook's verdict at pod creation.

The order among waiting pods: lowest decayed usage per unit of weight first, then higher
priority, then older, then uid (so the order is total and stable). Two passes keep one tenant
from swallowing freed capacity: the first admits only pods that keep their tenant within its
fair share, the second hands out what is left in the same order (work conserving; preemption
reclaims it later if the owners return). Capacity is checked per pool, not per node: an admitted
pod still needs kube-scheduler to find it a node.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence

from gpufair.core import fairshare, policy


class HoldReason(enum.StrEnum):
    """Why a pod is not admitted (the ``reason`` label of metrics and events)."""

    UNKNOWN_TENANT = "UnknownTenant"
    UNKNOWN_POOL = "UnknownPool"
    NO_QUOTA_IN_POOL = "NoQuotaInPool"
    AT_LIMIT = "AtLimit"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    NO_CAPACITY = "NoCapacity"


@dataclasses.dataclass(frozen=True)
class WaitingPod:
    """A pod behind the admission gate; ``name`` (``namespace/name``) is only for messages."""

    uid: str
    tenant: str
    pool: str
    gpus: int
    priority: int = 0
    created_at: float = 0.0
    name: str = ""


@dataclasses.dataclass(frozen=True)
class Budget:
    """A tenant's GPU-hour budget for the current period (see ``usage.period_gpu_hours``)."""

    gpu_hours: float
    used_gpu_hours: float
    enforcement: policy.BudgetEnforcement = policy.BudgetEnforcement.HARD

    @property
    def exhausted(self) -> bool:
        return self.used_gpu_hours >= self.gpu_hours

    @property
    def blocks(self) -> bool:
        """Exhausted and enforced: the tenant's pods are not admitted."""
        return self.exhausted and self.enforcement is policy.BudgetEnforcement.HARD


@dataclasses.dataclass(frozen=True)
class TenantState:
    """What admission knows of a tenant.

    ``allocated`` counts, per pool, the GPUs of the tenant's bound pods *and* of pods already
    admitted but not yet bound. ``limits`` has an entry for every pool the tenant has quota in
    (``None``: no limit); a pool without an entry is closed to the tenant.
    ``decayed_usage`` is the tenant's decayed GPU-seconds over all its pools, at the same instant
    for every tenant (``usage.decayed_at``).
    """

    tenant: str
    weight: float = 1.0
    decayed_usage: float = 0.0
    allocated: Mapping[str, int] = dataclasses.field(default_factory=dict)
    limits: Mapping[str, int | None] = dataclasses.field(default_factory=dict)
    budget: Budget | None = None
    on_limit: policy.OnLimit = policy.OnLimit.QUEUE

    @property
    def priority_key(self) -> float:
        """Usage per unit of weight: lower is admitted first."""
        return self.decayed_usage / self.weight


@dataclasses.dataclass(frozen=True)
class Hold:
    """A pod that stays gated, why (for metrics) and what to tell a person."""

    pod: WaitingPod
    reason: HoldReason
    message: str


@dataclasses.dataclass(frozen=True)
class Decision:
    """Pods to admit, in the order they were chosen, and a hold for every other waiting pod.

    A hold's message describes the state after this decision's admissions.
    """

    admit: tuple[WaitingPod, ...]
    held: tuple[Hold, ...]
    soft_budget_exceeded: tuple[str, ...] = ()
    """Tenants past a ``Soft`` budget: admitted anyway, to be reported (event, condition)."""

    def hold(self, uid: str) -> Hold | None:
        """The hold of the pod with this uid, or ``None`` when it was admitted (or unknown)."""
        return next((hold for hold in self.held if hold.pod.uid == uid), None)


def would_exceed_limit(*, allocated: int, requested: int, limit: int | None) -> bool:
    """Whether taking ``requested`` more GPUs brings a tenant above its limit."""
    return limit is not None and allocated + requested > limit


def check_limit(
    *,
    tenant: str,
    pool: str,
    allocated: int,
    requested: int,
    limit: int | None,
) -> str | None:
    """``None`` when the request fits the limit, else the message to show (the same text for
    the same cause everywhere: filter reasons are grouped by text in the pod's event)."""
    if not would_exceed_limit(allocated=allocated, requested=requested, limit=limit):
        return None
    state = "at" if allocated >= (limit or 0) else "near"
    return (
        f"tenant {tenant} {state} limit {allocated}/{limit} GPUs in pool {pool}"
        f" (requested {requested})"
    )


def order_key(pod: WaitingPod, tenants: Mapping[str, TenantState]) -> tuple[float, int, float, str]:
    """Admission order, lower first: usage / weight, then priority (higher first), age, uid."""
    state = tenants.get(pod.tenant)
    usage = state.priority_key if state is not None else math.inf
    return (usage, -pod.priority, pod.created_at, pod.uid)


def decide(
    *,
    waiting: Sequence[WaitingPod],
    tenants: Mapping[str, TenantState],
    free: Mapping[str, int],
    shares: Mapping[str, fairshare.PoolShares] | None = None,
) -> Decision:
    """Admit waiting pods in fair-share order as far as pool capacity, limits and budgets allow.

    ``free`` is, per pool, capacity minus the GPUs of bound and admitted pods. ``shares``, per
    pool, enables the fair-share first pass and keeps other tenants' reserved (non-lendable,
    idle) guarantee free; without it pods are admitted purely in order. Inputs are not changed.
    """
    shares = shares or {}
    ordered = sorted(waiting, key=lambda pod: order_key(pod, tenants))
    allocated = {
        (name, pool): amount
        for name, state in tenants.items()
        for pool, amount in state.allocated.items()
    }
    left = dict(free)
    holds: dict[str, Hold] = {}
    candidates: list[WaitingPod] = []
    for pod in ordered:
        hold = _static_hold(pod, tenants, free, shares)
        if hold is None:
            candidates.append(pod)
        else:
            holds[pod.uid] = hold

    admitted: dict[str, WaitingPod] = {}
    for within_share in (True, False):
        for pod in candidates:
            if pod.uid in admitted:
                continue
            state = tenants[pod.tenant]
            used = allocated.get((pod.tenant, pod.pool), 0)
            usable = left[pod.pool] - _reserved_for_others(shares.get(pod.pool), pod.tenant)
            limit_message = check_limit(
                tenant=pod.tenant,
                pool=pod.pool,
                allocated=used,
                requested=pod.gpus,
                limit=state.limits[pod.pool],
            )
            if limit_message is not None:
                holds[pod.uid] = Hold(pod, HoldReason.AT_LIMIT, limit_message)
                continue
            if pod.gpus > usable:
                holds[pod.uid] = Hold(
                    pod, HoldReason.NO_CAPACITY, _capacity_message(pod, left[pod.pool], usable)
                )
                continue
            pool_shares = shares.get(pod.pool)
            if (
                within_share
                and pool_shares is not None
                and not fairshare.at_most(used + pod.gpus, pool_shares.share(pod.tenant))
            ):
                continue
            admitted[pod.uid] = pod
            holds.pop(pod.uid, None)
            allocated[(pod.tenant, pod.pool)] = used + pod.gpus
            left[pod.pool] -= pod.gpus

    soft = sorted(
        name
        for name, state in tenants.items()
        if state.budget is not None and state.budget.exhausted and not state.budget.blocks
    )
    return Decision(
        admit=tuple(admitted.values()),
        held=tuple(holds[pod.uid] for pod in ordered if pod.uid in holds),
        soft_budget_exceeded=tuple(soft),
    )


def reject(*, pod: WaitingPod, tenant: TenantState) -> Hold | None:
    """The admission webhook's verdict on a new pod: a hold to deny it with, or ``None``.

    Only a tenant whose policy is ``onLimit: Reject`` has pods denied, and only for causes that
    more waiting would not cure by itself: over the limit or a hard budget exhausted.
    """
    if tenant.on_limit is not policy.OnLimit.REJECT:
        return None
    if tenant.budget is not None and tenant.budget.blocks:
        return Hold(pod, HoldReason.BUDGET_EXHAUSTED, _budget_message(pod.tenant, tenant.budget))
    if pod.pool not in tenant.limits:
        return None
    message = check_limit(
        tenant=pod.tenant,
        pool=pod.pool,
        allocated=tenant.allocated.get(pod.pool, 0),
        requested=pod.gpus,
        limit=tenant.limits[pod.pool],
    )
    return None if message is None else Hold(pod, HoldReason.AT_LIMIT, message)


def _static_hold(
    pod: WaitingPod,
    tenants: Mapping[str, TenantState],
    free: Mapping[str, int],
    shares: Mapping[str, fairshare.PoolShares],
) -> Hold | None:
    """Holds that do not depend on what else is admitted in this pass."""
    state = tenants.get(pod.tenant)
    if state is None:
        return Hold(pod, HoldReason.UNKNOWN_TENANT, f"no TenantQuota named {pod.tenant}")
    if pod.pool not in free:
        return Hold(pod, HoldReason.UNKNOWN_POOL, f"no GPUPool named {pod.pool}")
    if pod.pool not in state.limits:
        return Hold(
            pod,
            HoldReason.NO_QUOTA_IN_POOL,
            f"tenant {pod.tenant} has no quota in pool {pod.pool}",
        )
    if state.budget is not None and state.budget.blocks:
        return Hold(pod, HoldReason.BUDGET_EXHAUSTED, _budget_message(pod.tenant, state.budget))
    limit = state.limits[pod.pool]
    if limit is not None and pod.gpus > limit:
        return Hold(
            pod,
            HoldReason.AT_LIMIT,
            f"requests {pod.gpus} GPUs, above tenant {pod.tenant}'s limit {limit}"
            f" in pool {pod.pool}",
        )
    pool_shares = shares.get(pod.pool)
    if pool_shares is not None and pod.gpus > pool_shares.capacity:
        return Hold(
            pod,
            HoldReason.NO_CAPACITY,
            f"requests {pod.gpus} GPUs, pool {pod.pool} has {pool_shares.capacity}",
        )
    return None


def _reserved_for_others(pool_shares: fairshare.PoolShares | None, tenant: str) -> int:
    if pool_shares is None:
        return 0
    held = sum(amount for name, amount in pool_shares.reserved.items() if name != tenant)
    return math.ceil(held - fairshare.TOLERANCE)


def _capacity_message(pod: WaitingPod, free: int, usable: int) -> str:
    message = f"waiting for {pod.gpus} GPUs in pool {pod.pool}: {max(free, 0)} free"
    if usable < free:
        message += f", {free - max(usable, 0)} of them reserved for other tenants' guarantees"
    return message


def _budget_message(tenant: str, budget: Budget) -> str:
    return (
        f"tenant {tenant} GPU-hour budget exhausted:"
        f" {budget.used_gpu_hours:g}/{budget.gpu_hours:g} h this period"
    )
