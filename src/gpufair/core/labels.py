"""Node labels <-> :class:`~gpufair.core.topology.NodeTopology`: the published topology format.

The node agent writes these labels (``to_labels``), the extender and the operator read them
(``from_labels``), and admins may set them by hand on machines the agent cannot inspect, so the
format is documented in ``docs/topology.md`` and every reader validates it::

    gpufair.dev/topology-schema=v1
    gpufair.dev/gpu-count=8
    gpufair.dev/gpu-3.numa=0
    gpufair.dev/gpu-3.pcie=0
    gpufair.dev/gpu-3.nvlink=1

A per-GPU key is omitted where the attribute is ``None``; ``gpu-count`` says how many GPUs
(indices ``0..count-1``) there are, so a GPU with no attribute at all still exists.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from gpufair.core import topology as topo

LABEL_PREFIX = "gpufair.dev/"
SCHEMA_LABEL = LABEL_PREFIX + "topology-schema"
SCHEMA_VERSION = "v1"
GPU_COUNT_LABEL = LABEL_PREFIX + "gpu-count"
PROXY_LABEL = LABEL_PREFIX + "device-plugin-proxy"
"""``"true"`` on a node whose agent runs the device-plugin proxy and confirms allocations; bind
then keeps at most one unconfirmed pod per request size on it (see ``core.allocation``)."""

_GPU_KEY = re.compile(re.escape(LABEL_PREFIX) + r"gpu-(\d+)\.([A-Za-z0-9_.-]+)")
_NUMBER = re.compile(r"0|[1-9][0-9]{0,8}")


class Attribute(enum.StrEnum):
    """The per-GPU label suffixes of schema v1."""

    NUMA = "numa"
    PCIE = "pcie"
    NVLINK = "nvlink"


class LabelError(ValueError):
    """The node's gpufair labels are malformed or contradict each other."""

    def __init__(self, key: str, value: str | None, reason: str) -> None:
        shown = f"{key}={value}" if value is not None else key
        super().__init__(f"label {shown}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


def gpu_label(index: int, attribute: Attribute) -> str:
    """The label key of one attribute of one GPU, e.g. ``gpufair.dev/gpu-3.numa``."""
    return f"{LABEL_PREFIX}gpu-{index}.{attribute.value}"


def is_owned_key(key: str) -> bool:
    """Whether the node agent owns this label key (so may remove it when stale)."""
    return (
        key in (SCHEMA_LABEL, GPU_COUNT_LABEL, PROXY_LABEL) or _GPU_KEY.fullmatch(key) is not None
    )


def to_labels(topology: topo.NodeTopology) -> dict[str, str]:
    """The labels that describe ``topology``; its GPU indices must be ``0..n-1``."""
    if topology.indices != tuple(range(len(topology.gpus))):
        raise ValueError(
            f"node labels describe GPUs 0..n-1; this topology has indices {topology.indices}"
        )
    labels = {SCHEMA_LABEL: SCHEMA_VERSION, GPU_COUNT_LABEL: str(len(topology.gpus))}
    for gpu in topology.gpus:
        for attribute, value in (
            (Attribute.NUMA, gpu.numa),
            (Attribute.PCIE, gpu.pcie_switch),
            (Attribute.NVLINK, gpu.nvlink_island),
        ):
            if value is not None:
                labels[gpu_label(gpu.index, attribute)] = str(value)
    return labels


def from_labels(labels: Mapping[str, str]) -> topo.NodeTopology | None:
    """The topology the labels describe; ``None`` when the node has no gpufair topology labels."""
    owned = {key: value for key, value in labels.items() if is_owned_key(key)}
    if not owned:
        return None
    schema = owned.get(SCHEMA_LABEL)
    if schema is None:
        some_key = min(owned)
        raise LabelError(
            SCHEMA_LABEL,
            None,
            f"missing, but the node has gpufair topology labels (e.g. {some_key})",
        )
    if schema != SCHEMA_VERSION:
        raise LabelError(
            SCHEMA_LABEL, schema, f"unsupported schema (this gpufair reads {SCHEMA_VERSION})"
        )
    count_text = owned.get(GPU_COUNT_LABEL)
    if count_text is None:
        raise LabelError(GPU_COUNT_LABEL, None, "missing, it says how many GPUs the node has")
    count = _number(GPU_COUNT_LABEL, count_text)
    if count > topo.MAX_GPUS:
        raise LabelError(GPU_COUNT_LABEL, count_text, f"more than {topo.MAX_GPUS} GPUs on a node")
    attributes: dict[int, dict[Attribute, int]] = {index: {} for index in range(count)}
    for key, value in sorted(owned.items()):
        match = _GPU_KEY.fullmatch(key)
        if match is None:
            continue
        index_text, suffix = match.groups()
        index = int(index_text)
        if str(index) != index_text:
            raise LabelError(key, value, "the GPU index must be written without leading zeros")
        if index >= count:
            raise LabelError(key, value, f"GPU {index} but {GPU_COUNT_LABEL} is {count}")
        try:
            attribute = Attribute(suffix)
        except ValueError:
            known = ", ".join(a.value for a in Attribute)
            raise LabelError(
                key, value, f"unknown GPU attribute {suffix!r} (schema v1 knows {known})"
            ) from None
        attributes[index][attribute] = _number(key, value)
    return topo.NodeTopology(
        gpus=tuple(
            topo.GPU(
                index=index,
                numa=found.get(Attribute.NUMA),
                pcie_switch=found.get(Attribute.PCIE),
                nvlink_island=found.get(Attribute.NVLINK),
            )
            for index, found in sorted(attributes.items())
        )
    )


def _number(key: str, value: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise LabelError(key, value, "must be a non-negative integer (no sign, no leading zeros)")
    return int(value)
