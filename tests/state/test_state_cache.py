"""The cluster cache: free GPUs from pod annotations, pools, usage, assumptions, snapshots."""

from __future__ import annotations

import pytest
from tests.builders import cluster, kube

from gpufair.state import cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_free_gpus_are_derived_from_bound_pods() -> None:
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1())],
        pods=[
            kube.pod("a", gpus=2, node="n1", bound=[0, 1]),
            kube.pod("b", gpus=1, node="n1", bound=[5]),
            kube.pod("pending", gpus=4),
        ],
    )
    node = state.snapshot().nodes["n1"]
    assert node.free == frozenset({2, 3, 4, 6, 7})
    assert node.hidden == 0
    assert node.pool == "h100"


def test_pods_without_recorded_gpus_hide_capacity() -> None:
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1())],
        pods=[kube.pod("legacy", gpus=3, node="n1")],
    )
    node = state.snapshot().nodes["n1"]
    assert node.free == frozenset(range(8))
    assert node.hidden == 3


def test_terminal_and_deleted_pods_give_their_gpus_back() -> None:
    done = kube.pod("done", gpus=2, node="n1", bound=[0, 1])
    gone = kube.pod("gone", gpus=2, node="n1", bound=[2, 3])
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())], pods=[done, gone])
    state.upsert(cache.Kind.POD, {**done, "status": {"phase": "Succeeded"}})
    state.delete(cache.Kind.POD, gone)
    assert state.snapshot().nodes["n1"].free == frozenset(range(8))


def test_usage_per_tenant_and_pool() -> None:
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1()), kube.node("a1", kube.dgx1(), pool_label="a100")],
        pools=[kube.pool("h100"), kube.pool("a100")],
        pods=[
            kube.pod("a", gpus=2, node="n1", bound=[0, 1]),
            kube.pod("b", gpus=4, node="a1", bound=[0, 1, 2, 3]),
            kube.pod("c", namespace="team-b", gpus=1, node="n1", bound=[4]),
            kube.pod("pending", gpus=8),
        ],
    )
    snapshot = state.snapshot()
    assert snapshot.used("team-a", "h100") == 2
    assert snapshot.used("team-a", "a100") == 4
    assert snapshot.used("team-b", "h100") == 1
    assert snapshot.pool_nodes == {"a100": ("a1",), "h100": ("n1",)}


def test_namespace_selector_uses_namespace_labels() -> None:
    state = cluster.cluster(
        quotas=[kube.quota("ml", selector={"matchLabels": {"team": "ml"}})],
        namespaces=[kube.namespace("ml-prod", {"team": "ml"}), kube.namespace("web")],
        nodes=[kube.node("n1", kube.dgx1())],
        pods=[kube.pod("a", namespace="ml-prod", gpus=2, node="n1", bound=[0, 1])],
    )
    snapshot = state.snapshot()
    assert snapshot.tenant_of("ml-prod") == "ml"
    assert snapshot.tenant_of("web") is None
    assert snapshot.used("ml", "h100") == 2


def test_relabelled_node_moves_pool_with_its_usage() -> None:
    node = kube.node("n1", kube.dgx1())
    state = cluster.cluster(
        nodes=[node],
        pools=[kube.pool("h100"), kube.pool("a100")],
        pods=[kube.pod("a", gpus=2, node="n1", bound=[0, 1])],
    )
    state.upsert(cache.Kind.NODE, kube.node("n1", kube.dgx1(), pool_label="a100"))
    snapshot = state.snapshot()
    assert snapshot.nodes["n1"].pool == "a100"
    assert snapshot.used("team-a", "a100") == 2
    assert snapshot.used("team-a", "h100") == 0


def test_assumed_gpus_are_taken_until_confirmed() -> None:
    pod = kube.pod("new", gpus=2)
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())], pods=[pod])
    state.assume(
        uid=pod["metadata"]["uid"],
        namespace="team-a",
        name="new",
        node="n1",
        gpus=frozenset({0, 1}),
        resource="nvidia.com/gpu",
    )
    snapshot = state.snapshot()
    assert snapshot.nodes["n1"].free == frozenset(range(2, 8))
    assert snapshot.used("team-a", "h100") == 2
    state.upsert(
        cache.Kind.POD, kube.bound_copy(pod, node="n1", annotations={"gpufair.dev/gpus": "0,1"})
    )
    snapshot = state.snapshot()
    assert snapshot.assumed == {}
    assert snapshot.nodes["n1"].free == frozenset(range(2, 8))
    assert snapshot.used("team-a", "h100") == 2


def test_an_assumption_outlives_any_watch_silence() -> None:
    """Issue 13 item 5: a bind's GPUs stay taken however long the watch is silent (its read
    timeout is 330 s); only the pod bound, gone, or the bind forgetting them gives them back."""
    clock = Clock()
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())], clock=clock)
    state.assume(
        uid="u1",
        namespace="team-a",
        name="new",
        node="n1",
        gpus=frozenset({0, 1}),
        resource="nvidia.com/gpu",
    )
    for silence in (61, 331, 3600):
        clock.now += silence
        snapshot = state.snapshot()
        assert snapshot.nodes["n1"].free == frozenset(range(2, 8))
        assert snapshot.used("team-a", "h100") == 2
        with pytest.raises(cache.AssumeConflictError):
            state.assume(
                uid="u2",
                namespace="team-a",
                name="second",
                node="n1",
                gpus=frozenset({0, 1}),
                resource="nvidia.com/gpu",
            )
    state.forget("u1")
    assert state.snapshot().nodes["n1"].free == frozenset(range(8))


def test_an_assumption_ends_when_a_relist_shows_the_pod_gone() -> None:
    pod = kube.pod("new", gpus=2)
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())], pods=[pod])
    state.assume(
        uid=pod["metadata"]["uid"],
        namespace="team-a",
        name="new",
        node="n1",
        gpus=frozenset({0, 1}),
        resource="nvidia.com/gpu",
    )
    state.replace(cache.Kind.POD, [pod])  # still pending: the binding may not be listed yet
    assert state.snapshot().nodes["n1"].free == frozenset(range(2, 8))
    state.replace(cache.Kind.POD, [])
    snapshot = state.snapshot()
    assert snapshot.assumed == {}
    assert snapshot.nodes["n1"].free == frozenset(range(8))


def test_assuming_taken_gpus_is_a_conflict() -> None:
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1())],
        pods=[kube.pod("a", gpus=2, node="n1", bound=[0, 1])],
    )
    with pytest.raises(cache.AssumeConflictError, match=r"\[1\]"):
        state.assume(
            uid="u2",
            namespace="team-a",
            name="b",
            node="n1",
            gpus=frozenset({1, 2}),
            resource="nvidia.com/gpu",
        )


def test_snapshots_are_immutable_and_reused() -> None:
    state = cluster.cluster(nodes=[kube.node("n1", kube.dgx1())])
    first = state.snapshot()
    assert state.snapshot() is first
    state.upsert(cache.Kind.POD, kube.pod("a", gpus=2, node="n1", bound=[0, 1]))
    second = state.snapshot()
    assert second is not first
    assert first.nodes["n1"].free == frozenset(range(8))
    assert second.nodes["n1"].free == frozenset(range(2, 8))
    with pytest.raises(TypeError):
        first.nodes["n2"] = first.nodes["n1"]  # type: ignore[index]


def test_relist_drops_objects_that_are_gone() -> None:
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1()), kube.node("n2", kube.dgx1())],
        pods=[kube.pod("a", gpus=2, node="n1", bound=[0, 1])],
    )
    state.replace(cache.Kind.NODE, [kube.node("n2", kube.dgx1())])
    state.replace(cache.Kind.POD, [])
    snapshot = state.snapshot()
    assert set(snapshot.nodes) == {"n2"}
    assert snapshot.nodes["n2"].pods == ()
    assert state.pod_count() == 0
    assert snapshot.used("team-a", "h100") == 0


def test_invalid_objects_are_reported_not_fatal() -> None:
    bad_labels = kube.node("n9", kube.dgx1(), extra_labels={"gpufair.dev/gpu-0.numa": "x"})
    state = cluster.cluster(
        nodes=[bad_labels],
        pods=[kube.pod("odd", gpus=1, node="n9", annotations={"gpufair.dev/gpus": "zero"})],
    )
    snapshot = state.snapshot()
    assert snapshot.nodes["n9"].problem == "node has invalid gpufair topology labels"
    assert any("n9" in message for message in state.problems.values())
    assert any("gpufair.dev/gpus" in message for message in state.problems.values())


def test_not_synced_until_every_kind_is_listed() -> None:
    state = cache.ClusterCache()
    for kind in list(cache.Kind)[:-1]:
        state.replace(kind, [])
    assert not state.synced
    state.replace(list(cache.Kind)[-1], [])
    assert state.synced
    assert state.snapshot().synced


def test_restart_rebuilds_the_same_picture_from_the_api() -> None:
    """What a running cache learned from events equals what a fresh one lists."""
    objects = {
        "nodes": [kube.node("n1", kube.dgx1()), kube.node("n2", kube.nvswitch())],
        "pods": [kube.pod("a", gpus=4, node="n1", bound=[0, 1, 2, 3])],
    }
    running = cluster.cluster(**objects)
    extra = kube.pod("b", namespace="team-b", gpus=2, node="n2", bound=[6, 7])
    running.upsert(cache.Kind.POD, extra)
    restarted = cluster.cluster(nodes=objects["nodes"], pods=[*objects["pods"], extra])
    before, after = running.snapshot(), restarted.snapshot()
    assert {n: v.free for n, v in before.nodes.items()} == {
        n: v.free for n, v in after.nodes.items()
    }
    assert dict(before.usage) == dict(after.usage)


def test_invalid_pools_and_quotas_are_ignored_and_reported() -> None:
    bad_pool = kube.pool("broken-pool", mode="Scatter")
    bad_quota = kube.quota("team-z", pools={"h100": (8, 4)})
    state = cluster.cluster(
        nodes=[kube.node("n1", kube.dgx1())],
        pools=[kube.pool("h100"), bad_pool],
        quotas=[kube.quota("team-a"), bad_quota],
    )
    snapshot = state.snapshot()
    assert set(snapshot.pools) == {"h100"}
    assert set(snapshot.tenants) == {"team-a"}
    messages = " | ".join(state.problems.values())
    assert "GPUPool broken-pool: spec.placement.mode" in messages
    assert "TenantQuota team-z: spec.pools.0" in messages


def test_the_name_index_is_compacted_into_fresh_names_and_still_answers() -> None:
    """Snapshots look names up in an index whose names were copied together, in name order
    (lookups of thousands of names then stay in a few cache lines each); adding a node later
    keeps every answer right."""
    objs = [kube.node(f"n{i}", kube.dgx1()) for i in (3, 1, 2)]
    state = cluster.cluster(nodes=objs)
    index = state.snapshot().shape_of
    assert list(index) == ["n1", "n2", "n3"]
    for obj in objs:
        name = obj["metadata"]["name"]
        assert index[name] == state.snapshot().nodes[name].shape_id
        assert next(key for key in index if key == name) is not name
    assert index["elsewhere"] == cache.UNKNOWN_SHAPE
    state.upsert(cache.Kind.NODE, kube.node("n0", kube.dgx1()))
    after = state.snapshot()
    assert after.shape_of["n0"] == after.nodes["n0"].shape_id
    assert after.shape_of["n3"] == after.nodes["n3"].shape_id
