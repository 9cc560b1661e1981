"""The extender and the operator see one cluster alike.

Each cluster below is a list of Kubernetes objects as the API server returns them. It is fed
to the extender's cache (:mod:`gpufair.state.cache`) and to the operator's store
(:mod:`gpufair.operator.store`); both pictures are reduced to the facts the two must agree on
(free GPUs of each node, the pool of each node, the owner of each namespace, the fair shares
of each pool) and compared. The rules behind each fact live once in :mod:`gpufair.state.rules`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from tests.builders import cluster as cache_builder
from tests.builders import kube

from gpufair.api import names
from gpufair.extender import verbs
from gpufair.operator import plan, store
from gpufair.state import occupancy

Obj = dict[str, Any]
NOW = 1_790_000_000.0


@dataclasses.dataclass(frozen=True)
class Cluster:
    """One cluster's objects, as both components list them."""

    nodes: Sequence[Obj] = ()
    pods: Sequence[Obj] = ()
    quotas: Sequence[Obj] = ()
    pools: Sequence[Obj] = (kube.pool("h100"),)
    namespaces: Sequence[Obj] = ()


@dataclasses.dataclass(frozen=True)
class Picture:
    """What a component believes of a cluster, reduced to the facts both must agree on."""

    free: Mapping[str, frozenset[int]]
    """Free GPUs of each schedulable node of a pool."""
    node_pools: Mapping[str, str | None]
    owners: Mapping[str, str | None]
    shares: Mapping[str, Mapping[str, float]]


def gated(pod: Obj) -> Obj:
    """The pod as the admission webhook leaves it: held by gpufair's scheduling gate."""
    out = copy.deepcopy(pod)
    out["spec"]["schedulingGates"] = [{"name": names.ADMISSION_GATE}]
    return out


def terminating(pod: Obj) -> Obj:
    """The pod after its deletion was requested: it holds its GPUs until its grace period ends."""
    out = copy.deepcopy(pod)
    out["metadata"]["deletionTimestamp"] = "2026-11-26T20:05:00Z"
    out["metadata"]["deletionGracePeriodSeconds"] = 30
    return out


def extender_picture(world: Cluster, namespaces: Sequence[str]) -> Picture:
    snapshot = cache_builder.cluster(
        nodes=world.nodes,
        pods=world.pods,
        quotas=world.quotas,
        pools=world.pools,
        namespaces=world.namespaces,
    ).snapshot()
    return Picture(
        free={
            name: node.usable
            for name, node in snapshot.nodes.items()
            if node.pool is not None and node.schedulable
        },
        node_pools={name: node.pool for name, node in snapshot.nodes.items()},
        owners={namespace: snapshot.tenant_of(namespace) for namespace in namespaces},
        shares={pool: dict(verbs.pool_shares(snapshot, pool).shares) for pool in snapshot.pools},
    )


def operator_picture(world: Cluster, namespaces: Sequence[str]) -> Picture:
    cluster_store = store.ClusterStore()
    for pool in world.pools:
        cluster_store.apply_pool(pool, deleted=False)
    for quota in world.quotas:
        cluster_store.apply_tenant(quota, deleted=False)
    for namespace in world.namespaces:
        cluster_store.apply_namespace(namespace, deleted=False)
    for node in world.nodes:
        cluster_store.apply_node(node, deleted=False)
    for pod in world.pods:
        cluster_store.apply_pod(pod, deleted=False, now=NOW)
    cluster_store.mark_synced()
    snap = cluster_store.take_snapshot(now=NOW)
    decided = plan.plan(snap, half_life=3600.0)
    node_pool = occupancy.pools_of_nodes(snap.pools, snap.nodes)
    free: dict[str, frozenset[int]] = {}
    for pool in snap.pools.values():
        free.update(occupancy.pool_occupancy(pool, snap=snap, node_pool=node_pool).free)
    return Picture(
        free=free,
        node_pools={name: node_pool.get(name) for name in snap.nodes},
        owners={namespace: decided.owners.get(namespace) for namespace in namespaces},
        shares={name: dict(status.shares) for name, status in decided.pools.items()},
    )


def assert_same_picture(world: Cluster, *, namespaces: Sequence[str]) -> Picture:
    extender = extender_picture(world, namespaces)
    operator = operator_picture(world, namespaces)
    assert extender.free == operator.free
    assert extender.node_pools == operator.node_pools
    assert extender.owners == operator.owners
    assert extender.shares.keys() == operator.shares.keys()
    for pool, shares in operator.shares.items():
        assert extender.shares[pool] == pytest.approx(shares), pool
    return extender


def tenants(*names_: str, pool: str = "h100") -> list[Obj]:
    return [kube.quota(name, pools={pool: (0, None)}) for name in names_]


LABELLED_8_ALLOCATABLE_7 = Cluster(
    nodes=[kube.node("odd", kube.dgx1(), allocatable=7)],
    pods=[
        kube.pod("v-train", namespace="v", gpus=2, node="odd", bound=[0, 1]),
        kube.pod("p-train", namespace="p", gpus=4, node="odd", bound=[4, 5, 6, 7]),
    ],
    quotas=tenants("v", "p", "w"),
)


def test_a_node_allocating_fewer_gpus_than_it_labels_has_the_same_free_gpus_in_both() -> None:
    """The issue's node: 8 labelled, 7 allocatable, (0,1) and (4,5,6,7) bound. Six of seven
    allocatable GPUs are held, so exactly one is free, and both name the same one."""
    picture = assert_same_picture(LABELLED_8_ALLOCATABLE_7, namespaces=["v", "p", "w"])
    assert len(picture.free["odd"]) == 7 - 6


def test_gated_demand_counts_in_the_preempt_verbs_shares_as_in_the_operators() -> None:
    """The issue's shares: v and p hold 4 GPUs each of 8, w waits (gated) for 4. The operator
    splits 8 three ways; the preempt verb used to leave w out (demand without gated pods)."""
    world = Cluster(
        nodes=[kube.node("n1", kube.dgx1())],
        pods=[
            kube.pod("v-train", namespace="v", gpus=4, node="n1", bound=[0, 1, 2, 3]),
            kube.pod("p-train", namespace="p", gpus=4, node="n1", bound=[4, 5, 6, 7]),
            gated(kube.pod("w-train", namespace="w", gpus=4)),
        ],
        quotas=tenants("v", "p", "w"),
    )
    picture = assert_same_picture(world, namespaces=["v", "p", "w"])
    assert picture.shares["h100"]["w"] == pytest.approx(8 / 3)


CASES = [
    pytest.param(
        Cluster(
            nodes=[kube.node("n1", kube.dgx1())],
            pods=[
                kube.pod("v-train", namespace="v", gpus=4, node="n1", bound=[0, 1, 2, 3]),
                terminating(
                    kube.pod("p-train", namespace="p", gpus=4, node="n1", bound=[4, 5, 6, 7])
                ),
                gated(kube.pod("w-train", namespace="w", gpus=4)),
                terminating(gated(kube.pod("w-gone", namespace="w", gpus=2))),
                terminating(kube.pod("v-gone", namespace="v", gpus=2)),
            ],
            quotas=tenants("v", "p", "w"),
        ),
        id="terminating-pods-hold-gpus-but-claim-no-share",
    ),
    pytest.param(
        Cluster(
            nodes=[
                kube.node("odd", kube.dgx1(), allocatable=7),
                kube.node("short", kube.pcie_only(), allocatable=10),
                kube.node("bare", None, allocatable=4),
                kube.node("cordoned", kube.dgx1(), unschedulable=True),
                kube.node("elsewhere", kube.dgx1(), pool_label="a100"),
            ],
            pods=[
                kube.pod("v-a", namespace="v", gpus=2, node="odd", bound=[0, 1]),
                kube.pod("p-a", namespace="p", gpus=4, node="odd", bound=[4, 5, 6, 7]),
                kube.pod("legacy", namespace="p", gpus=3, node="short"),
                kube.pod("v-b", namespace="v", gpus=1, node="bare", bound=[2]),
                terminating(kube.pod("p-old", namespace="p", gpus=2, node="bare", bound=[0, 1])),
                kube.pod("admitted", namespace="v", gpus=1),
                gated(kube.pod("w-a", namespace="ml", gpus=4)),
                gated(kube.pod("w-b", namespace="shared", gpus=2)),
            ],
            quotas=[
                kube.quota("v", pools={"h100": (2, None)}),
                kube.quota("p", namespaces=["p", "shared"], pools={"h100": (0, 6)}, weight=2),
                kube.quota("w", selector={"matchLabels": {"team": "w"}}),
            ],
            namespaces=[
                kube.namespace("v"),
                kube.namespace("p"),
                kube.namespace("ml", {"team": "w"}),
                kube.namespace("shared", {"team": "w"}),
            ],
        ),
        id="mixed-nodes-conflicting-namespaces",
    ),
    pytest.param(
        Cluster(
            nodes=[
                kube.node("n1", kube.nvswitch(), extra_labels={"zone": "a"}),
                kube.node("n2", kube.nvswitch(), pool_label="a100", extra_labels={"zone": "b"}),
            ],
            pods=[
                gated(kube.pod("v-a", namespace="v", gpus=8)),
                gated(
                    {
                        **kube.pod("v-b", namespace="v", gpus=2),
                        "spec": {
                            **kube.pod("v-b", namespace="v", gpus=2)["spec"],
                            "nodeSelector": {"zone": "b"},
                        },
                    }
                ),
                kube.pod("p-a", namespace="p", gpus=8, node="n1", bound=list(range(8))),
            ],
            quotas=[
                kube.quota("v", pools={"h100": (0, None), "a100": (0, None)}),
                kube.quota("p", pools={"h100": (4, None), "a100": (0, None)}),
            ],
            pools=[kube.pool("h100"), kube.pool("a100")],
            namespaces=[kube.namespace("v"), kube.namespace("p")],
        ),
        id="waiting-pods-in-the-pool-their-node-selector-fits",
    ),
    pytest.param(
        Cluster(
            nodes=[kube.node("n1", kube.dgx1())],
            pods=[
                kube.pod("x", namespace="listed-unseen", gpus=1, node="n1", bound=[0]),
                kube.pod("y", namespace="unseen", gpus=1, node="n1", bound=[1]),
            ],
            quotas=[
                kube.quota("listing", namespaces=["listed-unseen"]),
                kube.quota("everyone", selector={}),
            ],
            namespaces=[kube.namespace("seen")],
        ),
        id="unseen-namespace-only-claimed-by-listing",
    ),
]


@pytest.mark.parametrize("world", CASES)
def test_the_extender_and_the_operator_agree(world: Cluster) -> None:
    namespaces = sorted(
        {pod["metadata"]["namespace"] for pod in world.pods}
        | {namespace["metadata"]["name"] for namespace in world.namespaces}
    )
    assert_same_picture(world, namespaces=namespaces)
