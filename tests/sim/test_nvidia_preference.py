"""The model of NVIDIA's GetPreferredAllocation against go-gpuallocator's own expectations.

The cases are those of go-gpuallocator's ``besteffort_test.go`` for a DGX-1 Volta (its
``TestBestEffortAllocate`` and ``TestBestEffortDGX1VoltaGPUAlloc*``), run here on the real
DGX-1 V100 capture; and the simulator's "without the proxy" placer built on the model.
"""

from __future__ import annotations

import pathlib

import pytest

from gpufair.core import topology, topology_matrix
from gpufair.sim import cluster as cluster_model
from gpufair.sim import nvidia_preference, placers

DGX1 = "topology/dgx1-v100-8gpu-mlx5.txt"


@pytest.fixture(scope="module")
def dgx1(shared_data: pathlib.Path) -> cluster_model.MachineType:
    matrix = topology_matrix.parse((shared_data / DGX1).read_text())
    return cluster_model.MachineType("dgx1", topology.from_matrix(matrix), matrix)


@pytest.mark.parametrize(
    ("available", "required", "size", "expected"),
    [
        pytest.param([0, 3, 1], [], 2, (0, 3), id="prefer-dual-nvlink-same-socket"),
        pytest.param([0, 1, 4], [], 2, (0, 4), id="prefer-dual-nvlink-cross-socket"),
        pytest.param(range(8), [4], 1, (4,), id="must-include-size-1"),
        pytest.param(range(8), [4], 2, (4, 7), id="must-include-size-2"),
        pytest.param(range(8), [4], 4, (4, 5, 6, 7), id="must-include-size-4"),
        pytest.param(range(1, 8), [0, 1, 2, 3], 4, (), id="must-include-unavailable"),
        pytest.param(range(8), [0, 2, 4, 6], 4, (0, 2, 4, 6), id="must-include-full-set"),
        pytest.param(range(8), [1, 2, 3, 4, 5, 6], 4, (), id="must-include-too-many"),
        pytest.param([1, 2], [], 3, (), id="fewer-available-than-asked"),
    ],
)
def test_best_effort_answers_as_go_gpuallocator(
    dgx1: cluster_model.MachineType,
    available: list[int],
    required: list[int],
    size: int,
    expected: tuple[int, ...],
) -> None:
    scores = nvidia_preference.pair_scores(dgx1.topology, dgx1.matrix)
    got = nvidia_preference.best_effort(scores, list(available), required, size)
    assert tuple(sorted(got)) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        pytest.param(1, [(0,), (1,), (2,), (3,), (4,), (5,), (6,), (7,)], id="one"),
        pytest.param(2, [(0, 3), (1, 2), (4, 7), (5, 6)], id="two"),
        pytest.param(4, [(0, 1, 2, 3), (4, 5, 6, 7)], id="four"),
        pytest.param(8, [tuple(range(8))], id="eight"),
    ],
)
def test_successive_allocations_on_a_dgx1_as_go_gpuallocator(
    dgx1: cluster_model.MachineType, size: int, expected: list[tuple[int, ...]]
) -> None:
    free = 0xFF
    for want in expected:
        mask = nvidia_preference.nvidia_mask(dgx1, free, size)
        assert tuple(cluster_model.bits(mask)) == want
        free &= ~mask
    assert free == 0


def test_without_the_proxy_gpufair_picks_the_machine_and_nvidia_the_gpus(
    dgx1: cluster_model.MachineType,
) -> None:
    cluster = cluster_model.Cluster([dgx1], [0, 0])
    # Machine 0 has GPUs 1, 2, 5, 6 free: gpufair's placer takes the fuller machine, and on it
    # the NVLink pair it scores best; NVIDIA's allocator prefers its own best pair there.
    cluster.take([cluster_model.Part(node=0, mask=0b10011001)])
    aware = placers.TopologyAware()
    without = nvidia_preference.GpusByNvidia()
    with_proxy = aware.place(cluster, 2)
    nvidia = without.place(cluster, 2)
    assert with_proxy is not None
    assert nvidia is not None
    assert [part.node for part in nvidia] == [part.node for part in with_proxy] == [0]
    expected = nvidia_preference.nvidia_mask(dgx1, cluster.free[0], 2)
    assert nvidia[0].mask == expected
    assert without.mode == aware.mode
    assert without.rule == aware.rule
