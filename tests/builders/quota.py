"""Fluent builders for fair-share, usage, admission and preemption inputs (Kueue style).

    tenant("a").weight(2).guaranteed(16).limit(32).demand(40).claim()
    waiting_pod("w1").tenant("a").gpus(4).priority(10).created(100).obj()
    running_pod("r1").tenant("b").node("n1").gpus(0, 1).started(0).obj()

Everything not said has a harmless default: pool ``h100``, weight 1, no guarantee, no limit.
"""

from __future__ import annotations

import dataclasses
from typing import Self

from gpufair.core import admission, fairshare, policy, preemption

POOL = "h100"


@dataclasses.dataclass
class TenantBuilder:
    """One tenant in one pool: quota, demand, allocation, usage, budget and preemption policy."""

    name: str
    _weight: float = 1.0
    _guaranteed: int = 0
    _limit: int | None = None
    _lendable: int | None = None
    _demand: int = 0
    _allocated: int = 0
    _usage: float = 0.0
    _budget: admission.Budget | None = None
    _on_limit: policy.OnLimit = policy.OnLimit.QUEUE
    _reclaim: bool = True
    _min_runtime: float = 0.0
    _pool: str = POOL

    def weight(self, value: float) -> Self:
        self._weight = value
        return self

    def guaranteed(self, value: int) -> Self:
        self._guaranteed = value
        return self

    def limit(self, value: int | None) -> Self:
        self._limit = value
        return self

    def lendable(self, value: int) -> Self:
        self._lendable = value
        return self

    def demand(self, value: int) -> Self:
        self._demand = value
        return self

    def allocated(self, value: int) -> Self:
        self._allocated = value
        return self

    def usage(self, decayed_gpu_seconds: float) -> Self:
        self._usage = decayed_gpu_seconds
        return self

    def budget(
        self,
        *,
        gpu_hours: float,
        used: float,
        enforcement: policy.BudgetEnforcement = policy.BudgetEnforcement.HARD,
    ) -> Self:
        self._budget = admission.Budget(
            gpu_hours=gpu_hours, used_gpu_hours=used, enforcement=enforcement
        )
        return self

    def on_limit(self, value: policy.OnLimit) -> Self:
        self._on_limit = value
        return self

    def no_reclaim(self) -> Self:
        self._reclaim = False
        return self

    def min_runtime(self, seconds: float) -> Self:
        self._min_runtime = seconds
        return self

    def pool(self, name: str) -> Self:
        self._pool = name
        return self

    def claim(self) -> fairshare.TenantClaim:
        return fairshare.TenantClaim(
            tenant=self.name,
            weight=self._weight,
            guaranteed=self._guaranteed,
            limit=self._limit,
            lendable=self._lendable,
            demand=self._demand,
        )

    def state(self) -> admission.TenantState:
        return admission.TenantState(
            tenant=self.name,
            weight=self._weight,
            decayed_usage=self._usage,
            allocated={self._pool: self._allocated},
            limits={self._pool: self._limit},
            budget=self._budget,
            on_limit=self._on_limit,
        )

    def policy(self) -> preemption.Policy:
        return preemption.Policy(reclaim=self._reclaim, min_runtime_seconds=self._min_runtime)


def tenant(name: str) -> TenantBuilder:
    return TenantBuilder(name)


def shares(capacity: int, *tenants: TenantBuilder) -> fairshare.PoolShares:
    """Fair shares of a pool of ``capacity`` among the built tenants."""
    return fairshare.compute(capacity, [t.claim() for t in tenants])


@dataclasses.dataclass
class WaitingPodBuilder:
    uid: str
    _tenant: str = "a"
    _pool: str = POOL
    _gpus: int = 1
    _priority: int = 0
    _created: float = 0.0

    def tenant(self, name: str) -> Self:
        self._tenant = name
        return self

    def pool(self, name: str) -> Self:
        self._pool = name
        return self

    def gpus(self, count: int) -> Self:
        self._gpus = count
        return self

    def priority(self, value: int) -> Self:
        self._priority = value
        return self

    def created(self, at: float) -> Self:
        self._created = at
        return self

    def obj(self) -> admission.WaitingPod:
        return admission.WaitingPod(
            uid=self.uid,
            tenant=self._tenant,
            pool=self._pool,
            gpus=self._gpus,
            priority=self._priority,
            created_at=self._created,
        )


def waiting_pod(uid: str) -> WaitingPodBuilder:
    return WaitingPodBuilder(uid)


@dataclasses.dataclass
class RunningPodBuilder:
    uid: str
    _tenant: str = "b"
    _pool: str = POOL
    _node: str = "n1"
    _gpus: tuple[int, ...] = (0,)
    _priority: int = 0
    _started: float = 0.0
    _checkpoint: float | None = None

    def tenant(self, name: str) -> Self:
        self._tenant = name
        return self

    def pool(self, name: str) -> Self:
        self._pool = name
        return self

    def node(self, name: str) -> Self:
        self._node = name
        return self

    def gpus(self, *indices: int) -> Self:
        self._gpus = indices
        return self

    def priority(self, value: int) -> Self:
        self._priority = value
        return self

    def started(self, at: float) -> Self:
        self._started = at
        return self

    def checkpoint(self, at: float) -> Self:
        self._checkpoint = at
        return self

    def obj(self) -> preemption.RunningPod:
        return preemption.RunningPod(
            uid=self.uid,
            tenant=self._tenant,
            pool=self._pool,
            node=self._node,
            gpus=self._gpus,
            priority=self._priority,
            started_at=self._started,
            checkpoint_at=self._checkpoint,
        )


def running_pod(uid: str) -> RunningPodBuilder:
    return RunningPodBuilder(uid)
