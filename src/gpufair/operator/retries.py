"""Which unschedulable pods to update so that kube-scheduler tries them again (issue 13 item 8).

A pod the extender rejected (its tenant at its limit, its budget spent, no GPUs free in its
pool) waits in kube-scheduler's unschedulable queue until an event kube-scheduler watches
arrives, or for the periodic flush (about five minutes; ARCHITECTURE.md §6). A TenantQuota
change is no such event, and neither is a pod of another namespace finishing on a node the
pod's filter never looked at. The operator compares, pass after pass, the room each
(tenant, pool) has: GPUs left under the limit, GPUs free in the pool, the budget open or
closed. Wherever the room grew, every admitted but unschedulable pod of that pair is updated
(an annotation), which kube-scheduler reacts to by trying it again. Pure: the reconciler
writes the updates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

from gpufair.operator import plan
from gpufair.state import model


@dataclasses.dataclass(frozen=True, slots=True)
class Room:
    """What a (tenant, pool) pair can take now."""

    under_limit: float
    """GPUs left under the tenant's limit in the pool (``inf``: no limit)."""
    free: int
    """GPUs free in the pool."""
    open: bool
    """The tenant's budget does not block it."""

    def grew_from(self, before: Room) -> bool:
        return (
            self.under_limit > before.under_limit
            or self.free > before.free
            or (self.open and not before.open)
        )


def rooms(decided: plan.Plan) -> dict[tuple[str, str], Room]:
    """The room of every (tenant, pool) pair after the pass."""
    result: dict[tuple[str, str], Room] = {}
    for name, state in decided.states.items():
        blocked = state.budget is not None and state.budget.blocks
        for pool, limit in state.limits.items():
            status = decided.pools.get(pool)
            result[(name, pool)] = Room(
                under_limit=math.inf if limit is None else limit - state.allocated.get(pool, 0),
                free=status.free if status is not None else 0,
                open=not blocked,
            )
    return result


def to_retry(
    pods: Iterable[model.GpuPod],
    *,
    pod_pools: Mapping[str, tuple[str, str]],
    before: Mapping[tuple[str, str], Room],
    now: Mapping[tuple[str, str], Room],
) -> tuple[model.GpuPod, ...]:
    """Admitted pods kube-scheduler found unschedulable whose (tenant, pool) room grew since
    the previous pass (``before``; a pair not in it has nothing to compare with)."""
    grown = {pair for pair, room in now.items() if pair in before and room.grew_from(before[pair])}
    return tuple(
        pod
        for pod in pods
        if pod.state is model.PodState.PENDING
        and pod.unschedulable_since is not None
        and pod_pools.get(pod.uid) in grown
    )
