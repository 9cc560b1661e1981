"""The ``GPUPool`` custom resource: one kind of GPU machine, how pods are placed on it, and its
status.

A pool is the set of nodes its ``nodeSelector`` matches (typically one GPU product, e.g. all
HGX H100 nodes); fair shares, guarantees and limits are per pool, since an H100 is not a V100.
The placement policy says whether to pack pods into partly used NVLink islands (keeping whole
islands free for big jobs) or spread them, and whether a request that fits one island must get
one (ARCHITECTURE.md §3).
"""

from __future__ import annotations

import decimal
import enum
import re
from typing import Annotated, ClassVar, Final

import pydantic

from gpufair.api import common, names
from gpufair.core import policy

DECIMAL_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?$"
RESOURCE_NAME_PATTERN: Final = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
"""A domain-prefixed extended resource name (``nvidia.com/gpu``, ``nvidia.com/mig-1g.10gb``)."""


def _decimal_string(value: object) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "2.50" (quote the number in YAML)')
    if not re.fullmatch(DECIMAL_PATTERN, value):
        raise ValueError(f'{value!r} is not a decimal such as "2.50"')
    return decimal.Decimal(value)


DecimalString = Annotated[
    decimal.Decimal,
    pydantic.PlainValidator(_decimal_string),
    pydantic.PlainSerializer(str, return_type=str),
    pydantic.WithJsonSchema({"type": "string", "maxLength": 32, "pattern": DECIMAL_PATTERN}),
]
"""Money as a decimal string on the wire (``"2.50"``), a :class:`decimal.Decimal` in Python."""


class GroupDomain(enum.StrEnum):
    """Whether a pod group's members may run in different multi-node NVLink domains."""

    ANY = "Any"
    """Members go wherever the group fits on the fewest machines."""
    SAME = "Same"
    """Every member on nodes of one NVLink domain (the same ``nvidia.com/gpu.clique`` label, as
    GPU Feature Discovery sets on GB200 NVL72 class systems; a node without it is a domain of
    its own), or the group waits."""


class Placement(common.SpecModel):
    """How pods are placed on the pool's GPUs."""

    mode: policy.PlacementMode = policy.PlacementMode.PACK
    """Pack (fill partly used islands and nodes first, keeping whole NVLink islands free) or
    Spread (prefer the emptiest nodes)."""
    topology: policy.TopologyRule = policy.TopologyRule.PREFERRED
    """Preferred (the best-scoring GPU set wins) or Required (a request that fits one NVLink
    island of a node must get one, or the node is filtered out)."""
    group_domain: GroupDomain = GroupDomain.ANY
    """Any (a pod group's members may span NVLink domains) or Same (all members of a pod group
    within one multi-node NVLink domain: nodes with the same ``nvidia.com/gpu.clique`` label;
    a node without the label is a domain of its own, so such a group fits on one node only)."""


class GPUPoolSpec(common.SpecModel):
    """Which nodes form the pool, which resource counts as a GPU, and how pods are placed."""

    node_selector: common.LabelSelector
    """Nodes whose labels match belong to the pool, e.g. by ``nvidia.com/gpu.product``; a node
    should match one pool only."""
    resource_name: str = pydantic.Field(
        default=names.DEFAULT_GPU_RESOURCE, max_length=253, pattern=RESOURCE_NAME_PATTERN
    )
    """The extended resource that counts GPUs on the pool's nodes."""
    placement: Placement = pydantic.Field(default_factory=Placement)
    """Placement policy of the pool."""
    cost_per_gpu_hour: DecimalString | None = None
    """Price of one GPU-hour as a decimal string (``"2.50"``), for chargeback; unset: no
    cost reported."""


class PoolTenantStatus(common.StatusModel):
    """One tenant's use of the pool."""

    name: common.DnsSubdomain
    """Name of the TenantQuota."""
    allocated: int = pydantic.Field(default=0, ge=0)
    """GPUs held by the tenant's bound pods."""
    fair_share: float | None = pydantic.Field(default=None, ge=0)
    """The tenant's current fair share of the pool, in GPUs."""


class GPUPoolStatus(common.StatusModel):
    """What the operator observed on the pool's nodes."""

    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    """The ``metadata.generation`` this status was computed from."""
    conditions: list[common.Condition] = pydantic.Field(
        default_factory=list, json_schema_extra=common.CONDITIONS_LIST
    )
    """Standard conditions: ``Ready``, ``Overcommitted``, ``NoNodes``, ``TopologyMissing``."""
    nodes: int = pydantic.Field(default=0, ge=0)
    """Schedulable nodes in the pool."""
    capacity: int = pydantic.Field(default=0, ge=0)
    """Allocatable GPUs of those nodes."""
    allocated: int = pydantic.Field(default=0, ge=0)
    """GPUs held by bound pods."""
    free: int = pydantic.Field(default=0, ge=0)
    """GPUs neither allocated nor unhealthy."""
    largest_free_island: int = pydantic.Field(default=0, ge=0)
    """GPUs in the largest fully free NVLink island of any node (0 on PCIe-only pools: see
    ``free``): the biggest job that can still get all-NVLink GPUs."""
    tenants: list[PoolTenantStatus] = pydantic.Field(
        default_factory=list, json_schema_extra=common.named_list(common.MAX_TENANTS_PER_POOL)
    )
    """Per-tenant allocation."""


class GPUPool(common.Resource):
    """A pool of GPU nodes of one kind (cluster-scoped)."""

    KIND: ClassVar[str] = names.GPU_POOL_KIND
    PLURAL: ClassVar[str] = names.GPU_POOL_PLURAL
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("gpool",)

    kind: str = names.GPU_POOL_KIND
    spec: GPUPoolSpec
    status: GPUPoolStatus | None = None


PRINTER_COLUMNS: Final = (
    common.PrinterColumn("Capacity", "integer", ".status.capacity", "Allocatable GPUs"),
    common.PrinterColumn("Free", "integer", ".status.free", "Free GPUs"),
    common.PrinterColumn(
        "Largest Island", "integer", ".status.largestFreeIsland", "GPUs in the largest free island"
    ),
    common.PrinterColumn("Nodes", "integer", ".status.nodes", "Schedulable nodes"),
    common.PrinterColumn("Mode", "string", ".spec.placement.mode", "Placement mode", priority=1),
    common.PrinterColumn(
        "Topology", "string", ".spec.placement.topology", "Topology rule", priority=1
    ),
    common.PrinterColumn(
        "Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Ready condition"
    ),
    common.AGE_COLUMN,
)
"""Columns of ``kubectl get gpool`` (``-o wide`` adds those with priority 1)."""
