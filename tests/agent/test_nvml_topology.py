"""NVML facts to link levels and NUMA ids: the pure half of the NVML discovery path."""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Sequence

import hypothesis
import pytest
from hypothesis import strategies as st

from gpufair.agent import nvml_reader
from gpufair.agent import nvml_topology as nt
from gpufair.core import topology, topology_matrix
from gpufair.standin import fake_nvml

LinkLevel = topology.LinkLevel
Kind = nt.NvLinkDeviceType
NVIDIA = nt.NVIDIA_PCI_VENDOR
IBM = 0x1014
ANY_OTHER_VENDOR = 0x15B3  # Mellanox


def pci(bus: int) -> nt.PciAddress:
    return nt.PciAddress(domain=0, bus=bus, device=0)


def to(bus: int, kind: Kind | None = Kind.GPU, vendor: int | None = NVIDIA) -> nt.NvLink:
    """An active NVLink to the device at ``bus``."""
    return nt.NvLink(link=0, remote=pci(bus), remote_type=kind, remote_vendor=vendor)


def facts(
    links: Sequence[Sequence[nt.NvLink]],
    *,
    ancestor: int | None = nt.NvmlTopologyLevel.SYSTEM,
) -> nt.NvmlFacts:
    """GPUs at buses 0, 1, 2 … with these links, every pair at one common-ancestor level."""
    count = len(links)
    return nt.NvmlFacts(
        gpus=tuple(
            nt.GpuFacts(index=index, pci=pci(index), nvlinks=tuple(gpu_links))
            for index, gpu_links in enumerate(links)
        ),
        common_ancestor=tuple(tuple(ancestor for _ in range(count)) for _ in range(count)),
    )


@pytest.mark.parametrize(
    ("links", "pairs"),
    [
        pytest.param([[], []], set(), id="no-links"),
        pytest.param([[to(1)], [to(0)]], {(0, 1)}, id="direct-both-ways"),
        pytest.param([[to(1)], []], {(0, 1)}, id="direct-one-way-is-enough"),
        pytest.param(
            [[to(0xC0, Kind.SWITCH)], [to(0xC0, Kind.SWITCH)], [to(0xC1, Kind.SWITCH)]],
            {(0, 1)},
            id="gpus-on-the-same-switch",
        ),
        pytest.param(
            [[to(0xC0, Kind.SWITCH), to(0xC1, Kind.SWITCH)], [to(0xC1, Kind.SWITCH)]],
            {(0, 1)},
            id="one-shared-switch-of-several",
        ),
        pytest.param(
            [[to(0x70, Kind.IBMNPU, IBM)], [to(0x70, Kind.IBMNPU, IBM)]],
            set(),
            id="a-shared-cpu-joins-nothing",
        ),
        pytest.param(
            [[to(0xC0, None)], [to(0xC0, None)]],
            {(0, 1)},
            id="old-driver-nvidia-device-not-a-gpu-is-a-switch",
        ),
        pytest.param(
            [[to(0x70, None, IBM)], [to(0x70, None, IBM)]],
            set(),
            id="old-driver-ibm-device-is-a-cpu",
        ),
        pytest.param(
            [[to(0x55, Kind.GPU)], [to(0x55, Kind.GPU)]],
            set(),
            id="a-gpu-this-agent-cannot-see-joins-nothing",
        ),
        pytest.param(
            [
                [to(0x55, Kind.UNKNOWN, ANY_OTHER_VENDOR)],
                [to(0x55, Kind.UNKNOWN, ANY_OTHER_VENDOR)],
            ],
            set(),
            id="unknown-device-of-another-vendor-joins-nothing",
        ),
        pytest.param([[to(0)], []], set(), id="a-link-to-itself-is-no-pair"),
    ],
)
def test_nvlinked_pairs(links: list[list[nt.NvLink]], pairs: set[tuple[int, int]]) -> None:
    assert nt.nvlinked_pairs(facts(links)) == pairs


@pytest.mark.parametrize(
    ("value", "level"),
    [
        pytest.param(0, LinkLevel.PIX, id="internal-board"),
        pytest.param(10, LinkLevel.PIX, id="single"),
        pytest.param(20, LinkLevel.PXB, id="multiple"),
        pytest.param(30, LinkLevel.PHB, id="hostbridge"),
        pytest.param(40, LinkLevel.NODE, id="node"),
        pytest.param(50, LinkLevel.SYS, id="system"),
        pytest.param(25, LinkLevel.PHB, id="unknown-value-rounds-to-coarser"),
        pytest.param(60, LinkLevel.SYS, id="beyond-system"),
        pytest.param(None, LinkLevel.SYS, id="nvml-could-not-say"),
    ],
)
def test_pcie_level(value: int | None, level: LinkLevel) -> None:
    assert nt.pcie_level(value) == level


def test_link_levels_prefer_nvlink_and_fill_the_rest_from_pcie() -> None:
    found = facts([[to(1)], [to(0)], []], ancestor=nt.NvmlTopologyLevel.SINGLE)
    assert nt.link_levels(found) == (
        (LinkLevel.SELF, LinkLevel.NVLINK, LinkLevel.PIX),
        (LinkLevel.NVLINK, LinkLevel.SELF, LinkLevel.PIX),
        (LinkLevel.PIX, LinkLevel.PIX, LinkLevel.SELF),
    )


def test_asymmetric_answers_take_the_coarser_level() -> None:
    found = nt.NvmlFacts(
        gpus=(nt.GpuFacts(index=0, pci=pci(0)), nt.GpuFacts(index=1, pci=pci(1))),
        common_ancestor=((None, 10), (30, None)),
    )
    assert nt.link_levels(found)[0][1] == nt.link_levels(found)[1][0] == LinkLevel.PHB


def test_facts_must_be_square_and_ordered() -> None:
    with pytest.raises(ValueError, match="ordered by index"):
        nt.NvmlFacts(gpus=(nt.GpuFacts(index=1, pci=pci(1)),), common_ancestor=((None,),))
    with pytest.raises(ValueError, match="1x1"):
        nt.NvmlFacts(gpus=(nt.GpuFacts(index=0, pci=pci(0)),), common_ancestor=())


NODES = {0: frozenset(range(0, 8)), 1: frozenset(range(8, 16))}


@pytest.mark.parametrize(
    ("memory_nodes", "cpus", "numa"),
    [
        pytest.param(frozenset({1}), None, 1, id="memory-affinity"),
        pytest.param(frozenset({1}), frozenset({0}), 1, id="memory-affinity-wins"),
        pytest.param(None, frozenset({2, 3}), 0, id="from-cpu-affinity"),
        pytest.param(frozenset({0, 1}), frozenset({9}), 1, id="ambiguous-memory-falls-to-cpus"),
        pytest.param(None, frozenset({7, 8}), None, id="cpus-across-nodes"),
        pytest.param(None, frozenset({99}), None, id="cpus-on-no-known-node"),
        pytest.param(None, None, None, id="nothing-known"),
    ],
)
def test_gpu_numa(
    memory_nodes: frozenset[int] | None, cpus: frozenset[int] | None, numa: int | None
) -> None:
    gpu = nt.GpuFacts(index=0, pci=pci(0), memory_nodes=memory_nodes, cpus=cpus)
    assert nt.gpu_numa(gpu, node_cpus=NODES) == numa


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        pytest.param("0-3", {0, 1, 2, 3}, id="range"),
        pytest.param("0-1,24-25", {0, 1, 24, 25}, id="ranges"),
        pytest.param("0,2,4", {0, 2, 4}, id="list"),
        pytest.param("7\n", {7}, id="sysfs-newline"),
        pytest.param("", set(), id="empty"),
    ],
)
def test_parse_cpulist(text: str, cpus: set[int]) -> None:
    assert nt.parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["a-3", "3-1", "1-", "-1"])
def test_parse_cpulist_names_the_bad_part(text: str) -> None:
    with pytest.raises(ValueError, match="CPU"):
        nt.parse_cpulist(text)


def test_cpus_from_mask_reads_every_word() -> None:
    assert nt.cpus_from_mask([0b101, 0, 1 << 63]) == {0, 2, 191}


def test_pci_address_prints_as_nvml_does() -> None:
    assert str(nt.PciAddress(domain=0, bus=0x1A, device=0)) == "00000000:1A:00.0"


PCIE = [LinkLevel.PIX, LinkLevel.PXB, LinkLevel.PHB, LinkLevel.NODE, LinkLevel.SYS]


@st.composite
def link_matrices(draw: st.DrawFn, max_gpus: int = 8) -> topology_matrix.TopologyMatrix:
    """Any symmetric ``topo -m`` GPU matrix: NV# pairs with 1..4 links, PCIe levels elsewhere."""
    count = draw(st.integers(min_value=1, max_value=max_gpus))
    levels = [[LinkLevel.SELF] * count for _ in range(count)]
    nvlinks = [[0] * count for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            links = draw(st.integers(min_value=0, max_value=4))
            level = LinkLevel.NVLINK if links else draw(st.sampled_from(PCIE))
            levels[i][j] = levels[j][i] = level
            nvlinks[i][j] = nvlinks[j][i] = links
    numa = [draw(st.none() | st.integers(min_value=0, max_value=3)) for _ in range(count)]
    cpus = [None if node is None else f"{node * 8}-{node * 8 + 7}" for node in numa]
    return topology_matrix.TopologyMatrix(
        gpu_count=count,
        levels=tuple(tuple(row) for row in levels),
        nvlinks=tuple(tuple(row) for row in nvlinks),
        numa=tuple(numa),
        cpu_affinity=tuple(cpus),
    )


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(matrix=link_matrices(), driver=st.sampled_from(fake_nvml.Driver))
def test_nvml_facts_of_any_matrix_give_that_matrix_back(
    matrix: topology_matrix.TopologyMatrix, driver: fake_nvml.Driver
) -> None:
    machine = fake_nvml.machine_from_capture(matrix)
    with tempfile.TemporaryDirectory() as sysfs:
        facts = nvml_reader.read_facts(
            fake_nvml.FakeNvml(machine, driver=driver),
            node_root=machine.write_sysfs(pathlib.Path(sysfs) / "node"),
        )
    assert nt.link_levels(facts) == matrix.levels
    assert nt.numa_ids(facts) == matrix.numa
    assert nt.to_topology(facts) == topology.from_matrix(matrix)
