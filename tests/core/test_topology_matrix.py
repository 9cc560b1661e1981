"""The ``nvidia-smi topo -m`` parser reads every real capture and refuses malformed text by line."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.builders.topology import topo_text

from gpufair.core import topology, topology_matrix

LinkLevel = topology.LinkLevel
AMD_CAPTURE = "amd-rocm-showtopo-archer2-4x-mi210-xgmi.txt"


@dataclasses.dataclass(frozen=True)
class Known:
    """Facts SOURCES.md states about a capture."""

    gpus: int
    islands: list[list[int]]
    pcie_groups: list[list[int]]
    numa: list[int | None]
    cpu0: str
    nvlinks01: int = 0


_DGX1_CUBE_MESH = [[0, 1, 2, 3], [4, 5, 6, 7]]
_NUMA_4_4 = [0, 0, 0, 0, 1, 1, 1, 1]

KNOWN: dict[str, Known] = {
    "alcf-polaris-4x-a100-nv4-4numa-2nic.txt": Known(
        4, [[0, 1, 2, 3]], [], [3, 2, 1, 0], "24-31,56-63", nvlinks01=4
    ),
    "asus-esc8000a-e12-4x-rtx6000ada-4nic.txt": Known(4, [], [], [0, 0, 1, 1], "0-31"),
    "della-2x-a100-pcie-2numa-2nic.txt": Known(2, [], [], [0, 1], "0-63"),
    "dgx-a100-8gpu-nv12-12nic-4numa.txt": Known(
        8, [list(range(8))], [], [3, 3, 1, 1, 7, 7, 5, 5], "48-63,176-191", nvlinks01=12
    ),
    "dgx1-v100-8gpu-mlx5.txt": Known(8, _DGX1_CUBE_MESH, [], [None] * 8, "0-11,24-35", 1),
    "dgx1-v100-topo-mp-4nic.txt": Known(
        8, [], [[0, 1], [2, 3], [4, 5], [6, 7]], _NUMA_4_4, "0-19,40-59"
    ),
    "hgx-h20-8gpu-nv18-8nic-sglang-issue24966.txt": Known(
        8, [list(range(8))], [], _NUMA_4_4, "0-47,96-143", nvlinks01=18
    ),
    "hgx-h200-8gpu-nv18-10nic.txt": Known(
        8, [list(range(8))], [], _NUMA_4_4, "0-63,128-191", nvlinks01=18
    ),
    "ibm-power9-traverse-4x-v100-nv3-4nic.txt": Known(
        4, [[0, 1], [2, 3]], [], [0, 0, 8, 8], "0-63", nvlinks01=3
    ),
    "issue-8x-rtx4090-all-sys-2numa-2nic-go-gpuallocator17.txt": Known(
        8, [], [], _NUMA_4_4, "0-55,112-167"
    ),
    "pcie-8x-quadro-rtx6000-pix-pxb.txt": Known(
        8, [], [[0, 1, 6, 7], [2, 3, 4, 5]], [0] * 8, "0-19"
    ),
    "princeton-adroit-4x-a100-pcie-2numa-interleaved-affinity.txt": Known(
        4, [], [], [0, 0, 1, 1], "0,2,4,6,8,10"
    ),
    "princeton-della-4x-a100-sxm4-nv4-2numa.txt": Known(
        4, [[0, 1, 2, 3]], [], [0, 0, 1, 1], "0-23", nvlinks01=4
    ),
    "puget-threadripper-pro-wrx90-2x-rtx6000ada-2nic.txt": Known(2, [], [], [0, 0], "0-23"),
    "vastai-8x-rtx4090-pcie-2numa.txt": Known(8, [], [], [0, 0, 0, 0, 0, 0, 1, 1], "0-35,72-107"),
    "vastai-8x-v100-sxm2-dgx1-style-nic0.txt": Known(
        8, _DGX1_CUBE_MESH, [], _NUMA_4_4, "0-19,40-59", nvlinks01=1
    ),
}


def _captures(folder: pathlib.Path) -> set[str]:
    return {path.name for path in (folder / "topology").glob("*.txt")}


def test_every_capture_has_known_facts(shared_data: pathlib.Path) -> None:
    assert _captures(shared_data) == {*KNOWN, AMD_CAPTURE}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_capture_is_a_well_formed_matrix(shared_data: pathlib.Path, name: str) -> None:
    matrix = topology_matrix.parse((shared_data / "topology" / name).read_text())
    known = KNOWN[name]
    assert matrix.gpu_count == known.gpus
    for field in (matrix.levels, matrix.nvlinks, matrix.numa, matrix.cpu_affinity):
        assert len(field) == known.gpus
    for i in range(known.gpus):
        assert len(matrix.levels[i]) == len(matrix.nvlinks[i]) == known.gpus
        for j in range(known.gpus):
            assert matrix.levels[i][j] == matrix.levels[j][i]
            assert (matrix.levels[i][j] == LinkLevel.SELF) == (i == j)
            assert (matrix.nvlinks[i][j] > 0) == (matrix.levels[i][j] == LinkLevel.NVLINK)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_capture_gives_the_known_topology(shared_data: pathlib.Path, name: str) -> None:
    matrix = topology_matrix.parse((shared_data / "topology" / name).read_text())
    node = topology.from_matrix(matrix)
    known = KNOWN[name]
    assert list(matrix.numa) == known.numa
    assert matrix.cpu_affinity[0] == known.cpu0
    if known.gpus > 1:
        assert matrix.nvlinks[0][1] == known.nvlinks01
    shape = node.to_json()
    assert shape["nvlink_islands"] == known.islands
    assert shape["pcie_switch_groups"] == known.pcie_groups
    assert [gpu["numa"] for gpu in shape["gpus"]] == known.numa


def test_dgx1_cube_mesh_keeps_per_pair_link_counts(shared_data: pathlib.Path) -> None:
    text = (shared_data / "topology" / "dgx1-v100-8gpu-mlx5.txt").read_text()
    matrix = topology_matrix.parse(text)
    assert matrix.nvlinks[0] == (0, 1, 1, 2, 2, 0, 0, 0)
    assert matrix.levels[0][5] == LinkLevel.SYS


def test_topo_mp_capture_keeps_pcie_levels(shared_data: pathlib.Path) -> None:
    text = (shared_data / "topology" / "dgx1-v100-topo-mp-4nic.txt").read_text()
    matrix = topology_matrix.parse(text)
    assert matrix.levels[0][:4] == (LinkLevel.SELF, LinkLevel.PIX, LinkLevel.PHB, LinkLevel.PHB)
    assert matrix.levels[0][4] == LinkLevel.SYS


def test_amd_capture_is_refused_with_a_clear_message(shared_data: pathlib.Path) -> None:
    with pytest.raises(topology_matrix.TopologyParseError, match="rocm-smi") as error:
        topology_matrix.parse((shared_data / "topology" / AMD_CAPTURE).read_text())
    assert error.value.line == 1
    assert "NVIDIA" in error.value.reason


@pytest.mark.parametrize(
    ("text", "numa", "cpu"),
    [
        pytest.param(
            topo_text(["X NV2", "NV2 X"], cpu=["0-7", "8-15"], numa=["0", "1"]),
            (0, 1),
            ("0-7", "8-15"),
            id="tabs",
        ),
        pytest.param(
            topo_text(["X NV2", "NV2 X"], cpu=["0-7", "8-15"], numa=["0", "1"], separator="  "),
            (0, 1),
            ("0-7", "8-15"),
            id="aligned-spaces",
        ),
        pytest.param(
            topo_text(["X SOC", "SOC X"], cpu=["0-7", "8-15"]),
            (None, None),
            ("0-7", "8-15"),
            id="old-driver-no-numa-column",
        ),
        pytest.param(
            topo_text(["X PHB", "PHB X"], cpu=["N/A", "N/A"], numa=["N/A", "0-1"]),
            (None, None),
            (None, None),
            id="not-available-and-numa-range",
        ),
        pytest.param(
            "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\n"
            "GPU0\t X \tNV4\t0\t0\t\tN/A\n"
            "GPU1\tNV4\t X \t\t1\t\tN/A\n",
            (0, 1),
            ("0", None),
            id="empty-cpu-affinity-under-a-cgroup",
        ),
        pytest.param(
            "\x1b[4m\tGPU0\tGPU1\tNIC0\tCPU Affinity\tNUMA Affinity\x1b[0m\r\n"
            "GPU0\t X \tPIX\tNODE\t0-3\t0\r\n"
            "GPU1\tPIX\t X \tNODE\t0-3\t0\r\n"
            "NIC0\tNODE\tNODE\t X \r\n\r\nNIC Legend:\r\n\r\n  NIC0: mlx5_0\r\n",
            (0, 0),
            ("0-3", "0-3"),
            id="ansi-crlf-nic-row",
        ),
        pytest.param(
            topo_text(["X"], cpu=["0-3"], numa=["0"], trailer=""),
            (0,),
            ("0-3",),
            id="one-gpu-no-legend",
        ),
    ],
)
def test_format_variants_are_read(
    text: str, numa: tuple[int | None, ...], cpu: tuple[str | None, ...]
) -> None:
    matrix = topology_matrix.parse(text)
    assert matrix.numa == numa
    assert matrix.cpu_affinity == cpu


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        pytest.param("", 1, "empty", id="empty"),
        pytest.param("\n\n", 2, "empty", id="blank"),
        pytest.param("hello world\n", 1, "header", id="not-a-matrix"),
        pytest.param("\tGPU1\tGPU0\nGPU0\t X \tNV1\n", 1, "GPU0", id="header-out-of-order"),
        pytest.param(
            "\tGPU0\tGPU1\tCPU Affinity\tColour\n", 1, "unknown header column", id="unknown-column"
        ),
        pytest.param(topo_text(["X NV1", "NV1 Q"]), 3, "'Q'", id="unknown-link"),
        pytest.param(topo_text(["X PIXNODE", "PIX X"]), 2, "'PIXNODE'", id="merged-cells"),
        pytest.param(topo_text(["X NV0", "NV0 X"]), 2, "'NV0'", id="zero-nvlinks"),
        pytest.param(topo_text(["PIX X", "X PIX"]), 2, "diagonal", id="x-off-diagonal"),
        pytest.param(topo_text(["X PIX", "PHB X"]), 3, "symmetric", id="asymmetric"),
        pytest.param(topo_text(["X NV1", "NV2 X"]), 3, "symmetric", id="asymmetric-link-count"),
        pytest.param(topo_text(["X PIX", "PIX"]), 3, "link cells", id="short-row"),
        pytest.param(
            topo_text(["X PIX", "PIX X"], numa=["0", "0 7"]), 3, "cells after", id="extra-cells"
        ),
        pytest.param(
            topo_text(["X PIX", "PIX X"], numa=["0", "zero"]), 3, "NUMA id", id="bad-numa"
        ),
        pytest.param(
            topo_text(["X PIX", "PIX X"], cpu=["0-3", "cpu0"]), 3, "CPU list", id="bad-cpu-list"
        ),
        pytest.param("\tGPU0\tGPU1\nGPU0\t X \tPIX\n", 2, "GPU1", id="missing-row-at-end"),
        pytest.param(
            "\tGPU0\tGPU1\nGPU0\t X \tPIX\n\nGPU1\tPIX\t X \n",
            4,
            "end of the matrix",
            id="blank-inside",
        ),
        pytest.param(
            "\tGPU0\tGPU1\nGPU1\tPIX\t X \nGPU0\t X \tPIX\n", 2, "GPU0", id="rows-out-of-order"
        ),
        pytest.param(
            "\tGPU0\nGPU0\t X \nGPU1\tPIX\n", 3, "after the GPU rows", id="row-not-in-header"
        ),
    ],
)
def test_malformed_text_is_refused_naming_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(topology_matrix.TopologyParseError) as error:
        topology_matrix.parse(text)
    assert error.value.line == line
    assert words in error.value.reason
    assert str(error.value).startswith(f"line {line}: ")


_CELLS = ["PIX", "PXB", "PHB", "NODE", "SYS", "NV1", "NV2", "NV12", "NV18"]


@st.composite
def _symmetric_cells(draw: st.DrawFn) -> list[list[str]]:
    count = draw(st.integers(min_value=1, max_value=8))
    cells = [["X"] * count for _ in range(count)]
    for i in range(count):
        for j in range(i):
            cells[i][j] = cells[j][i] = draw(st.sampled_from(_CELLS))
    return cells


@given(
    _symmetric_cells(),
    st.sampled_from(["\t", "  ", "    "]),
    st.lists(st.none() | st.integers(min_value=0, max_value=16), min_size=8, max_size=8),
)
def test_rendered_matrix_parses_back(
    cells: list[list[str]], separator: str, numa: list[int | None]
) -> None:
    count = len(cells)
    text = topo_text(
        [" ".join(row) for row in cells],
        cpu=[f"{8 * i}-{8 * i + 7}" for i in range(count)],
        numa=["N/A" if n is None else str(n) for n in numa[:count]],
        separator=separator,
    )
    matrix = topology_matrix.parse(text)
    assert matrix.gpu_count == count
    assert list(matrix.numa) == numa[:count]
    for i in range(count):
        for j in range(count):
            cell = cells[i][j]
            nvlinks = int(cell[2:]) if cell.startswith("NV") else 0
            assert matrix.nvlinks[i][j] == nvlinks
            if cell == "X":
                assert matrix.levels[i][j] == LinkLevel.SELF
            elif nvlinks:
                assert matrix.levels[i][j] == LinkLevel.NVLINK
            else:
                assert matrix.levels[i][j] == LinkLevel[cell]
