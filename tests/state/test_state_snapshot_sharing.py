"""Snapshots read the cache's node maps without copying them, and still never change.

``ClusterCache.snapshot`` hands out its node maps themselves (copying 10,000 nodes per pod was a
measurable part of each filter); the cache copies them before a change only while a snapshot
that reads them lives. Whatever the order of events, snapshots taken and dropped, every snapshot
still held shows exactly the cluster of the moment it was taken.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import cluster, kube

from gpufair.state import cache

NODES = ("n0", "n1", "n2")

Step = tuple[str, int, int]
"""(action, node, GPU): ``bind`` a 1-GPU pod there, ``finish`` it, ``take`` or ``drop`` a
snapshot (the GPU picks which held one is dropped)."""

steps = st.lists(
    st.tuples(
        st.sampled_from(("bind", "finish", "take", "drop")),
        st.integers(0, len(NODES) - 1),
        st.integers(0, 7),
    ),
    max_size=40,
)


def picture(snapshot: cache.Snapshot) -> dict[str, Any]:
    """What a verb reads of the nodes, as plain values (``shapes`` gives *a* node of the shape,
    not necessarily this one: only the shape counts)."""
    return {
        name: (
            view.free,
            view.shape_id,
            snapshot.shape_of[name],
            snapshot.shapes[view.shape_id].shape(),
        )
        for name, view in snapshot.nodes.items()
    }


@settings(max_examples=60, deadline=None)
@given(steps)
def test_held_snapshots_keep_their_picture_whatever_happens_after(script: list[Step]) -> None:
    state = cluster.cluster(nodes=[kube.node(name, kube.dgx1()) for name in NODES])
    held: list[tuple[cache.Snapshot, dict[str, Any]]] = []
    for action, node, gpu in script:
        uid = f"p-{node}-{gpu}"
        pod = kube.pod(uid, node=NODES[node], bound=[gpu], pod_uid=uid)
        if action == "bind":
            state.upsert(cache.Kind.POD, pod)
        elif action == "finish":
            state.delete(cache.Kind.POD, pod)
        elif action == "take":
            snapshot = state.snapshot()
            held.append((snapshot, picture(snapshot)))
        elif held:
            held.pop(gpu % len(held))
        for snapshot, seen in held:
            assert picture(snapshot) == seen
    fresh = cluster.cluster(
        nodes=[kube.node(name, kube.dgx1()) for name in NODES],
        pods=_bound_pods(state),
    )
    assert {n: v.free for n, v in state.snapshot().nodes.items()} == {
        n: v.free for n, v in fresh.snapshot().nodes.items()
    }


def _bound_pods(state: cache.ClusterCache) -> list[dict[str, Any]]:
    snapshot = state.snapshot()
    return [
        kube.pod(pod.name, node=name, bound=sorted(pod.gpus or ()), pod_uid=pod.uid)
        for name, view in snapshot.nodes.items()
        for pod in view.pods
    ]


def test_a_change_while_no_snapshot_lives_does_not_copy_the_node_maps() -> None:
    state = cluster.cluster(nodes=[kube.node(name, kube.dgx1()) for name in NODES])
    shape_of = state.snapshot().shape_of  # the map itself, not a copy
    state.upsert(cache.Kind.POD, kube.pod("p", node="n0", bound=[0], pod_uid="p"))
    assert state.snapshot().shape_of is shape_of
