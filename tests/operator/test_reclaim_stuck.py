"""A pod stuck Terminating does not stop reclaim in its pool for good (issue 13 item 2).

Tenant ``a`` borrows all 16 GPUs of ``n1`` and ``n2``; one of its pods on ``n1`` is
terminating. While that termination is in progress reclaim waits (the GPUs it frees are spoken
for); once it is stuck, on a NotReady or unreachable node or well past its grace period,
tenant ``b``'s waiting pods (8 GPUs, its fair share) get a victim.
"""

from __future__ import annotations

import dataclasses

import pytest
from tests.builders import operator as b

from gpufair.operator import plan
from gpufair.state import model, occupancy

NOW = 1000.0


@pytest.mark.parametrize(
    ("n1_reachable", "grace_ends_at", "evictions"),
    [
        pytest.param(True, None, 0, id="terminating-without-deadline-waits"),
        pytest.param(True, NOW + 30, 0, id="within-its-grace-period-waits"),
        pytest.param(True, NOW - occupancy.STUCK_AFTER_SECONDS + 1, 0, id="just-past-grace-waits"),
        pytest.param(True, NOW - occupancy.STUCK_AFTER_SECONDS - 1, 1, id="stuck-past-grace"),
        pytest.param(False, NOW + 30, 1, id="on-a-notready-node"),
    ],
)
def test_a_stuck_termination_does_not_block_reclaim(
    n1_reachable: bool, grace_ends_at: float | None, evictions: int
) -> None:
    n1 = dataclasses.replace(b.node("n1"), reachable=n1_reachable, schedulable=n1_reachable)
    held = [
        b.pod(f"a/p{node}{half}").gpus(4).bound(node, indices=range(4 * half, 4 * half + 4)).build()
        for node in ("n1", "n2")
        for half in (0, 1)
    ]
    held[0] = dataclasses.replace(
        held[0], state=model.PodState.TERMINATING, deleting_at=grace_ends_at
    )
    decided = plan.plan(
        b.snap(
            now=NOW,
            nodes=[n1, b.node("n2")],
            tenants=[b.tenant("a").pool().build(), b.tenant("b").pool().build()],
            pods=[*held, *(b.pod(f"b/w{i}").gpus(4).created(10.0).build() for i in range(2))],
        ),
        half_life=3600.0,
    )
    assert len(decided.evictions) == evictions
    if not n1_reachable:
        assert {eviction.pod.node for eviction in decided.evictions} == {"n2"}
