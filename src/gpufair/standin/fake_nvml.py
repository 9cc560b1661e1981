"""A fake ``pynvml`` module that behaves like NVML on a real machine, rebuilt from its capture.

:func:`machine_from_capture` turns a parsed ``nvidia-smi topo -m`` matrix into the facts NVML
would report on that machine, and :class:`FakeNvml` answers the ``pynvml`` calls the agent
makes from those facts, with the real binding's constants and error class:

- GPUs joined by ``NV#`` get ``#`` active NVLinks to each other's PCI address, or, on NVSwitch
  machines (HGX H200/H20, DGX A100), every NVLink of every GPU ends on one of the switches
  round-robin, as on the real baseboards: no GPU-to-GPU link at all;
- IBM POWER9 machines add the GPU-to-CPU NVLinks (remote type ``IBMNPU``, vendor IBM);
- the common PCIe ancestor of every other pair is the capture's level; for ``NV#`` pairs the
  capture hides it, so it is ``NODE`` on one NUMA node and ``SYSTEM`` across;
- the memory affinity is the capture's NUMA node (``NOT_SUPPORTED`` where the capture has
  none), the CPU affinity its CPU list, ``nvmlDeviceGetNumaNodeId`` ``NOT_SUPPORTED`` (the
  captures' "GPU NUMA ID" is ``N/A``), and link indices past a GPU's last link answer
  ``INVALID_ARGUMENT`` (``NOT_SUPPORTED`` on PCIe-only GPUs), as NVML does.

``Driver.LEGACY`` plays an older driver: no memory affinity and no remote device type,
so NUMA comes from the CPU affinity and NVSwitches are told apart by their PCI vendor.
"""

from __future__ import annotations

import dataclasses
import enum
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import pynvml

from gpufair.agent import nvml_topology
from gpufair.core import topology, topology_matrix

LinkLevel = topology.LinkLevel

IBM_PCI_VENDOR = 0x1014
GPU_DEVICE_ID = 0x20B0  # any NVIDIA GPU device id; the agent reads only the vendor half
NVSWITCH_DEVICE_ID = 0x1AF1
NPU_DEVICE_ID = 0x04EA

NVML_ANCESTOR: Mapping[LinkLevel, int] = {
    LinkLevel.PIX: pynvml.NVML_TOPOLOGY_SINGLE,
    LinkLevel.PXB: pynvml.NVML_TOPOLOGY_MULTIPLE,
    LinkLevel.PHB: pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
    LinkLevel.NODE: pynvml.NVML_TOPOLOGY_NODE,
    LinkLevel.SYS: pynvml.NVML_TOPOLOGY_SYSTEM,
}


class Driver(enum.Enum):
    MODERN = "modern"
    LEGACY = "legacy"


@dataclasses.dataclass(frozen=True)
class Link:
    remote: nvml_topology.PciAddress
    remote_type: int
    remote_vendor: int
    remote_device: int


@dataclasses.dataclass(frozen=True)
class Machine:
    """What NVML reports on one machine; per-GPU tuples are indexed by GPU."""

    pci: tuple[nvml_topology.PciAddress, ...]
    ancestor: tuple[tuple[int, ...], ...]
    links: tuple[tuple[Link, ...], ...]
    memory_node: tuple[int | None, ...]
    cpus: tuple[frozenset[int] | None, ...]
    node_cpus: Mapping[int, frozenset[int]]
    max_links: int

    @property
    def gpu_count(self) -> int:
        return len(self.pci)

    def write_sysfs(self, root: pathlib.Path) -> pathlib.Path:
        """Write ``nodeN/cpulist`` files as Linux would; returns ``root``."""
        root.mkdir(parents=True, exist_ok=True)
        for node, cpus in self.node_cpus.items():
            (root / f"node{node}").mkdir()
            (root / f"node{node}" / "cpulist").write_text(_cpulist(cpus) + "\n")
        return root


def gpu_address(index: int) -> nvml_topology.PciAddress:
    return nvml_topology.PciAddress(domain=0, bus=0x18 + 0x10 * index, device=0)


def machine_from_capture(
    matrix: topology_matrix.TopologyMatrix,
    *,
    nvswitches: int = 0,
    cpu_nvlinks: int = 0,
) -> Machine:
    """The NVML view of the machine ``matrix`` was captured on (see the module docstring)."""
    count = matrix.gpu_count
    pci = tuple(gpu_address(index) for index in range(count))
    cpus = tuple(
        None if text is None else nvml_topology.parse_cpulist(text) for text in matrix.cpu_affinity
    )
    node_cpus: dict[int, frozenset[int]] = {}
    for node, gpu_cpus in zip(matrix.numa, cpus, strict=True):
        if node is not None and gpu_cpus:
            node_cpus[node] = node_cpus.get(node, frozenset()) | gpu_cpus
    links: list[list[Link]] = [[] for _ in range(count)]
    if nvswitches:
        # NVSwitches sit in PCI domains of their own: an A100 reports links to
        # 00000008:00:00.0 (NVIDIA/go-nvml#166), and several links end on one switch.
        switches = [
            nvml_topology.PciAddress(domain=5 + switch, bus=0, device=0)
            for switch in range(nvswitches)
        ]
        for i in range(count):
            total = max(matrix.nvlinks[i])
            for link in range(total):
                links[i].append(
                    Link(
                        remote=switches[link % nvswitches],
                        remote_type=pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH,
                        remote_vendor=nvml_topology.NVIDIA_PCI_VENDOR,
                        remote_device=NVSWITCH_DEVICE_ID,
                    )
                )
    else:
        for i in range(count):
            for j in range(count):
                links[i].extend(
                    Link(
                        remote=pci[j],
                        remote_type=pynvml.NVML_NVLINK_DEVICE_TYPE_GPU,
                        remote_vendor=nvml_topology.NVIDIA_PCI_VENDOR,
                        remote_device=GPU_DEVICE_ID,
                    )
                    for _ in range(matrix.nvlinks[i][j])
                )
    for i in range(count):
        npu = nvml_topology.PciAddress(domain=7 + (matrix.numa[i] or 0), bus=0, device=0)
        links[i].extend(
            Link(
                remote=npu,
                remote_type=pynvml.NVML_NVLINK_DEVICE_TYPE_IBMNPU,
                remote_vendor=IBM_PCI_VENDOR,
                remote_device=NPU_DEVICE_ID,
            )
            for _ in range(cpu_nvlinks)
        )

    def ancestor(i: int, j: int) -> int:
        level = matrix.levels[i][j]
        if level in NVML_ANCESTOR:
            return NVML_ANCESTOR[level]
        same_node = matrix.numa[i] is not None and matrix.numa[i] == matrix.numa[j]
        return int(pynvml.NVML_TOPOLOGY_NODE if same_node else pynvml.NVML_TOPOLOGY_SYSTEM)

    return Machine(
        pci=pci,
        ancestor=tuple(tuple(ancestor(i, j) for j in range(count)) for i in range(count)),
        links=tuple(tuple(gpu_links) for gpu_links in links),
        memory_node=matrix.numa,
        cpus=cpus,
        node_cpus=node_cpus,
        max_links=max((len(gpu_links) for gpu_links in links), default=0),
    )


@dataclasses.dataclass(frozen=True)
class _Handle:
    index: int


@dataclasses.dataclass(frozen=True)
class _PciInfo:
    domain: int
    bus: int
    device: int
    pciDeviceId: int  # noqa: N815 - the field name of nvmlPciInfo_t
    busId: str  # noqa: N815


class FakeNvml:
    """Stands in for the ``pynvml`` module; pass it where the agent takes ``nvml``."""

    NVMLError = pynvml.NVMLError

    def __init__(
        self,
        machine: Machine | None,
        *,
        driver: Driver = Driver.MODERN,
        init_error: int | None = None,
    ) -> None:
        self.machine = machine
        self.driver = driver
        self.init_error = init_error
        self.initialised = 0
        self.shut_down = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("NVML_"):
            return getattr(pynvml, name)  # the real binding's constants
        raise AttributeError(name)

    # -- library -------------------------------------------------------------------------------

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._require_init()
        self.shut_down += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._require_init()
        return 0 if self.machine is None else self.machine.gpu_count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:  # noqa: N802
        return _Handle(self._gpu(index))

    # -- per GPU -------------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:  # noqa: N802
        """A stable UUID in NVIDIA's format, derived from the GPU's PCI address."""
        address = self._machine().pci[self._gpu(handle.index)]
        pci = f"{address.domain:08x}-{address.bus:04x}-{address.device:04x}"
        return f"GPU-{pci}-0000-{handle.index:012x}"

    def nvmlDeviceGetPciInfo(self, handle: _Handle) -> _PciInfo:  # noqa: N802
        address = self._machine().pci[self._gpu(handle.index)]
        return _pci_info(address, vendor=nvml_topology.NVIDIA_PCI_VENDOR, device=GPU_DEVICE_ID)

    def nvmlDeviceGetNumaNodeId(self, handle: _Handle) -> int:  # noqa: N802
        self._gpu(handle.index)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetMemoryAffinity(  # noqa: N802
        self, handle: _Handle, node_set_size: int, scope: int
    ) -> list[int]:
        node = self._machine().memory_node[self._gpu(handle.index)]
        if self.driver is Driver.LEGACY:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if scope != pynvml.NVML_AFFINITY_SCOPE_NODE:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if node is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return _mask({node}, words=node_set_size)

    def nvmlDeviceGetCpuAffinity(self, handle: _Handle, cpu_set_size: int) -> list[int]:  # noqa: N802
        cpus = self._machine().cpus[self._gpu(handle.index)]
        if cpus is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return _mask(cpus, words=cpu_set_size)

    def nvmlDeviceGetTopologyCommonAncestor(self, first: _Handle, second: _Handle) -> int:  # noqa: N802
        return self._machine().ancestor[self._gpu(first.index)][self._gpu(second.index)]

    def nvmlDeviceGetNvLinkState(self, handle: _Handle, link: int) -> int:  # noqa: N802
        machine = self._machine()
        if len(machine.links[self._gpu(handle.index)]) <= link < machine.max_links:
            return int(pynvml.NVML_FEATURE_DISABLED)  # a link this GPU has, not connected
        self._link(handle, link)
        return int(pynvml.NVML_FEATURE_ENABLED)

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle: _Handle, link: int) -> _PciInfo:  # noqa: N802
        found = self._link(handle, link)
        return _pci_info(found.remote, vendor=found.remote_vendor, device=found.remote_device)

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: _Handle, link: int) -> int:  # noqa: N802
        found = self._link(handle, link)
        if self.driver is Driver.LEGACY:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return found.remote_type

    # -- helpers -------------------------------------------------------------------------------

    def _require_init(self) -> None:
        if self.initialised <= self.shut_down:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _machine(self) -> Machine:
        self._require_init()
        if self.machine is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.machine

    def _gpu(self, index: int) -> int:
        if not 0 <= index < self._machine().gpu_count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index

    def _link(self, handle: _Handle, link: int) -> Link:
        machine = self._machine()
        links = machine.links[self._gpu(handle.index)]
        if machine.max_links == 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)  # a PCIe-only GPU
        if not 0 <= link < len(links):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return links[link]


def _pci_info(address: nvml_topology.PciAddress, *, vendor: int, device: int) -> _PciInfo:
    return _PciInfo(
        domain=address.domain,
        bus=address.bus,
        device=address.device,
        pciDeviceId=(device << 16) | vendor,
        busId=str(address),
    )


def _mask(members: Sequence[int] | set[int] | frozenset[int], *, words: int) -> list[int]:
    """The affinity bitmask NVML fills: ``words`` words, bits past them cut off as NVML does."""
    mask = [0] * words
    for member in members:
        if member // 64 < words:
            mask[member // 64] |= 1 << (member % 64)
    return mask


def _cpulist(cpus: frozenset[int]) -> str:
    ordered = sorted(cpus)
    ranges: list[str] = []
    start = previous = ordered[0]
    for cpu in [*ordered[1:], None]:
        if cpu is not None and cpu == previous + 1:
            previous = cpu
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if cpu is not None:
            start = previous = cpu
    return ",".join(ranges)
