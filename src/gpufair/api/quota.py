"""The ``TenantQuota`` custom resource: one tenant's share of the GPU fleet, and its status.

A tenant is a set of namespaces (listed, selected by label, or both), never a pod label, so no
pod can claim another tenant's quota. Per pool the tenant has a guarantee (GPUs it can always
reclaim), a limit (its ceiling, borrowing included) and a lendable part of the guarantee; its
weight decides how the rest of each pool is shared (ARCHITECTURE.md §4).

Users write the spec; the operator writes the status. The CRD schema (``crds/``), the
``gpufair whatif`` validation and the operator all use these models.
"""

from __future__ import annotations

import datetime
from typing import ClassVar, Final

import pydantic

from gpufair.api import common, names
from gpufair.core import policy


class PoolQuota(common.SpecModel):
    """The tenant's entitlement in one GPUPool."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            # Static messages: a messageExpression with string(self.limit) has a result of
            # unknown size, which the API server estimates as unbounded and refuses the CRD
            # (gpufair.api.celcost); the Python validator adds the figure.
            common.CelRule(
                rule="!has(self.limit) || self.guaranteed <= self.limit",
                message="must be <= limit",
                field="guaranteed",
            ),
            common.CelRule(
                rule="!has(self.lendable) || self.lendable <= self.guaranteed",
                message="must be <= guaranteed",
                field="lendable",
            ),
        )
    )

    name: common.DnsSubdomain
    """Name of the GPUPool."""
    guaranteed: int = pydantic.Field(default=0, ge=0)
    """GPUs always reclaimable for this tenant in this pool, by preempting borrowers."""
    limit: int | None = pydantic.Field(default=None, ge=0)
    """Ceiling of the tenant's GPUs in this pool, borrowing included; unset: the pool's
    capacity."""
    lendable: int | None = pydantic.Field(default=None, ge=0)
    """Part of the guarantee other tenants may borrow while this tenant leaves it idle; unset:
    the whole guarantee."""

    @pydantic.model_validator(mode="after")
    def _bounds_are_ordered(self) -> PoolQuota:
        if self.limit is not None and self.guaranteed > self.limit:
            raise common.field_error("guaranteed", "must be <= limit ({limit})", limit=self.limit)
        if self.lendable is not None and self.lendable > self.guaranteed:
            raise common.field_error(
                "lendable", "must be <= guaranteed ({guaranteed})", guaranteed=self.guaranteed
            )
        return self

    @property
    def effective_lendable(self) -> int:
        """The lendable GPUs with the default applied (the whole guarantee)."""
        return self.guaranteed if self.lendable is None else self.lendable


class Preemption(common.SpecModel):
    """How this tenant takes part in reclaiming GPUs."""

    reclaim: bool = True
    """The tenant may reclaim GPUs up to its fair share by preempting pods of borrowing
    tenants."""
    min_runtime_seconds: int = pydantic.Field(default=0, ge=0)
    """This tenant's pods are never preempted before they have run this long."""


class Admission(common.SpecModel):
    """What happens to a pod the tenant cannot run now."""

    on_limit: policy.OnLimit = policy.OnLimit.QUEUE
    """At the limit or out of a hard budget: Queue (the pod waits behind its scheduling gate) or
    Reject (the admission webhook denies it at creation)."""


class Budget(common.SpecModel):
    """A GPU-hour budget per period, summed over all pools."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.CelRule(
                rule="duration(self.period) > duration('0s')",
                message="must be longer than 0s",
                field="period",
            )
        )
    )

    gpu_hours: float = pydantic.Field(ge=0)
    """GPU-hours the tenant may use per period."""
    period: common.GoDuration
    """Length of a budget period as a Go duration, e.g. ``720h`` or ``168h``."""
    enforcement: policy.BudgetEnforcement
    """Hard (stop admitting the tenant's pods until the next period) or Soft (conditions,
    events and metrics only)."""

    @pydantic.field_validator("period")
    @classmethod
    def _period_is_positive(cls, period: str) -> str:
        if common.parse_go_duration(period) <= 0:
            raise ValueError("must be longer than 0s")
        return period

    @property
    def period_seconds(self) -> float:
        """The period in seconds."""
        return common.parse_go_duration(self.period)


class TenantQuotaSpec(common.SpecModel):
    """Which namespaces form the tenant, and its weight, pools, preemption, admission and
    budget."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.CelRule(
                rule="(has(self.namespaces) && size(self.namespaces) > 0)"
                " || has(self.namespaceSelector)",
                message="set namespaces, namespaceSelector or both",
            ),
        )
    )

    namespaces: list[common.DnsLabel] = pydantic.Field(
        default_factory=list,
        max_length=common.MAX_NAMESPACES,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Namespaces of the tenant. A namespace belongs to at most one tenant."""
    namespace_selector: common.LabelSelector | None = None
    """Namespaces whose labels match also belong to the tenant."""
    weight: float = pydantic.Field(default=1, gt=0)
    """Share of the capacity beyond guarantees, relative to the other tenants' weights."""
    pools: list[PoolQuota] = pydantic.Field(
        min_length=1, json_schema_extra=common.named_list(common.MAX_POOLS_PER_TENANT)
    )
    """The GPUPools the tenant may use; its pods are never placed in any other pool."""
    preemption: Preemption = pydantic.Field(default_factory=Preemption)
    """Reclaiming GPUs from borrowers, and protecting this tenant's pods from it."""
    admission: Admission = pydantic.Field(default_factory=Admission)
    """What happens to pods beyond the limit or budget."""
    budget: Budget | None = None
    """Optional GPU-hour budget; unset: no budget."""

    @pydantic.model_validator(mode="after")
    def _names_are_sound(self) -> TenantQuotaSpec:
        if not self.namespaces and self.namespace_selector is None:
            raise common.field_error(
                "namespaces", "set namespaces, namespaceSelector or both (the tenant is empty)"
            )
        _unique("namespaces", self.namespaces)
        _unique("pools", [pool.name for pool in self.pools])
        return self

    def pool(self, name: str) -> PoolQuota | None:
        """The tenant's entry for pool ``name``, if it has one."""
        return next((pool for pool in self.pools if pool.name == name), None)


def _unique(field: str, values: list[str]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise common.field_error(
                f"{field}[{index}]", "duplicate {value!r} (names must be unique)", value=value
            )
        seen.add(value)


class Usage(common.StatusModel):
    """Metered GPU use: cumulative for chargeback, per budget period, and decayed for queue
    order. Amounts are exact to the millisecond (``gpufair.core.usage`` counts
    milli-GPU-seconds)."""

    gpu_seconds: float = pydantic.Field(default=0, ge=0)
    """GPU-seconds used since the quota was created."""
    decayed_gpu_seconds: float = pydantic.Field(default=0, ge=0)
    """GPU-seconds with exponential decay (the operator's half-life); lower decayed usage per
    weight is admitted first."""
    as_of: datetime.datetime | None = None
    """The instant the figures are valid at; metering resumes from here, so no second is
    counted twice."""
    period_gpu_seconds: float = pydantic.Field(default=0, ge=0)
    """GPU-seconds used in the current budget period (0 without a budget)."""
    period_start: datetime.datetime | None = None
    """Start of the current budget period; unset without a budget."""


class PoolQuotaStatus(common.StatusModel):
    """The tenant's state in one pool."""

    name: common.DnsSubdomain
    """Name of the GPUPool."""
    allocated: int = pydantic.Field(default=0, ge=0)
    """GPUs held by the tenant's bound pods."""
    guaranteed: int = pydantic.Field(default=0, ge=0)
    """The guarantee in force (the spec's)."""
    fair_share: float = pydantic.Field(default=0, ge=0)
    """The tenant's current weighted fair share of the pool, in GPUs (a real number)."""
    borrowed: int = pydantic.Field(default=0, ge=0)
    """GPUs allocated beyond the guarantee, reclaimable by other tenants."""
    waiting: int = pydantic.Field(default=0, ge=0)
    """Pods waiting for admission or placement."""
    waiting_gpus: int = pydantic.Field(default=0, ge=0)
    """GPUs requested by the waiting pods."""
    demand: int = pydantic.Field(default=0, ge=0)
    """GPUs of running, admitted and waiting pods: the demand the fair share was computed
    from."""
    usage: Usage | None = None
    """Metered use of this pool."""


class BudgetStatus(common.StatusModel):
    """Use of the GPU-hour budget in the current period."""

    period_start: datetime.datetime | None = None
    """Start of the current budget period."""
    used_gpu_hours: float = pydantic.Field(default=0, ge=0)
    """GPU-hours used in the current period, all pools together."""


class TenantQuotaStatus(common.StatusModel):
    """What the operator observed and decided for the tenant; the totals are over all pools."""

    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    """The ``metadata.generation`` this status was computed from."""
    conditions: list[common.Condition] = pydantic.Field(
        default_factory=list, json_schema_extra=common.CONDITIONS_LIST
    )
    """Standard conditions: ``Ready``, ``Overcommitted``, ``BudgetExhausted``,
    ``NamespaceConflict``."""
    allocated: int = pydantic.Field(default=0, ge=0)
    """GPUs held in all pools."""
    guaranteed: int = pydantic.Field(default=0, ge=0)
    """Guaranteed GPUs in all pools."""
    fair_share: float = pydantic.Field(default=0, ge=0)
    """Sum of the fair shares in all pools."""
    borrowed: int = pydantic.Field(default=0, ge=0)
    """GPUs borrowed beyond guarantees in all pools."""
    waiting: int = pydantic.Field(default=0, ge=0)
    """Pods waiting in all pools."""
    pools: list[PoolQuotaStatus] = pydantic.Field(
        default_factory=list, json_schema_extra=common.named_list(common.MAX_POOLS_PER_TENANT)
    )
    """Per-pool state."""
    usage: Usage | None = None
    """Metered use of all pools together."""
    budget: BudgetStatus | None = None
    """Budget use; present when the spec sets a budget."""


class TenantQuota(common.Resource):
    """A tenant's quota of the GPU fleet (cluster-scoped; only admins edit quotas)."""

    KIND: ClassVar[str] = names.TENANT_QUOTA_KIND
    PLURAL: ClassVar[str] = names.TENANT_QUOTA_PLURAL
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("tq",)

    kind: str = names.TENANT_QUOTA_KIND
    spec: TenantQuotaSpec
    status: TenantQuotaStatus | None = None


PRINTER_COLUMNS: Final = (
    common.PrinterColumn("Weight", "number", ".spec.weight", "Share weight", priority=1),
    common.PrinterColumn("Used", "integer", ".status.allocated", "GPUs allocated, all pools"),
    common.PrinterColumn("Guaranteed", "integer", ".status.guaranteed", "GPUs guaranteed"),
    common.PrinterColumn("Fair Share", "number", ".status.fairShare", "Fair share in GPUs"),
    common.PrinterColumn("Borrowed", "integer", ".status.borrowed", "GPUs beyond guarantees"),
    common.PrinterColumn("Waiting", "integer", ".status.waiting", "Pods waiting"),
    common.PrinterColumn(
        "Budget Used", "number", ".status.budget.usedGPUHours", "GPU-hours this period", priority=1
    ),
    common.PrinterColumn(
        "Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Ready condition"
    ),
    common.AGE_COLUMN,
)
"""Columns of ``kubectl get tq`` (``-o wide`` adds those with priority 1)."""
