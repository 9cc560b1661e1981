"""Reclaim evicts only on a node the waiting pod can use (issue 13 item 1).

Two nodes of one pool, zone a and zone b, tenant ``a`` borrowing all 16 GPUs (four 4-GPU pods,
two per node); tenant ``b`` waits for 4 GPUs. Without constraints the victim is on ``n1`` (the
tie between equally cheap nodes goes to the first name); each case below makes ``n1`` unusable
for the waiting pod in one way kube-scheduler's filters would, and the victim must then be on
``n2``: its ``nodeSelector``, its required node affinity, a taint it does not tolerate, or
too little CPU or memory left on ``n1`` even after the eviction (pods without GPUs included).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.builders import operator as b

from gpufair.operator import plan
from gpufair.state import model

GIB = 1024**3
ZONE_B_AFFINITY = ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},)
GPU_TAINT = {"key": "dedicated", "value": "training", "effect": "NoSchedule"}


def zone_node(name: str, zone: str, **changes: Any) -> model.Node:
    base = b.node(name)
    node = dataclasses.replace(
        base,
        labels={**base.labels, "zone": zone},
        cpu_millis=64_000,
        memory_bytes=512 * GIB,
    )
    return dataclasses.replace(node, **changes)


@dataclasses.dataclass(frozen=True)
class Case:
    waiting: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Fields of the waiting pod (its selector, affinity, tolerations, CPU and memory)."""
    n1: dict[str, Any] = dataclasses.field(default_factory=dict)
    borrower_cpu_on_n1: int = 1_000
    others_on_n1: tuple[int, int] = (0, 0)
    """CPU and memory requested on ``n1`` by pods without GPUs."""
    want: str | None = "n2"
    """The node of the victim, or None for no eviction."""


CASES = [
    pytest.param(Case(want="n1"), id="unconstrained-first-node"),
    pytest.param(Case(waiting={"node_selector": {"zone": "b"}}), id="node-selector"),
    pytest.param(Case(waiting={"required_terms": ZONE_B_AFFINITY}), id="required-affinity"),
    pytest.param(Case(n1={"taints": (GPU_TAINT,)}), id="untolerated-taint"),
    pytest.param(
        Case(
            n1={"taints": (GPU_TAINT,)},
            waiting={"tolerations": ({"key": "dedicated", "operator": "Exists"},)},
            want="n1",
        ),
        id="tolerated-taint",
    ),
    pytest.param(
        Case(n1={"taints": ({**GPU_TAINT, "effect": "PreferNoSchedule"},)}, want="n1"),
        id="prefer-no-schedule-does-not-filter",
    ),
    pytest.param(
        Case(waiting={"cpu_millis": 40_000}, borrower_cpu_on_n1=30_000),
        id="too-little-cpu-after-the-eviction",
    ),
    pytest.param(
        Case(waiting={"cpu_millis": 40_000}, borrower_cpu_on_n1=20_000, want="n1"),
        id="eviction-frees-enough-cpu",
    ),
    pytest.param(Case(waiting={"memory_bytes": 600 * GIB}, want=None), id="no-node-has-memory"),
    pytest.param(
        Case(waiting={"cpu_millis": 8_000}, others_on_n1=(60_000, 0)),
        id="pods-without-gpus-take-the-cpu",
    ),
    pytest.param(Case(waiting={"node_selector": {"zone": "c"}}, want=None), id="no-node-matches"),
]


@pytest.mark.parametrize("case", CASES)
def test_reclaim_evicts_only_where_the_waiting_pod_fits(case: Case) -> None:
    nodes = [zone_node("n1", "a", **case.n1), zone_node("n2", "b")]
    borrowers = [
        b.pod(f"a/p{node[-1]}{half}")
        .gpus(4)
        .bound(node, indices=range(4 * half, 4 * half + 4))
        .spec(cpu_millis=case.borrower_cpu_on_n1 if node == "n1" else 1_000)
        .build()
        for node in ("n1", "n2")
        for half in (0, 1)
    ]
    waiting = b.pod("b/w").gpus(4).created(10.0).spec(**case.waiting).build()
    snap = b.snap(
        now=100.0,
        nodes=nodes,
        tenants=[b.tenant("a").pool().build(), b.tenant("b").pool().build()],
        pods=[*borrowers, waiting],
    )
    decided = plan.plan(
        dataclasses.replace(snap, other_requests={"n1": case.others_on_n1}), half_life=3600.0
    )
    on = {eviction.pod.node for eviction in decided.evictions}
    assert len(decided.evictions) == (0 if case.want is None else 1)
    assert on == ({case.want} if case.want else set())
