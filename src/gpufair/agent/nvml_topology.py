"""What NVML says about a node's GPUs, and the pairwise link levels that follows from it.

The node agent has two discovery paths, NVML and ``nvidia-smi topo -m``; both end in
:func:`gpufair.core.topology.from_link_matrix`, so the labels never depend on the source. This
module is the NVML half of that contract, kept pure (no ``pynvml``, no files) so it is tested
against facts rebuilt from real captures: :mod:`gpufair.agent.nvml_reader` collects the
:class:`NvmlFacts`, :func:`link_levels` and :func:`numa_ids` turn them into the same matrix
``nvidia-smi`` would print.

How the facts map to levels, pair by pair:

- an active NVLink from one GPU to the other's PCI address is ``NVLINK`` (``NV#``);
- two GPUs with active NVLinks to the same NVSwitch are ``NVLINK`` too: on an NVSwitch machine
  every link ends on a switch, never on a peer GPU, and ``nvidia-smi`` prints ``NV#`` for every
  pair of GPUs on one switch fabric;
- links that end on a CPU (IBM POWER9 NPUs) join nothing;
- every other pair gets the PCIe level of ``nvmlDeviceGetTopologyCommonAncestor``
  (:data:`PCIE_LEVELS`), and ``SYS`` when NVML could not say.

The NUMA node of a GPU is the one NUMA node of its memory affinity
(``nvmlDeviceGetMemoryAffinity``, what ``nvidia-smi`` prints as "NUMA Affinity"), else the one
node whose CPUs hold the GPU's CPU affinity, else unknown. ``nvmlDeviceGetNumaNodeId`` is not
used: it is the NUMA node *of the GPU's own memory* on platforms where GPUs are NUMA nodes (the
"GPU NUMA ID" column, ``N/A`` elsewhere), not the CPU socket a pod should be pinned to.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

from gpufair.core import topology

NVIDIA_PCI_VENDOR = 0x10DE
"""PCI vendor id of NVIDIA; an NVLink that ends on an NVIDIA device other than a local GPU ends
on an NVSwitch (used only when the driver cannot name the remote device type)."""


class NvmlTopologyLevel(enum.IntEnum):
    """``nvmlGpuTopologyLevel_t``: the closest common PCIe ancestor of two GPUs (NVML values)."""

    INTERNAL = 0  # both GPUs on one board (a dual-GPU card)
    SINGLE = 10  # one PCIe switch
    MULTIPLE = 20  # several PCIe switches, no host bridge
    HOSTBRIDGE = 30  # one PCIe host bridge
    NODE = 40  # one NUMA node, several host bridges (NVML_TOPOLOGY_CPU is an alias)
    SYSTEM = 50  # across NUMA nodes


class NvLinkDeviceType(enum.IntEnum):
    """``nvmlNvLinkDeviceType_t``: what sits at the far end of an NVLink (NVML values)."""

    GPU = 0x00
    IBMNPU = 0x01
    SWITCH = 0x02
    UNKNOWN = 0xFF


PCIE_LEVELS: Mapping[NvmlTopologyLevel, topology.LinkLevel] = {
    # Two GPUs on one board sit behind the board's own PCIe switch: the same as PIX.
    NvmlTopologyLevel.INTERNAL: topology.LinkLevel.PIX,
    NvmlTopologyLevel.SINGLE: topology.LinkLevel.PIX,
    NvmlTopologyLevel.MULTIPLE: topology.LinkLevel.PXB,
    NvmlTopologyLevel.HOSTBRIDGE: topology.LinkLevel.PHB,
    NvmlTopologyLevel.NODE: topology.LinkLevel.NODE,
    NvmlTopologyLevel.SYSTEM: topology.LinkLevel.SYS,
}
"""``nvmlDeviceGetTopologyCommonAncestor`` to the ``nvidia-smi topo -m`` level it prints."""


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """A PCI device address; NVML prints it as ``00000000:1A:00.0``."""

    domain: int
    bus: int
    device: int

    def __str__(self) -> str:
        return f"{self.domain:08X}:{self.bus:02X}:{self.device:02X}.0"


@dataclasses.dataclass(frozen=True, slots=True)
class NvLink:
    """One active NVLink of a GPU and what NVML says about its far end.

    ``remote_type`` is ``None`` when the driver is too old to name it
    (``nvmlDeviceGetNvLinkRemoteDeviceType``); ``remote_vendor`` is the PCI vendor id of the
    far end, from ``nvmlDeviceGetNvLinkRemotePciInfo``.
    """

    link: int
    remote: PciAddress
    remote_type: NvLinkDeviceType | None = None
    remote_vendor: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class GpuFacts:
    """What NVML says about one GPU; ``None`` where NVML could not answer.

    ``memory_nodes`` are the NUMA nodes of its memory affinity, ``cpus`` its ideal CPU affinity.
    """

    index: int
    pci: PciAddress
    memory_nodes: frozenset[int] | None = None
    cpus: frozenset[int] | None = None
    nvlinks: tuple[NvLink, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class NvmlFacts:
    """What NVML (and the host's NUMA layout) says about every GPU of a node.

    ``common_ancestor[i][j]`` is the raw ``nvmlDeviceGetTopologyCommonAncestor`` value of GPUs
    ``i`` and ``j`` (``None`` where NVML could not say; the diagonal is ignored).
    ``node_cpus`` maps each NUMA node of the host to its CPUs (``/sys/devices/system/node``),
    empty when unknown.
    """

    gpus: tuple[GpuFacts, ...]
    common_ancestor: tuple[tuple[int | None, ...], ...]
    node_cpus: Mapping[int, frozenset[int]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        count = len(self.gpus)
        if [gpu.index for gpu in self.gpus] != list(range(count)):
            raise ValueError("GPU facts must be ordered by index 0..n-1")
        if len(self.common_ancestor) != count or any(
            len(row) != count for row in self.common_ancestor
        ):
            raise ValueError(f"common_ancestor must be a {count}x{count} matrix")


def pcie_level(value: int | None) -> topology.LinkLevel:
    """The level ``nvidia-smi`` prints for a common-ancestor value.

    ``None`` (NVML could not say) is ``SYS``, the level that promises nothing; a value a newer
    NVML might add between the known ones counts as the next coarser known level.
    """
    if value is None:
        return topology.LinkLevel.SYS
    for known in NvmlTopologyLevel:
        if value <= known:
            return PCIE_LEVELS[known]
    return topology.LinkLevel.SYS


class LinkEnd(enum.Enum):
    """Where an NVLink ends, as far as island-building cares."""

    GPU = enum.auto()
    SWITCH = enum.auto()
    OTHER = enum.auto()  # a CPU (POWER9 NPU), a GPU this agent cannot see, or unknown


def classify(link: NvLink, *, local_gpus: Mapping[PciAddress, int]) -> LinkEnd:
    """Where ``link`` ends: a local GPU, an NVSwitch or something that joins no GPUs.

    The remote device type decides when the driver reports it; older drivers only give the
    remote PCI address, so an NVIDIA device that is not a local GPU is taken for an NVSwitch.
    """
    if link.remote in local_gpus:
        return LinkEnd.GPU
    if link.remote_type is NvLinkDeviceType.SWITCH:
        return LinkEnd.SWITCH
    if link.remote_type in (None, NvLinkDeviceType.UNKNOWN) and (
        link.remote_vendor == NVIDIA_PCI_VENDOR
    ):
        return LinkEnd.SWITCH
    return LinkEnd.OTHER


def nvlinked_pairs(facts: NvmlFacts) -> frozenset[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, joined by a direct NVLink or by a shared NVSwitch."""
    local_gpus = {gpu.pci: gpu.index for gpu in facts.gpus}
    pairs: set[tuple[int, int]] = set()
    gpus_on_switch: dict[PciAddress, set[int]] = {}
    for gpu in facts.gpus:
        for link in gpu.nvlinks:
            end = classify(link, local_gpus=local_gpus)
            if end is LinkEnd.GPU:
                peer = local_gpus[link.remote]
                if peer != gpu.index:
                    pairs.add((min(gpu.index, peer), max(gpu.index, peer)))
            elif end is LinkEnd.SWITCH:
                gpus_on_switch.setdefault(link.remote, set()).add(gpu.index)
    for members in gpus_on_switch.values():
        ordered = sorted(members)
        pairs.update(
            (first, second)
            for position, first in enumerate(ordered)
            for second in ordered[position + 1 :]
        )
    return frozenset(pairs)


def link_levels(facts: NvmlFacts) -> tuple[tuple[topology.LinkLevel, ...], ...]:
    """The GPU-by-GPU level matrix ``nvidia-smi topo -m`` would print for these facts."""
    nvlinked = nvlinked_pairs(facts)
    count = len(facts.gpus)

    def level(i: int, j: int) -> topology.LinkLevel:
        if i == j:
            return topology.LinkLevel.SELF
        if (min(i, j), max(i, j)) in nvlinked:
            return topology.LinkLevel.NVLINK
        # NVML answers symmetrically; should it not, the coarser answer is the safe one.
        return max(pcie_level(facts.common_ancestor[i][j]), pcie_level(facts.common_ancestor[j][i]))

    return tuple(tuple(level(i, j) for j in range(count)) for i in range(count))


def gpu_numa(gpu: GpuFacts, *, node_cpus: Mapping[int, frozenset[int]]) -> int | None:
    """The NUMA node of ``gpu``: its one memory-affinity node, else the one node of its CPUs.

    A GPU whose affinity spans several nodes, or about which nothing is known, has none.
    """
    if gpu.memory_nodes is not None and len(gpu.memory_nodes) == 1:
        (node,) = gpu.memory_nodes
        return node
    if gpu.cpus:
        nodes = [node for node, cpus in node_cpus.items() if cpus & gpu.cpus]
        if len(nodes) == 1:
            return nodes[0]
    return None


def numa_ids(facts: NvmlFacts) -> tuple[int | None, ...]:
    """The NUMA node of every GPU, by index."""
    return tuple(gpu_numa(gpu, node_cpus=facts.node_cpus) for gpu in facts.gpus)


def to_topology(facts: NvmlFacts) -> topology.NodeTopology:
    """The node's topology, built exactly as the ``nvidia-smi`` path builds it."""
    return topology.from_link_matrix(link_levels(facts), numa=numa_ids(facts))


def cpus_from_mask(words: Iterable[int], *, word_bits: int = 64) -> frozenset[int]:
    """The set bits of an NVML affinity bitmask (an array of ``unsigned long`` words)."""
    return frozenset(
        position * word_bits + bit
        for position, word in enumerate(words)
        for bit in range(word_bits)
        if int(word) >> bit & 1
    )


def parse_cpulist(text: str) -> frozenset[int]:
    """A Linux CPU list (``0-11,24-35``, as in sysfs ``cpulist`` and ``nvidia-smi``).

    Raises :class:`ValueError` naming the bad part.
    """
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise ValueError(f"not a CPU list entry: {part!r}") from None
        if low < 0 or high < low:
            raise ValueError(f"not a CPU range: {part!r}")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)
