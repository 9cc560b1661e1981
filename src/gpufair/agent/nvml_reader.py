"""Asks NVML (through ``pynvml``, package ``nvidia-ml-py``) what the node's GPUs look like.

Called by :mod:`gpufair.agent.discovery`; it only collects :class:`~gpufair.agent.nvml_topology.
NvmlFacts`, and :mod:`gpufair.agent.nvml_topology` decides what they mean. The NVML module is a
parameter so the tests can hand in a fake that reproduces real machines.

NVML answers "not on this GPU" in several ways depending on the GPU and driver generation
(``NOT_SUPPORTED`` for NVLink queries on PCIe-only GPUs, ``INVALID_ARGUMENT`` for link indices
past the GPU's last link, ``FUNCTION_NOT_FOUND`` or a missing binding on old drivers); all of
them mean "no such fact". Any other NVML error is a real failure and is raised.
"""

from __future__ import annotations

import importlib
import logging
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

from gpufair.agent import nvml_topology

logger = logging.getLogger(__name__)

SYS_NODE_ROOT = pathlib.Path("/sys/devices/system/node")
"""Where Linux lists NUMA nodes and their CPUs (``nodeN/cpulist``)."""

NODE_MASK_WORDS = 16
"""Words of the NUMA node mask asked from NVML: room for 1,024 node ids (POWER9 numbers GPU
memory nodes up to 255)."""


MIN_CPU_MASK_BITS = 1024
"""The CPU mask asked from NVML covers at least this many CPUs, whatever this process sees."""


class NvmlUnavailableError(Exception):
    """NVML cannot be used on this machine (no library, no driver, no permission …)."""


class NvmlQueryError(Exception):
    """NVML started but failed to answer a question it should answer."""


def read_facts(
    nvml: Any = None,
    *,
    node_root: pathlib.Path = SYS_NODE_ROOT,
) -> nvml_topology.NvmlFacts:
    """Everything NVML knows about the node's GPUs; no GPUs gives empty facts.

    ``nvml`` defaults to the real ``pynvml`` module. Raises :class:`NvmlUnavailableError` when NVML
    cannot start and :class:`NvmlQueryError` when it fails afterwards.
    """
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError as error:  # pragma: no cover - nvidia-ml-py is a dependency
            raise NvmlUnavailableError(f"the pynvml module is not installed: {error}") from error
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        raise NvmlUnavailableError(f"NVML did not start: {error}") from error
    try:
        return _read(nvml, node_cpus=read_node_cpus(node_root))
    except nvml.NVMLError as error:
        raise NvmlQueryError(f"NVML query failed: {error}") from error
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as error:
            logger.debug("nvmlShutdown failed: %s", error)


def read_node_cpus(root: pathlib.Path = SYS_NODE_ROOT) -> dict[int, frozenset[int]]:
    """The CPUs of every NUMA node that has any; empty when the host does not say."""
    node_cpus: dict[int, frozenset[int]] = {}
    try:
        node_dirs = sorted(root.glob("node[0-9]*"))
    except OSError:
        return node_cpus
    for node_dir in node_dirs:
        try:
            cpus = nvml_topology.parse_cpulist((node_dir / "cpulist").read_text())
            node = int(node_dir.name.removeprefix("node"))
        except (OSError, ValueError) as error:
            logger.debug("skipping %s: %s", node_dir, error)
            continue
        if cpus:  # memory-only nodes (e.g. GPU memory exposed as a node) hold no CPUs
            node_cpus[node] = cpus
    return node_cpus


def _read(nvml: Any, *, node_cpus: Mapping[int, frozenset[int]]) -> nvml_topology.NvmlFacts:
    count = int(nvml.nvmlDeviceGetCount())
    handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
    cpu_words = _cpu_mask_words(node_cpus)
    gpus = tuple(
        _gpu_facts(nvml, index=index, handle=handle, cpu_words=cpu_words)
        for index, handle in enumerate(handles)
    )
    ancestors: list[list[int | None]] = [[None] * count for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            value = _optional(nvml, "nvmlDeviceGetTopologyCommonAncestor", handles[i], handles[j])
            ancestors[i][j] = ancestors[j][i] = None if value is None else int(value)
    return nvml_topology.NvmlFacts(
        gpus=gpus,
        common_ancestor=tuple(tuple(row) for row in ancestors),
        node_cpus=dict(node_cpus),
    )


def _gpu_facts(nvml: Any, *, index: int, handle: Any, cpu_words: int) -> nvml_topology.GpuFacts:
    memory_mask = _optional(
        nvml,
        "nvmlDeviceGetMemoryAffinity",
        handle,
        NODE_MASK_WORDS,
        nvml.NVML_AFFINITY_SCOPE_NODE,
    )
    cpu_mask = _optional(nvml, "nvmlDeviceGetCpuAffinity", handle, cpu_words)
    memory_nodes = None if memory_mask is None else nvml_topology.cpus_from_mask(memory_mask)
    cpus = None if cpu_mask is None else nvml_topology.cpus_from_mask(cpu_mask)
    return nvml_topology.GpuFacts(
        index=index,
        pci=_address(nvml.nvmlDeviceGetPciInfo(handle)),
        memory_nodes=memory_nodes or None,
        cpus=cpus or None,
        nvlinks=_nvlinks(nvml, handle),
    )


def _nvlinks(nvml: Any, handle: Any) -> tuple[nvml_topology.NvLink, ...]:
    links: list[nvml_topology.NvLink] = []
    for link in range(int(nvml.NVML_NVLINK_MAX_LINKS)):
        if _optional(nvml, "nvmlDeviceGetNvLinkState", handle, link) != nvml.NVML_FEATURE_ENABLED:
            continue
        remote = _optional(nvml, "nvmlDeviceGetNvLinkRemotePciInfo", handle, link)
        if remote is None:
            continue
        links.append(
            nvml_topology.NvLink(
                link=link,
                remote=_address(remote),
                remote_type=_device_type(
                    _optional(nvml, "nvmlDeviceGetNvLinkRemoteDeviceType", handle, link)
                ),
                remote_vendor=int(remote.pciDeviceId) & 0xFFFF,
            )
        )
    return tuple(links)


def _device_type(value: int | None) -> nvml_topology.NvLinkDeviceType | None:
    if value is None:
        return None
    try:
        return nvml_topology.NvLinkDeviceType(value)
    except ValueError:
        return nvml_topology.NvLinkDeviceType.UNKNOWN


def _address(pci_info: Any) -> nvml_topology.PciAddress:
    return nvml_topology.PciAddress(
        domain=int(pci_info.domain), bus=int(pci_info.bus), device=int(pci_info.device)
    )


def _cpu_mask_words(node_cpus: Mapping[int, frozenset[int]]) -> int:
    """Words of the CPU mask to ask for: NVML silently cuts the mask at the size given."""
    highest = max((max(cpus) for cpus in node_cpus.values() if cpus), default=0)
    cpu_count = max(os.cpu_count() or 1, highest + 1, MIN_CPU_MASK_BITS)
    return -(-cpu_count // 64)


def _not_here_codes(nvml: Any) -> frozenset[int]:
    names = (
        "NVML_ERROR_NOT_SUPPORTED",
        "NVML_ERROR_INVALID_ARGUMENT",
        "NVML_ERROR_FUNCTION_NOT_FOUND",
        "NVML_ERROR_NOT_FOUND",
    )
    return frozenset(int(getattr(nvml, name)) for name in names if hasattr(nvml, name))


def _optional(nvml: Any, name: str, *args: Any) -> Any:
    """``nvml.<name>(*args)``, or ``None`` when this GPU, driver or binding lacks the fact."""
    function: Callable[..., Any] | None = getattr(nvml, name, None)
    if function is None:
        return None
    try:
        return function(*args)
    except nvml.NVMLError as error:
        if getattr(error, "value", None) in _not_here_codes(nvml):
            return None
        raise


def read_uuids(nvml: Any = None) -> dict[int, str]:
    """GPU index -> UUID, as NVIDIA's device plugin names devices (``DEVICE_ID_STRATEGY=uuid``).

    Raises :class:`NvmlUnavailableError` when NVML cannot start, :class:`NvmlQueryError` after.
    """
    if nvml is None:
        nvml = importlib.import_module("pynvml")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        raise NvmlUnavailableError(f"NVML did not start: {error}") from error
    try:
        return {
            index: _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(index)))
            for index in range(nvml.nvmlDeviceGetCount())
        }
    except nvml.NVMLError as error:
        raise NvmlQueryError(f"NVML query failed: {error}") from error
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as error:
            logger.debug("nvmlShutdown failed: %s", error)


def _text(value: str | bytes) -> str:
    """Older pynvml returns bytes."""
    return value.decode() if isinstance(value, bytes) else value
