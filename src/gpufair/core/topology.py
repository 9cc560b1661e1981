"""Per-GPU topology of one node: which NUMA node, PCIe switch and NVLink island each GPU sits on.

This is the one model every topology source produces (the ``nvidia-smi topo -m`` parser, the
NVML discovery of the node agent, the node labels the extender reads), so placement never
depends on where the facts came from. Two GPUs are related by the best :class:`LinkLevel`
their attributes imply: same NVLink island beats same PCIe switch beats same NUMA node.
"""

from __future__ import annotations

import dataclasses
import enum


class LinkLevel(enum.IntEnum):
    """How two GPUs are connected, best first; values order from best (0) to worst.

    The names follow ``nvidia-smi topo -m`` and NVML's ``nvmlGpuTopologyLevel_t``:
    ``PIX`` one PCIe switch, ``PXB`` several bridges, ``PHB`` one host bridge,
    ``NODE`` one NUMA node across host bridges, ``SYS`` across sockets.
    """

    SELF = 0
    NVLINK = 1
    PIX = 2
    PXB = 3
    PHB = 4
    NODE = 5
    SYS = 6


@dataclasses.dataclass(frozen=True, slots=True)
class GPU:
    """One GPU of a node; an attribute is ``None`` where the machine has none or nobody knows."""

    index: int
    numa: int | None = None
    pcie_switch: int | None = None
    nvlink_island: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NodeTopology:
    """The GPUs of one node, ordered by index (indices are unique)."""

    gpus: tuple[GPU, ...]
