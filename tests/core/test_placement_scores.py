"""Scores across nodes: the extender's prioritize ranks the candidate nodes of one pod by them.

Orderings, not figures: for the same request, link quality first (multi-GPU pods); then, for
Pack, a choice that breaks no wholly free NVLink island beats one that breaks a small island,
which beats one that breaks a bigger island; then the fuller node. Nodes are the real machines
of ``../shared/data/topology/``, read by the parser, plus builder shapes where no capture has
the shape (eight GPUs in NVLink pairs).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.topology import islands4x2, node_with_free, topologies

from gpufair.core import placement, policy, topology, topology_matrix

L = topology.LinkLevel
PACK = policy.PlacementMode.PACK
SPREAD = policy.PlacementMode.SPREAD

CAPTURES = {
    "dgx-a100": "dgx-a100-8gpu-nv12-12nic-4numa.txt",
    "hgx-h200": "hgx-h200-8gpu-nv18-10nic.txt",
    "dgx1": "dgx1-v100-8gpu-mlx5.txt",
    "rtx4090": "vastai-8x-rtx4090-pcie-2numa.txt",
    "rtx4090-sys": "issue-8x-rtx4090-all-sys-2numa-2nic-go-gpuallocator17.txt",
    "quadro": "pcie-8x-quadro-rtx6000-pix-pxb.txt",
    "power9": "ibm-power9-traverse-4x-v100-nv3-4nic.txt",
    "polaris": "alcf-polaris-4x-a100-nv4-4numa-2nic.txt",
}
BUILT = {"pairs8": islands4x2}


@functools.cache
def shape(name: str, data: pathlib.Path) -> topology.NodeTopology:
    """A node by name: a real capture parsed as the node agent does, or a builder shape."""
    if name in BUILT:
        return BUILT[name]()
    text = (data / "topology" / CAPTURES[name]).read_text()
    return topology.from_matrix(topology_matrix.parse(text))


@pytest.mark.parametrize(
    ("name", "island_sizes", "gpus"),
    [
        pytest.param("dgx-a100", [8], 8, id="dgx-a100-nvswitch"),
        pytest.param("hgx-h200", [8], 8, id="hgx-h200-nvswitch"),
        pytest.param("dgx1", [4, 4], 8, id="dgx1-cube-mesh"),
        pytest.param("rtx4090", [], 8, id="rtx4090-pcie"),
        pytest.param("rtx4090-sys", [], 8, id="rtx4090-all-sys"),
        pytest.param("quadro", [], 8, id="quadro-pcie-switches"),
        pytest.param("power9", [2, 2], 4, id="power9-nvlink-pairs"),
        pytest.param("polaris", [4], 4, id="polaris-one-island"),
        pytest.param("pairs8", [2, 2, 2, 2], 8, id="built-nvlink-pairs"),
    ],
)
def test_the_shapes_are_what_the_orderings_assume(
    name: str, island_sizes: list[int], gpus: int, shared_data: pathlib.Path
) -> None:
    node_ = shape(name, shared_data)
    assert len(node_.gpus) == gpus
    assert [len(island) for island in node_.nvlink_islands()] == island_sizes


@dataclasses.dataclass(frozen=True)
class On:
    """A request on a node of ``shape`` whose GPUs ``used`` are taken."""

    shape: str
    count: int
    used: frozenset[int] = frozenset()
    mode: policy.PlacementMode = PACK

    def choice(self, data: pathlib.Path) -> placement.Choice:
        node_ = shape(self.shape, data)
        free = frozenset(node_.indices) - self.used
        result = placement.choose(node_, free=free, count=self.count, mode=self.mode)
        assert isinstance(result, placement.Choice), result
        return result


def used(*gpus: int) -> frozenset[int]:
    return frozenset(gpus)


ORDERINGS = [
    # One GPU: no island broken > a small island broken > a bigger island broken.
    pytest.param(On("rtx4090", 1), On("dgx1", 1), id="1gpu-pcie-beats-breaking-an-island-of-4"),
    pytest.param(On("quadro", 1), On("dgx1", 1), id="1gpu-pcie-switches-beat-breaking-4"),
    pytest.param(On("pairs8", 1), On("dgx1", 1), id="1gpu-breaking-a-pair-beats-breaking-4"),
    pytest.param(On("power9", 1), On("dgx1", 1), id="1gpu-breaking-a-pair-beats-breaking-4-4gpu"),
    pytest.param(On("dgx1", 1), On("dgx-a100", 1), id="1gpu-breaking-4-beats-breaking-8"),
    pytest.param(On("dgx1", 1), On("hgx-h200", 1), id="1gpu-breaking-4-beats-breaking-8-h200"),
    pytest.param(On("polaris", 1), On("hgx-h200", 1), id="1gpu-4gpu-node-island-4-beats-8"),
    pytest.param(
        On("dgx-a100", 1, used(0)),
        On("dgx1", 1),
        id="1gpu-partly-used-island-beats-breaking-one",
    ),
    pytest.param(
        On("dgx1", 1, used(0)),
        On("pairs8", 1),
        id="1gpu-leftover-of-a-cube-mesh-island-beats-breaking-a-pair",
    ),
    # One GPU, nothing broken either way: the fuller node.
    pytest.param(On("rtx4090", 1, used(0, 1, 2, 3)), On("rtx4090", 1), id="1gpu-fuller-pcie"),
    pytest.param(
        On("dgx-a100", 1, used(0, 1, 2, 3)),
        On("rtx4090", 1, used(0)),
        id="1gpu-fuller-nvswitch-leftovers-beat-emptier-pcie",
    ),
    # One GPU, the same island broken either way: the fuller node.
    pytest.param(
        On("dgx1", 1, used(0, 1, 2, 3)), On("dgx1", 1), id="1gpu-breaking-4-fuller-cube-mesh"
    ),
    # Two GPUs on NVLink: no island broken > a small island broken > a bigger island broken.
    pytest.param(On("dgx1", 2, used(0, 1)), On("dgx1", 2), id="2gpu-leftovers-beat-breaking-4"),
    pytest.param(On("power9", 2), On("dgx1", 2), id="2gpu-whole-pair-beats-breaking-4"),
    pytest.param(On("pairs8", 2), On("dgx-a100", 2), id="2gpu-whole-pair-beats-breaking-8"),
    pytest.param(On("dgx1", 2), On("dgx-a100", 2), id="2gpu-breaking-4-beats-breaking-8"),
    pytest.param(
        On("dgx-a100", 2, used(0, 1)), On("dgx1", 2), id="2gpu-nvswitch-leftovers-beat-breaking-4"
    ),
    # Two GPUs on NVLink, nothing broken either way: the fuller node.
    pytest.param(
        On("hgx-h200", 2, used(0, 1, 2, 3)),
        On("hgx-h200", 2, used(0)),
        id="2gpu-fuller-nvswitch",
    ),
    # Link quality dominates, even over breaking a whole island of 8 on an empty node.
    pytest.param(On("dgx-a100", 2), On("quadro", 2), id="2gpu-nvlink-beats-one-switch"),
    pytest.param(On("quadro", 2), On("rtx4090", 2), id="2gpu-one-switch-beats-one-numa-node"),
    pytest.param(
        On("rtx4090-sys", 2, used(6, 7)),
        On("rtx4090-sys", 2, used(1, 2, 3, 5, 6, 7)),
        id="2gpu-one-numa-node-beats-across-sockets-even-emptier",
    ),
    pytest.param(
        On("dgx-a100", 4), On("rtx4090-sys", 4, used(0, 1, 4, 5)), id="4gpu-nvlink-vs-sys"
    ),
    pytest.param(On("hgx-h200", 4), On("rtx4090", 4), id="4gpu-nvlink-beats-one-numa-node"),
    pytest.param(On("dgx1", 4), On("dgx-a100", 4), id="4gpu-whole-island-beats-breaking-8"),
    pytest.param(On("hgx-h200", 8), On("dgx1", 8), id="8gpu-one-island-beats-two"),
    # PCIe-only machines at the same level: the fuller node.
    pytest.param(
        On("rtx4090", 2, used(0, 1, 2, 3)), On("rtx4090", 2), id="2gpu-fuller-pcie-same-level"
    ),
    # Spread: quality first, then the emptier node.
    pytest.param(
        On("rtx4090", 1, mode=SPREAD),
        On("rtx4090", 1, used(0, 1, 2, 3), mode=SPREAD),
        id="spread-1gpu-emptier",
    ),
    pytest.param(
        On("dgx-a100", 2, used(0, 1, 2, 3), mode=SPREAD),
        On("quadro", 2, mode=SPREAD),
        id="spread-2gpu-nvlink-beats-an-emptier-switch",
    ),
]


@pytest.mark.parametrize(("better", "worse"), ORDERINGS)
def test_scores_order_nodes(better: On, worse: On, shared_data: pathlib.Path) -> None:
    assert better.choice(shared_data).score > worse.choice(shared_data).score


def test_bands_fit_the_score_range_and_do_not_overlap_for_multi_gpu_levels() -> None:
    multi = [L.NVLINK, L.PIX, L.NODE, L.SYS]
    for level in L:
        low, high = placement.BANDS[level]
        assert 0 <= low <= high <= placement.MAX_SCORE
    for better, worse in itertools.pairwise(multi):
        assert placement.BANDS[better][0] > placement.BANDS[worse][1]
    assert placement.BANDS[L.SELF] == (0, placement.MAX_SCORE)


# Properties over any topology a labeller might set.


def _whole_free_islands(node_: topology.NodeTopology, free: frozenset[int]) -> list[set[int]]:
    """Wholly free islands of two or more GPUs: the ones a single GPU can break."""
    islands = [set(island) for island in node_.nvlink_islands() if len(island) >= 2]
    return [island for island in islands if island <= free]


@st.composite
def _breaking_an_island(draw: st.DrawFn) -> tuple[topology.NodeTopology, frozenset[int]]:
    """A node whose free GPUs are all in wholly free islands: one GPU breaks one of them."""
    node_ = draw(
        topologies().filter(lambda t: any(len(island) >= 2 for island in t.nvlink_islands()))
    )
    islands = [frozenset(i) for i in node_.nvlink_islands() if len(i) >= 2]
    chosen = draw(st.lists(st.sampled_from(islands), min_size=1, unique=True))
    return node_, frozenset().union(*chosen)


def _has_a_gpu_outside_whole_free_islands(
    shape_: tuple[topology.NodeTopology, frozenset[int]],
) -> bool:
    node_, free = shape_
    whole = set().union(*_whole_free_islands(node_, free))
    return bool(free - whole)


def _score(node_: topology.NodeTopology, free: frozenset[int], count: int) -> int:
    result = placement.choose(node_, free=free, count=count, mode=PACK)
    assert isinstance(result, placement.Choice)
    return result.score


@given(node_with_free().filter(_has_a_gpu_outside_whole_free_islands), _breaking_an_island())
def test_one_gpu_on_leftovers_or_no_island_scores_above_breaking_a_whole_island(
    keeping: tuple[topology.NodeTopology, frozenset[int]],
    breaking: tuple[topology.NodeTopology, frozenset[int]],
) -> None:
    breaking_node, breaking_free = breaking
    broken = placement.choose(breaking_node, free=breaking_free, count=1)
    assert isinstance(broken, placement.Choice)
    assert any(broken.gpus[0] in i for i in _whole_free_islands(breaking_node, breaking_free))
    assert _score(*keeping, count=1) > broken.score


@given(
    node_with_free(),
    node_with_free(),
    st.integers(min_value=2, max_value=8),
    st.sampled_from(list(policy.PlacementMode)),
)
def test_a_better_link_level_always_scores_higher(
    first: tuple[topology.NodeTopology, frozenset[int]],
    second: tuple[topology.NodeTopology, frozenset[int]],
    count: int,
    mode: policy.PlacementMode,
) -> None:
    answers = [placement.choose(n, free=f, count=count, mode=mode) for n, f in (first, second)]
    choices = [a for a in answers if isinstance(a, placement.Choice)]
    if len(choices) < 2:
        return
    a, b = sorted(choices, key=lambda c: c.level)
    if a.level < b.level:
        assert a.score > b.score


@st.composite
def _no_island_node_and_two_free_sets(
    draw: st.DrawFn,
) -> tuple[topology.NodeTopology, frozenset[int], frozenset[int]]:
    """A node without NVLink, a free set and a subset of it (the same node, fuller)."""
    with_islands, emptier = draw(node_with_free())
    node_ = topology.NodeTopology(
        gpus=tuple(dataclasses.replace(gpu, nvlink_island=None) for gpu in with_islands.gpus)
    )
    fuller = draw(st.frozensets(st.sampled_from(sorted(emptier)))) if emptier else emptier
    return node_, emptier, fuller


@given(_no_island_node_and_two_free_sets(), st.integers(min_value=1, max_value=8))
def test_pack_never_prefers_the_emptier_node_at_the_same_level(
    case: tuple[topology.NodeTopology, frozenset[int], frozenset[int]], count: int
) -> None:
    node_, emptier, fuller = case
    on_emptier = placement.choose(node_, free=emptier, count=count, mode=PACK)
    on_fuller = placement.choose(node_, free=fuller, count=count, mode=PACK)
    if not isinstance(on_emptier, placement.Choice) or not isinstance(on_fuller, placement.Choice):
        return
    if on_emptier.level == on_fuller.level:
        assert on_fuller.score >= on_emptier.score
