"""The pass places admitted pods by asking each group of alike nodes once (issue 16): the node
it picks and the GPUs it takes must be exactly what asking every node would give; and a pass
that asks what the previous one asked is answered from it (``_PoolFree``), exactly as anew."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
from tests.builders import topology as topologies

from gpufair.core import placement, policy
from gpufair.core import topology as topo
from gpufair.state import model, occupancy, passcache, scheduling

SHAPES = {
    "dgx1": topologies.dgx1(),
    "nvswitch8": topologies.nvswitch8(),
    "pcie8": topologies.pcie8(),
    "islands4x2": topologies.islands4x2(),
}


def pool_with(
    nodes: dict[str, tuple[topo.NodeTopology, frozenset[int]]],
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
) -> occupancy.PoolOccupancy:
    return occupancy.PoolOccupancy(
        pool=model.Pool(name="p", mode=mode, rule=rule),
        nodes=(),
        free={name: free for name, (_, free) in nodes.items()},
        indices={},
        topologies={name: shape for name, (shape, _) in nodes.items()},
        capacity=8 * len(nodes),
        allocated=0,
        in_flight=0,
        missing_topology=(),
        holders=(),
    )


def take_asking_every_node(
    view: occupancy.PoolOccupancy, free: dict[str, frozenset[int]], gpus: int
) -> bool:
    """The reference: every node asked, in name order, the first best score wins."""
    best: tuple[int, str, tuple[int, ...]] | None = None
    for name, available in sorted(free.items()):
        if len(available) < gpus:
            continue
        choice = placement.choose(
            view.topologies[name],
            free=available,
            count=gpus,
            mode=view.pool.mode,
            rule=view.pool.rule,
        )
        if isinstance(choice, placement.Choice) and (best is None or choice.score > best[0]):
            best = (choice.score, name, choice.gpus)
    if best is None:
        return False
    free[best[1]] = free[best[1]] - frozenset(best[2])
    return True


@st.composite
def pools(draw: st.DrawFn) -> occupancy.PoolOccupancy:
    count = draw(st.integers(min_value=1, max_value=12))
    nodes = {}
    for index in range(count):
        shape = SHAPES[draw(st.sampled_from(sorted(SHAPES)))]
        free = draw(st.frozensets(st.sampled_from(shape.indices)))
        nodes[f"node-{draw(st.integers(0, 99)):02d}-{index}"] = (shape, free)
    return pool_with(
        nodes,
        draw(st.sampled_from(list(policy.PlacementMode))),
        draw(st.sampled_from(list(policy.TopologyRule))),
    )


@hypothesis.given(
    view=pools(), sizes=st.lists(st.sampled_from([1, 2, 3, 4, 8]), min_size=1, max_size=20)
)
def test_grouped_placement_takes_what_asking_every_node_takes(
    view: occupancy.PoolOccupancy, sizes: list[int]
) -> None:
    expected = dict(view.free)
    grouped = scheduling._FreeNodes(view, dict(view.free))
    for gpus in sizes:
        assert grouped.take(gpus) == take_asking_every_node(view, expected, gpus)
        assert grouped.free == expected


def test_alike_nodes_are_asked_once_and_the_first_by_name_is_taken() -> None:
    shape = SHAPES["dgx1"]
    everything = frozenset(shape.indices)
    view = pool_with(
        {"b": (shape, everything), "a": (shape, everything), "c": (shape, everything)},
        policy.PlacementMode.PACK,
        policy.TopologyRule.PREFERRED,
    )
    grouped = scheduling._FreeNodes(view, dict(view.free))
    assert grouped.take(4)
    assert grouped.take(4)
    assert [name for name in "abc" if grouped.free[name] != everything] == ["a"]
    assert grouped.free["a"] == frozenset()


Op = tuple[str, int]


def ask(
    nodes: scheduling._PoolFree | scheduling._FreeNodes, view: occupancy.PoolOccupancy, op: Op
) -> object:
    """One of admission's questions: take a size, take one GPU of a node (as a group's plan
    does; a GPU not free stays taken), or the largest free set."""
    kind, value = op
    if kind == "take":
        return nodes.take(value)
    if kind == "remove":
        names = sorted(view.free)
        nodes.remove(names[value % len(names)], [value % 8])
        return None
    return nodes.largest_free()


ops = st.lists(
    st.tuples(st.sampled_from(["take", "take", "take", "largest"]), st.sampled_from([1, 2, 4, 8]))
    | st.tuples(st.just("remove"), st.integers(0, 20)),
    max_size=15,
)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    view=pools(),
    first=ops,
    shared=st.integers(0, 15),
    then=ops,
    demand=st.dictionaries(st.sampled_from([2, 4, 8]), st.integers(1, 3)),
    other=st.none() | st.dictionaries(st.sampled_from([2, 4, 8]), st.integers(1, 3)),
)
def test_placements_answered_from_the_previous_pass_are_what_placing_anew_gives(
    view: occupancy.PoolOccupancy,
    first: list[Op],
    shared: int,
    then: list[Op],
    demand: dict[int, int],
    other: dict[int, int] | None,
) -> None:
    """A pass asks what the previous one asked (up to ``shared`` questions), then something
    else (or nothing), with the same or other waiting demand: each answer, the free total and
    the free GPUs at the end are those of a pool placed anew."""
    cache = passcache.PassCache()
    second = demand if other is None else other
    for asked, waiting in ((first, demand), ([*first[:shared], *then], second)):
        free = dict(view.free)
        replayed = scheduling._PoolFree(view, free, waiting, cache)
        reference = scheduling._FreeNodes(view, dict(view.free), waiting)
        for op in asked:
            assert ask(replayed, view, op) == ask(reference, view, op), op
            assert replayed.total == sum(len(gpus) for gpus in reference.free.values())
        replayed.finish()
        assert free == reference.free
