"""Preemption: reclaim up to the fair share, never below a victim's share or guarantee, only
evictions that make the pod fit (topology included), cheapest victims first, and no loops."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from tests.builders import topology as topo_builders
from tests.builders.quota import TenantBuilder, running_pod, tenant, waiting_pod

from gpufair.core import admission, fairshare, placement, policy, preemption, topology

NOW = 1000.0
REQUIRED = policy.TopologyRule.REQUIRED


@dataclasses.dataclass(frozen=True)
class Scene:
    """A pool: tenants (quota and demand), running pods and nodes; allocation from the pods."""

    tenants: tuple[TenantBuilder, ...]
    running: tuple[preemption.RunningPod, ...]
    nodes: dict[str, topology.NodeTopology] = dataclasses.field(
        default_factory=lambda: {"n1": topo_builders.dgx1()}
    )

    def allocated(self) -> dict[str, int]:
        totals = {t.name: 0 for t in self.tenants}
        for pod in self.running:
            totals[pod.tenant] = totals.get(pod.tenant, 0) + len(pod.gpus)
        return totals

    def node_gpus(self) -> dict[str, preemption.NodeGPUs]:
        used: dict[str, set[int]] = {name: set() for name in self.nodes}
        for pod in self.running:
            used[pod.node].update(pod.gpus)
        return {
            name: preemption.NodeGPUs(
                topology=shape, free=frozenset(shape.indices) - frozenset(used[name])
            )
            for name, shape in self.nodes.items()
        }

    def shares(self) -> fairshare.PoolShares:
        capacity = sum(len(shape.gpus) for shape in self.nodes.values())
        return fairshare.compute(capacity, [t.claim() for t in self.tenants])

    def policies(self) -> dict[str, preemption.Policy]:
        return {t.name: t.policy() for t in self.tenants}

    def victims(
        self,
        preemptor: admission.WaitingPod,
        *,
        rule: policy.TopologyRule = policy.TopologyRule.PREFERRED,
    ) -> preemption.Victims | None:
        return preemption.choose_victims(
            preemptor=preemptor,
            running=self.running,
            nodes=self.node_gpus(),
            shares=self.shares(),
            allocated=self.allocated(),
            policies=self.policies(),
            now=NOW,
            rule=rule,
        )


def wants(gpus: int, owner: str = "a") -> admission.WaitingPod:
    return waiting_pod("w").tenant(owner).gpus(gpus).obj()


def b_holds_both_islands(**starts: float) -> tuple[preemption.RunningPod, ...]:
    return (
        running_pod("b1").tenant("b").gpus(0, 1, 2, 3).started(starts.get("b1", 0)).obj(),
        running_pod("b2").tenant("b").gpus(4, 5, 6, 7).started(starts.get("b2", 0)).obj(),
    )


def overcommitted_pool_a_holds_48() -> tuple[preemption.RunningPod, ...]:
    """64 GPUs, guarantees of 48 each (rationed to 32 each): a holds 48, b holds 16."""
    return tuple(
        running_pod(f"{owner}{i}").tenant(owner).node(f"n{i}").gpus(*range(8)).started(i).obj()
        for i, owner in enumerate("aaaaaabb")
    )


@dataclasses.dataclass(frozen=True)
class Case:
    scene: Scene
    preemptor: admission.WaitingPod
    want: tuple[str, ...] | None
    """Victim uids, or None for no preemption."""
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED
    demand: dict[int, int] = dataclasses.field(default_factory=dict)
    """The pool's waiting pods by size."""


def nvswitch_and_pcie(**starts: float) -> tuple[preemption.RunningPod, ...]:
    """b holds an NVSwitch machine and a PCIe one, each as a 2-GPU and a 6-GPU pod."""
    return tuple(
        running_pod(f"b-{node}{len(gpus)}")
        .tenant("b")
        .node(node)
        .gpus(*gpus)
        .started(starts.get(f"{node}{len(gpus)}", 0))
        .obj()
        for node in ("nv", "pc")
        for gpus in ((0, 1), (2, 3, 4, 5, 6, 7))
    )


NVSWITCH_AND_PCIE = {"nv": topo_builders.nvswitch8(), "pc": topo_builders.pcie8()}


BORROWER = (tenant("a").demand(4), tenant("b").demand(8))

CASES = [
    pytest.param(
        Case(Scene(BORROWER, b_holds_both_islands()), wants(4), ("b1",)),
        id="reclaims-from-a-borrower",
    ),
    pytest.param(
        Case(Scene(BORROWER, b_holds_both_islands(b2=100)), wants(4), ("b2",)),
        id="youngest-first",
    ),
    pytest.param(
        Case(
            Scene(
                BORROWER,
                (
                    running_pod("b1").tenant("b").gpus(0, 1, 2, 3).checkpoint(990).obj(),
                    running_pod("b2").tenant("b").gpus(4, 5, 6, 7).started(500).obj(),
                ),
            ),
            wants(4),
            ("b1",),
        ),
        id="newest-checkpoint-first",
    ),
    pytest.param(
        Case(
            Scene(
                BORROWER,
                (
                    running_pod("b1").tenant("b").gpus(0, 1, 2, 3).started(900).obj(),
                    running_pod("b2").tenant("b").gpus(4, 5, 6, 7).priority(-1).obj(),
                ),
            ),
            wants(4),
            ("b2",),
        ),
        id="lowest-priority-first",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(4), tenant("b").demand(8).min_runtime(600)),
                b_holds_both_islands(b1=500),
            ),
            wants(4),
            ("b2",),
        ),
        id="young-pods-protected-by-min-runtime",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(4), tenant("b").demand(8).min_runtime(600)),
                b_holds_both_islands(b1=500, b2=500),
            ),
            wants(4),
            None,
        ),
        id="all-too-young",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(4).no_reclaim(), tenant("b").demand(8)), b_holds_both_islands()
            ),
            wants(4),
            None,
        ),
        id="reclaim-disabled",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(8), tenant("b").demand(8)),
                (
                    running_pod("a1").tenant("a").gpus(0, 1, 2, 3).obj(),
                    running_pod("b1").tenant("b").gpus(4, 5, 6, 7).obj(),
                ),
            ),
            wants(4),
            None,
        ),
        id="would-leave-preemptor-above-share",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(2), tenant("b").demand(4), tenant("c").demand(4)),
                (
                    running_pod("b1").tenant("b").gpus(0, 1, 2, 3).obj(),
                    running_pod("c1").tenant("c").gpus(4, 5, 6, 7).obj(),
                ),
            ),
            wants(2),
            None,
        ),
        id="never-below-victim-share",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").guaranteed(4).demand(4), tenant("b").guaranteed(8).demand(8)),
                b_holds_both_islands(),
            ),
            wants(4),
            ("b1",),
        ),
        id="rationed-guarantee-protects-only-the-rationed-share",
    ),
    pytest.param(
        Case(
            Scene(BORROWER, (running_pod("b1").tenant("b").gpus(0, 1, 2, 3).obj(),)),
            wants(4),
            None,
        ),
        id="already-fits-no-eviction",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").weight(3).demand(2), tenant("b").demand(8)),
                (
                    running_pod("b0").tenant("b").gpus(0).started(750).obj(),
                    running_pod("b1").tenant("b").gpus(2).started(900).obj(),
                    running_pod("b2").tenant("b").gpus(3).started(800).obj(),
                    running_pod("b4").tenant("b").gpus(4, 5).obj(),
                    running_pod("b6").tenant("b").gpus(6, 7).obj(),
                ),
                nodes={"n1": topo_builders.islands4x2()},
            ),
            wants(2),
            ("b0",),
            rule=REQUIRED,
        ),
        id="frees-a-whole-island-cheapest-set",
    ),
    pytest.param(
        Case(
            Scene(
                BORROWER,
                (
                    running_pod("b1").tenant("b").node("n1").gpus(0, 1, 2, 3).obj(),
                    running_pod("b2").tenant("b").node("n2").gpus(0, 1, 2, 3).started(600).obj(),
                    running_pod("b3").tenant("b").node("n2").gpus(4, 5, 6, 7).started(10).obj(),
                ),
                nodes={
                    "n1": topo_builders.node(4, islands=[[0, 1, 2, 3]]),
                    "n2": topo_builders.dgx1(),
                },
            ),
            wants(4),
            ("b2",),
        ),
        id="node-with-least-lost-work",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").guaranteed(48).demand(48), tenant("b").guaranteed(48).demand(40)),
                overcommitted_pool_a_holds_48(),
                nodes={f"n{i}": topo_builders.nvswitch8() for i in range(8)},
            ),
            wants(8, owner="b"),
            ("a5",),
        ),
        id="rationed-pool-restores-the-share",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(8), tenant("b").demand(16)),
                (
                    running_pod("b-nv").tenant("b").node("nv").gpus(*range(8)).obj(),
                    running_pod("b-pc").tenant("b").node("pc").gpus(*range(8)).started(900).obj(),
                ),
                nodes=NVSWITCH_AND_PCIE,
            ),
            wants(8),
            ("b-nv",),
        ),
        id="a-wide-pod-reclaims-a-whole-island-not-a-cheaper-spread",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(2), tenant("b").demand(16)),
                nvswitch_and_pcie(nv2=900, pc2=500),
                nodes=NVSWITCH_AND_PCIE,
            ),
            wants(2),
            ("b-nv2",),
        ),
        id="a-2-gpu-pod-reclaims-an-nvlink-pair",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(2), tenant("b").demand(16)),
                nvswitch_and_pcie(nv2=900, pc2=500),
                nodes=NVSWITCH_AND_PCIE,
            ),
            wants(2),
            ("b-pc2",),
            demand={8: 1},
        ),
        id="with-an-8-gpu-pod-waiting-a-2-gpu-reclaim-leaves-its-island",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(8), tenant("b").demand(16).min_runtime(600)),
                (
                    running_pod("b-nv").tenant("b").node("nv").gpus(*range(8)).started(900).obj(),
                    running_pod("b-pc").tenant("b").node("pc").gpus(*range(8)).obj(),
                ),
                nodes=NVSWITCH_AND_PCIE,
            ),
            wants(8),
            None,
        ),
        id="a-wide-pod-waits-for-an-island-rather-than-evict-to-run-spread",
    ),
    pytest.param(
        Case(
            Scene(
                (tenant("a").demand(8), tenant("b").demand(16)),
                (
                    running_pod("b-p1").tenant("b").node("p1").gpus(*range(8)).obj(),
                    running_pod("b-p2").tenant("b").node("p2").gpus(*range(8)).started(900).obj(),
                ),
                nodes={"p1": topo_builders.pcie8(), "p2": topo_builders.pcie8()},
            ),
            wants(8),
            ("b-p2",),
        ),
        id="without-islands-in-the-pool-a-wide-pod-reclaims-a-spread",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_choose_victims(case: Case) -> None:
    scene = case.scene
    inputs = (scene.running, scene.node_gpus(), scene.shares(), scene.allocated())
    before = copy.deepcopy(inputs)

    found = preemption.choose_victims(
        preemptor=case.preemptor,
        running=inputs[0],
        nodes=inputs[1],
        shares=inputs[2],
        allocated=inputs[3],
        policies=scene.policies(),
        now=NOW,
        rule=case.rule,
        demand=case.demand,
    )

    assert (None if found is None else tuple(pod.uid for pod in found.pods)) == case.want
    if found is not None:
        freed = {gpu for pod in found.pods for gpu in pod.gpus}
        assert set(found.choice.gpus) <= set(inputs[1][found.node].free) | freed
    assert inputs == before


def apply(
    scene: Scene, preemptor: admission.WaitingPod, found: preemption.Victims
) -> tuple[Scene, list[admission.WaitingPod]]:
    """The cluster after the eviction: the preemptor runs on the chosen GPUs, the victims wait
    again (their controllers recreate them), so every tenant's demand is unchanged."""
    gone = {pod.uid for pod in found.pods}
    placed = (
        running_pod(preemptor.uid)
        .tenant(preemptor.tenant)
        .node(found.node)
        .gpus(*found.choice.gpus)
        .started(NOW)
        .obj()
    )
    after = dataclasses.replace(
        scene, running=(*(p for p in scene.running if p.uid not in gone), placed)
    )
    requeued = [
        waiting_pod(pod.uid).tenant(pod.tenant).gpus(len(pod.gpus)).obj() for pod in found.pods
    ]
    return after, requeued


def test_reclaim_settles_no_ping_pong() -> None:
    scene = Scene(BORROWER, b_holds_both_islands())
    first = scene.victims(wants(4))
    assert first is not None

    after, requeued = apply(scene, wants(4), first)

    assert after.allocated() == {"a": 4, "b": 4}
    for pod in requeued:
        assert after.victims(pod) is None
    assert after.victims(wants(4)) is None


@pytest.mark.parametrize(
    ("proposed", "preemptor", "with_node", "want"),
    [
        pytest.param(("b1",), wants(4), True, ("b1",), id="borrower-victim-allowed"),
        pytest.param(("b1", "b2"), wants(4), True, ("b1",), id="victim-beyond-reclaimable-dropped"),
        pytest.param(("b1", "b2"), wants(4), False, None, id="narrowed-without-topology-dropped"),
        pytest.param(("b1",), wants(4, owner="c"), True, None, id="preemptor-above-share"),
        pytest.param(("a1",), wants(4), True, None, id="young-own-pod-protected"),
        pytest.param(("a0",), wants(1), True, ("a0",), id="own-pod-priority-preemption"),
        pytest.param((), wants(4), True, (), id="nothing-proposed"),
    ],
)
def test_allowed_victims(
    proposed: tuple[str, ...],
    preemptor: admission.WaitingPod,
    with_node: bool,
    want: tuple[str, ...] | None,
) -> None:
    scene = Scene(
        (tenant("a").weight(2).demand(5).min_runtime(300), tenant("b").demand(8), tenant("c")),
        (
            running_pod("b1").tenant("b").gpus(0, 1, 2, 3).obj(),
            running_pod("b2").tenant("b").gpus(4, 5, 6).obj(),
            running_pod("a0").tenant("a").gpus(7).obj(),
        ),
    )
    young = running_pod("a1").tenant("a").gpus(7).started(NOW - 10).obj()
    by_uid = {pod.uid: pod for pod in (*scene.running, young)}
    victims = [by_uid[uid] for uid in proposed]
    before = copy.deepcopy(victims)

    got = preemption.allowed_victims(
        preemptor=preemptor,
        victims=victims,
        shares=scene.shares(),
        allocated=scene.allocated(),
        policies=scene.policies(),
        now=NOW,
        node=scene.node_gpus()["n1"] if with_node else None,
    )

    assert (None if got is None else tuple(pod.uid for pod in got)) == want
    assert victims == before


# --- properties -------------------------------------------------------------------------

SHAPES = [topo_builders.dgx1(), topo_builders.nvswitch8(), topo_builders.islands4x2()]


@st.composite
def scenes(draw: st.DrawFn) -> tuple[Scene, admission.WaitingPod]:
    """One or two 8-GPU nodes mostly filled with pods of tenants a..c, and a pod of ``a``
    waiting (``a`` runs few pods, so reclaim is often possible)."""
    names = ["a", "b", "c"]
    owners = st.sampled_from(["a", "b", "b", "b", "c", "c", "c"])
    nodes = {f"n{i}": draw(st.sampled_from(SHAPES)) for i in range(draw(st.integers(1, 2)))}
    running: list[preemption.RunningPod] = []
    for node_name, shape in nodes.items():
        free = list(shape.indices)
        while free:
            if draw(st.integers(0, 9)) == 0:
                break
            size = draw(st.integers(1, min(4, len(free))))
            start = draw(st.integers(0, len(free) - size))
            gpus, free = free[start : start + size], free[:start] + free[start + size :]
            running.append(
                running_pod(f"p{len(running)}")
                .tenant(draw(owners))
                .node(node_name)
                .gpus(*gpus)
                .priority(draw(st.integers(0, 1)))
                .started(draw(st.sampled_from([0.0, 500.0, 900.0])))
                .obj()
            )
    preemptor = waiting_pod("new").tenant("a").gpus(draw(st.integers(1, 4))).obj()
    tenants = []
    for name in names:
        held = sum(len(p.gpus) for p in running if p.tenant == name)
        extra = draw(st.integers(0, 4)) + (preemptor.gpus if name == "a" else 0)
        builder = (
            tenant(name)
            .weight(draw(st.sampled_from([1.0, 2.0])))
            .guaranteed(draw(st.integers(0, 4)))
            .demand(held + extra)
            .min_runtime(draw(st.sampled_from([0.0, 0.0, 300.0])))
        )
        tenants.append(builder)
    return Scene(tuple(tenants), tuple(running), nodes), preemptor


@settings(max_examples=300, deadline=None)
@given(scenario=scenes(), rule=st.sampled_from(list(policy.TopologyRule)))
def test_preemption_invariants(
    scenario: tuple[Scene, admission.WaitingPod], rule: policy.TopologyRule
) -> None:
    scene, preemptor = scenario
    found = scene.victims(preemptor, rule=rule)
    event("victims" if found is not None else "no victims")
    if found is None:
        return
    shares = scene.shares()
    allocated = scene.allocated()
    nodes = scene.node_gpus()
    policies = scene.policies()

    # the preemptor ends within its share
    assert allocated[preemptor.tenant] + preemptor.gpus <= shares.share(preemptor.tenant) + 1e-6
    # no victim tenant ends below its share or guarantee; no protected pod is evicted
    for name in allocated:
        lost = sum(len(p.gpus) for p in found.pods if p.tenant == name)
        if lost:
            assert name != preemptor.tenant
            assert allocated[name] - lost >= shares.protected(name) - 1e-6
    for pod in found.pods:
        assert pod.node == found.node
        assert pod.runtime(NOW) >= policies[pod.tenant].min_runtime_seconds
    # the eviction makes the pod fit, and every victim is needed for that
    freed = {gpu for pod in found.pods for gpu in pod.gpus}
    state = nodes[found.node]
    assert set(found.choice.gpus) <= set(state.free) | freed
    assert len(found.choice.gpus) == preemptor.gpus
    for pod in found.pods:
        without = freed - set(pod.gpus)
        assert isinstance(
            placement.choose(
                state.topology, free=state.free | without, count=preemptor.gpus, rule=rule
            ),
            placement.NoFit,
        )
    # and the shares settle: none of the victims' tenants can take GPUs back
    after, requeued = apply(scene, preemptor, found)
    for again in requeued:
        assert after.victims(again, rule=rule) is None


@pytest.mark.parametrize(
    ("spare_cpu", "victim_cpu", "needs_cpu", "want"),
    [
        pytest.param(None, 0, 64_000, ("b4",), id="room-not-reported-not-checked"),
        pytest.param(0, 8_000, 8_000, ("b4",), id="victim-frees-the-cpu"),
        pytest.param(0, 4_000, 8_000, ("b3", "b4"), id="two-victims-free-the-cpu"),
        pytest.param(0, 1_000, 8_000, None, id="no-set-frees-enough-cpu"),
    ],
)
def test_victims_free_the_cpu_the_preemptor_needs(
    spare_cpu: int | None, victim_cpu: int, needs_cpu: int, want: tuple[str, ...] | None
) -> None:
    """Freed GPUs are not enough: the preemptor's CPU and memory must fit too (issue 13 item 1)."""
    running = tuple(
        running_pod(f"b{i}").tenant("b").gpus(2 * i - 2, 2 * i - 1).started(100 * i).obj()
        for i in range(1, 5)
    )
    running = tuple(dataclasses.replace(pod, cpu_millis=victim_cpu) for pod in running)
    scene = Scene((tenant("a").demand(8), tenant("b").demand(8)), running)
    nodes = {
        name: dataclasses.replace(
            state,
            spare=None if spare_cpu is None else preemption.Room(spare_cpu, 1 << 40),
        )
        for name, state in scene.node_gpus().items()
    }
    found = preemption.choose_victims(
        preemptor=wants(2),
        running=running,
        nodes=nodes,
        shares=scene.shares(),
        allocated=scene.allocated(),
        policies=scene.policies(),
        now=NOW,
        needs=preemption.Room(cpu_millis=needs_cpu),
    )
    assert (None if found is None else tuple(sorted(p.uid for p in found.pods))) == want


# -- pod groups: room for every member at once, or no reclaim ------------------------------

TWO_NODES = {"n1": topo_builders.dgx1(), "n2": topo_builders.dgx1()}


def b_holds_two_nodes() -> tuple[preemption.RunningPod, ...]:
    """b holds both nodes in islands of four: b1, b2 on n1 and b3, b4 on n2 (b4 youngest)."""
    return tuple(
        running_pod(f"b{i + 1}").tenant("b").node(node).gpus(*gpus).started(i).obj()
        for i, (node, gpus) in enumerate(
            [("n1", range(4)), ("n1", range(4, 8)), ("n2", range(4)), ("n2", range(4, 8))]
        )
    )


def members(*sizes: int, owner: str = "a") -> list[admission.WaitingPod]:
    return [waiting_pod(f"m{i}").tenant(owner).gpus(gpus).obj() for i, gpus in enumerate(sizes)]


@dataclasses.dataclass(frozen=True)
class GroupCase:
    scene: Scene
    members: list[admission.WaitingPod]
    want: tuple[str, ...] | None
    """Victim uids (any order), or None for no reclaim."""


GROUP_CASES = [
    pytest.param(
        GroupCase(
            Scene((tenant("a").demand(8), tenant("b").demand(16)), b_holds_two_nodes(), TWO_NODES),
            members(4, 4),
            ("b3", "b4"),
        ),
        id="room-for-both-members-from-the-youngest-victims",
    ),
    pytest.param(
        GroupCase(
            Scene((tenant("a").demand(12), tenant("b").demand(16)), b_holds_two_nodes(), TWO_NODES),
            members(4, 4, 4),
            None,
        ),
        id="beyond-the-groups-share-no-member-reclaims",
    ),
    pytest.param(
        GroupCase(
            Scene(
                (tenant("a").demand(8), tenant("b").demand(16)),
                b_holds_two_nodes()[:3],
                TWO_NODES,
            ),
            members(4, 4),
            ("b3",),
        ),
        id="one-member-fits-free-the-other-reclaims",
    ),
    pytest.param(
        GroupCase(
            Scene(
                (tenant("a").demand(8), tenant("b").demand(16)), b_holds_two_nodes()[:2], TWO_NODES
            ),
            members(4, 4),
            None,
        ),
        id="fits-without-victims",
    ),
    pytest.param(
        GroupCase(
            Scene(
                # Weights 2:1:1 over 16 GPUs: shares a 8, b 4 (all it holds), c 4 (holds 12).
                (
                    tenant("a").weight(2).demand(8),
                    tenant("b").demand(4),
                    tenant("c").demand(12),
                ),
                (
                    *b_holds_two_nodes()[:1],
                    *(
                        running_pod(f"c{i}").tenant("c").node(node).gpus(*gpus).obj()
                        for i, (node, gpus) in enumerate(
                            [("n1", range(4, 8)), ("n2", range(4)), ("n2", range(4, 8))]
                        )
                    ),
                ),
                TWO_NODES,
            ),
            members(4, 4),
            ("c0", "c1"),
        ),
        id="victims-only-from-tenants-above-their-share",
    ),
]


def group_victims(scene: Scene, members: list[admission.WaitingPod]) -> preemption.Reclaim | None:
    """What :func:`preemption.reclaim_in_turn` gives a group reclaiming alone (None: nothing)."""
    served = preemption.reclaim_in_turn(
        preemptors=[preemption.Preemptor(pods=tuple(members))],
        running=scene.running,
        nodes=scene.node_gpus(),
        shares=scene.shares(),
        allocated=scene.allocated(),
        policies=scene.policies(),
        now=NOW,
    )
    return served[0] if served else None


@pytest.mark.parametrize("case", GROUP_CASES)
def test_a_group_reclaims_for_every_member_or_none(case: GroupCase) -> None:
    scene = case.scene
    found = group_victims(scene, case.members)
    if case.want is None:
        assert found is None
        return
    assert found is not None
    assert sorted(pod.uid for pod in found.pods) == sorted(case.want)
    # Every member placed, on GPUs that are free once the victims have gone, none shared.
    assert set(found.placements) == {member.uid for member in case.members}
    free = {name: set(state.free) for name, state in scene.node_gpus().items()}
    for pod in found.pods:
        free[pod.node] |= set(pod.gpus)
    for member in case.members:
        node, gpus = found.placements[member.uid]
        assert len(gpus) == member.gpus
        assert set(gpus) <= free[node]
        free[node] -= set(gpus)


@settings(max_examples=200, deadline=None)
@given(scenario=scenes(), second=st.integers(1, 4))
def test_group_reclaim_invariants(
    scenario: tuple[Scene, admission.WaitingPod], second: int
) -> None:
    """A group of the scene's waiting pod and a second one of ``a``: when victims are chosen,
    the whole group ends within a's share, no victim's tenant ends below what it is protected
    to keep, and every member has its own GPUs, free once the victims are gone."""
    scene, first = scenario
    group = [first, waiting_pod("new2").tenant("a").gpus(second).obj()]
    found = group_victims(scene, group)
    event("victims" if found is not None else "no victims")
    if found is None:
        return
    shares, allocated = scene.shares(), scene.allocated()
    assert allocated["a"] + first.gpus + second <= shares.share("a") + 1e-6
    for name in allocated:
        lost = sum(len(p.gpus) for p in found.pods if p.tenant == name)
        if lost:
            assert name != "a"
            assert allocated[name] - lost >= shares.protected(name) - 1e-6
    free = {name: set(state.free) for name, state in scene.node_gpus().items()}
    for pod in found.pods:
        free[pod.node] |= set(pod.gpus)
    for member in group:
        node, gpus = found.placements[member.uid]
        assert len(gpus) == member.gpus
        assert set(gpus) <= free[node]
        free[node] -= set(gpus)


# -- several preemptors in one pass ------------------------------------------------------------


def b_holds_sixteen_single_gpu_pods() -> tuple[preemption.RunningPod, ...]:
    """b holds both nodes in one-GPU pods, started in order (b15 youngest)."""
    return tuple(
        running_pod(f"b{i}").tenant("b").node(f"n{1 + i // 8}").gpus(i % 8).started(i).obj()
        for i in range(16)
    )


@pytest.mark.parametrize(
    ("sizes", "a_demand", "limit", "want"),
    [
        pytest.param((1, 1), 2, 2, [("w0", {"b15"}), ("w1", {"b14"})], id="two-pods-two-victims"),
        pytest.param((1, 1), 2, 1, [("w0", {"b15"})], id="at-most-limit"),
        # a's share is 1: the second pod would take a above it once the first has run.
        pytest.param((1, 1), 1, 2, [("w0", {"b15"})], id="the-second-judged-after-the-first"),
        # A multi-GPU pod reclaims alone: first of its batch, or it ends the batch.
        pytest.param((2, 1), 3, 2, [("w0", {"b14", "b15"})], id="a-wide-pod-reclaims-alone"),
        pytest.param((1, 2), 3, 2, [("w0", {"b15"})], id="a-batch-stops-at-a-wide-pod"),
    ],
)
def test_reclaim_in_turn(
    sizes: tuple[int, int], a_demand: int, limit: int, want: list[tuple[str, set[str]]]
) -> None:
    scene = Scene(
        (tenant("a").demand(a_demand), tenant("b").demand(16)),
        b_holds_sixteen_single_gpu_pods(),
        TWO_NODES,
    )
    preemptors = [
        preemption.Preemptor(pods=(waiting_pod(f"w{i}").tenant("a").gpus(size).obj(),))
        for i, size in enumerate(sizes)
    ]
    served = preemption.reclaim_in_turn(
        preemptors=preemptors,
        running=scene.running,
        nodes=scene.node_gpus(),
        shares=scene.shares(),
        allocated=scene.allocated(),
        policies=scene.policies(),
        now=NOW,
        limit=limit,
    )
    got = [(reclaim.preemptor.pods[0].uid, {pod.uid for pod in reclaim.pods}) for reclaim in served]
    assert got == want
