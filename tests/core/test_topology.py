"""The topology model: islands and switch groups from a link matrix, levels, JSON shape."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.topology import dgx1, node

from gpufair.core import topology

L = topology.LinkLevel
_CODES = {"X": L.SELF, "NV": L.NVLINK, "PIX": L.PIX, "PXB": L.PXB, "PHB": L.PHB, "SYS": L.SYS}


def levels(*rows: str) -> list[list[topology.LinkLevel]]:
    """A link matrix from rows of space-separated codes (``X NV PIX PXB PHB SYS``)."""
    return [[_CODES[code] for code in row.split()] for row in rows]


DGX1_MESH = levels(
    "X   NV  NV  NV  NV  SYS SYS SYS",
    "NV  X   NV  NV  SYS NV  SYS SYS",
    "NV  NV  X   NV  SYS SYS NV  SYS",
    "NV  NV  NV  X   SYS SYS SYS NV",
    "NV  SYS SYS SYS X   NV  NV  NV",
    "SYS NV  SYS SYS NV  X   NV  NV",
    "SYS SYS NV  SYS NV  NV  X   NV",
    "SYS SYS SYS NV  NV  NV  NV  X",
)


@pytest.mark.parametrize(
    ("matrix", "islands", "groups"),
    [
        pytest.param(DGX1_MESH, [[0, 1, 2, 3], [4, 5, 6, 7]], [], id="dgx1-cube-mesh"),
        pytest.param(levels("X NV NV", "NV X NV", "NV NV X"), [[0, 1, 2]], [], id="all-to-all"),
        pytest.param(
            levels("X NV SYS", "NV X NV", "SYS NV X"), [[0, 1]], [], id="chain-lowest-first"
        ),
        pytest.param(
            levels("X SYS NV", "SYS X NV", "NV NV X"), [[0, 2]], [], id="chain-tie-lowest-indices"
        ),
        pytest.param(
            levels(
                "X   NV  SYS NV  SYS",
                "NV  X   NV  NV  SYS",
                "SYS NV  X   NV  SYS",
                "NV  NV  NV  X   SYS",
                "SYS SYS SYS SYS X",
            ),
            [[0, 1, 3]],
            [],
            id="largest-clique-first-leftover-alone",
        ),
        pytest.param(
            levels("X PIX PXB", "PIX X PIX", "PXB PIX X"), [], [[0, 1, 2]], id="pix-is-transitive"
        ),
        pytest.param(
            levels("X PIX SYS SYS", "PIX X SYS SYS", "SYS SYS X PHB", "SYS SYS PHB X"),
            [],
            [[0, 1]],
            id="no-pix-peer-no-group",
        ),
        pytest.param(
            levels("X SYS NV SYS", "SYS X SYS NV", "NV SYS X SYS", "SYS NV SYS X"),
            [[0, 2], [1, 3]],
            [],
            id="ids-by-lowest-member",
        ),
        pytest.param([], [], [], id="no-gpus"),
    ],
)
def test_islands_and_switch_groups(
    matrix: list[list[topology.LinkLevel]], islands: list[list[int]], groups: list[list[int]]
) -> None:
    node_ = topology.from_link_matrix(matrix, numa=[None] * len(matrix))
    assert [list(i) for i in node_.nvlink_islands()] == islands
    assert [list(g) for g in node_.pcie_switch_groups()] == groups
    in_island = {gpu for island in islands for gpu in island}
    for gpu in node_.gpus:
        assert (gpu.nvlink_island is None) == (gpu.index not in in_island)


def test_island_ids_number_from_zero_by_lowest_member() -> None:
    node_ = topology.from_link_matrix(
        levels("X SYS NV SYS", "SYS X SYS NV", "NV SYS X SYS", "SYS NV SYS X"),
        numa=[0, 1, 0, 1],
    )
    assert [gpu.nvlink_island for gpu in node_.gpus] == [0, 1, 0, 1]
    assert [gpu.numa for gpu in node_.gpus] == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("matrix", "numa", "message"),
    [
        pytest.param(levels("X PIX", "PIX X"), [0], "NUMA ids", id="numa-length"),
        pytest.param([[L.SELF, L.PIX], [L.PIX]], [0, 0], "row 1", id="ragged"),
    ],
)
def test_bad_matrix_is_refused(
    matrix: list[list[topology.LinkLevel]], numa: list[int | None], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        topology.from_link_matrix(matrix, numa=numa)


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        pytest.param(2, 2, L.SELF, id="self"),
        pytest.param(0, 1, L.NVLINK, id="same-island"),
        pytest.param(2, 3, L.PIX, id="same-switch"),
        pytest.param(3, 4, L.NODE, id="same-numa"),
        pytest.param(0, 5, L.SYS, id="across-sockets"),
        pytest.param(5, 6, L.SYS, id="none-never-matches"),
    ],
)
def test_level_follows_the_attributes(a: int, b: int, want: topology.LinkLevel) -> None:
    node_ = node(7, islands=[[0, 1]], pcie=[[2, 3]], numa=[0, 0, 0, 0, 0, 1, None])
    assert node_.level(a, b) == want
    assert node_.level(b, a) == want


def test_level_of_unknown_gpu_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        dgx1().level(0, 8)


def test_json_shape() -> None:
    node_ = node(4, islands=[[0, 1]], pcie=[[2, 3]], numa=[0, 0, 1, None])
    assert node_.to_json() == {
        "gpus": [
            {"index": 0, "numa": 0, "pcie_switch": None, "nvlink_island": 0},
            {"index": 1, "numa": 0, "pcie_switch": None, "nvlink_island": 0},
            {"index": 2, "numa": 1, "pcie_switch": 0, "nvlink_island": None},
            {"index": 3, "numa": None, "pcie_switch": 0, "nvlink_island": None},
        ],
        "nvlink_islands": [[0, 1]],
        "pcie_switch_groups": [[2, 3]],
    }
    assert node_.indices == (0, 1, 2, 3)
    assert node_.numa_nodes() == ((0, 1), (2,))


@pytest.mark.parametrize(
    "indices",
    [
        pytest.param((0, 0), id="duplicate"),
        pytest.param((1, 0), id="unordered"),
        pytest.param((-1,), id="negative"),
    ],
)
def test_gpu_indices_are_unique_and_ascending(indices: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="indices"):
        topology.NodeTopology(gpus=tuple(topology.GPU(index=i) for i in indices))


def test_topology_is_hashable_and_compares_by_value() -> None:
    assert dgx1() == dgx1()
    assert hash(dgx1()) == hash(dgx1())


_LINKS = st.sampled_from([L.NVLINK, L.NVLINK, L.PIX, L.PXB, L.SYS])


@st.composite
def _link_matrices(draw: st.DrawFn) -> list[list[topology.LinkLevel]]:
    count = draw(st.integers(min_value=0, max_value=9))
    matrix = [[L.SELF] * count for _ in range(count)]
    for i in range(count):
        for j in range(i):
            matrix[i][j] = matrix[j][i] = draw(_LINKS)
    return matrix


@given(_link_matrices())
def test_islands_are_disjoint_maximum_cliques(matrix: list[list[topology.LinkLevel]]) -> None:
    node_ = topology.from_link_matrix(matrix, numa=[None] * len(matrix))
    islands = node_.nvlink_islands()
    members = [gpu for island in islands for gpu in island]
    assert len(members) == len(set(members))
    for island in islands:
        assert len(island) >= 2
        for a, b in itertools.combinations(island, 2):
            assert matrix[a][b] == L.NVLINK
    # Greedy: the first island is a largest clique of the whole node.
    if islands:
        largest = max(
            (
                size
                for size in range(2, len(matrix) + 1)
                for group in itertools.combinations(range(len(matrix)), size)
                if all(matrix[a][b] == L.NVLINK for a, b in itertools.combinations(group, 2))
            ),
            default=0,
        )
        assert max(len(island) for island in islands) == largest
    # Nobody left without an island could still form one with another islandless GPU.
    alone = [gpu.index for gpu in node_.gpus if gpu.nvlink_island is None]
    for a, b in itertools.combinations(alone, 2):
        assert matrix[a][b] != L.NVLINK


@given(_link_matrices())
def test_switch_groups_are_pix_components(matrix: list[list[topology.LinkLevel]]) -> None:
    node_ = topology.from_link_matrix(matrix, numa=[None] * len(matrix))
    for a, b in itertools.combinations(range(len(matrix)), 2):
        if matrix[a][b] == L.PIX:
            assert node_.level(a, b) in (L.NVLINK, L.PIX)
            assert node_.gpus[a].pcie_switch == node_.gpus[b].pcie_switch is not None
    for group in node_.pcie_switch_groups():
        assert len(group) >= 2
        for gpu in group:
            assert any(matrix[gpu][peer] == L.PIX for peer in group if peer != gpu)
