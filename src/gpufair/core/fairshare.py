"""Weighted fair share of one GPU pool among its tenants (ARCHITECTURE.md §4).

The operator writes these shares into ``TenantQuota`` status, the admission pass admits within
them first, preemption reclaims up to them, the what-if CLI prints them and the simulator replays
them. :func:`compute` is the one implementation of the rule:

1. Every tenant first gets ``min(demand, guaranteed, limit)``, its *base*. When the bases do not
   fit the capacity (the guarantees are overcommitted and in demand) the capacity is shared
   among them by weighted water-filling, each capped at its base, and nothing else is handed out.
2. The non-lendable part of an idle guarantee, ``guaranteed - lendable`` beyond the tenant's
   demand, stays *reserved* for its owner: nobody else is given it.
3. The rest is water-filled in proportion to weight among the tenants whose demand is not yet
   met, each capped at ``min(demand, limit)``. Whatever nobody demands stays unassigned.

Fair shares are real numbers of GPUs. They are computed in floating point over the claims in
tenant-name order (so the result never depends on the order of the claims) and rounded to
:data:`PRECISION` decimal places: the rounding error of a water-filling pass over a few hundred
tenants is around 1e-12 GPUs, far below the rounding step, so a share that is mathematically an
integer is exactly that integer as a float and ``allocated >= share`` comparisons are reliable.
Integer quantities (bases, the rationing test, reserved caps) stay integers. The exact rational
computation this replaced was the largest cost of a simulated replay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

PRECISION = 9
"""Decimal places shares are rounded to (a nano-GPU; far below any meaningful difference)."""

TOLERANCE = 1e-6
"""Slack for comparing an integer allocation against a real share (see :func:`at_most`)."""


@dataclasses.dataclass(frozen=True)
class TenantClaim:
    """One tenant's entitlement and demand in one pool.

    ``demand`` counts the GPUs of the tenant's running, admitted-but-pending and waiting pods in
    this pool. ``limit`` ``None`` means no ceiling but the pool itself; ``lendable`` ``None``
    means the whole guarantee may be lent while idle.
    """

    tenant: str
    weight: float = 1.0
    guaranteed: int = 0
    limit: int | None = None
    lendable: int | None = None
    demand: int = 0

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"tenant {self.tenant}: weight must be > 0, got {self.weight}")
        for field in ("guaranteed", "demand"):
            if getattr(self, field) < 0:
                raise ValueError(f"tenant {self.tenant}: {field} must be >= 0")
        if self.limit is not None and not 0 <= self.guaranteed <= self.limit:
            raise ValueError(
                f"tenant {self.tenant}: need 0 <= guaranteed ({self.guaranteed})"
                f" <= limit ({self.limit})"
            )
        if self.lendable is not None and not 0 <= self.lendable <= self.guaranteed:
            raise ValueError(
                f"tenant {self.tenant}: need 0 <= lendable ({self.lendable})"
                f" <= guaranteed ({self.guaranteed})"
            )

    @property
    def wanted(self) -> int:
        """The most this tenant can use: its demand, capped by its limit."""
        return self.demand if self.limit is None else min(self.demand, self.limit)

    @property
    def non_lendable(self) -> int:
        """The part of the guarantee others may never borrow."""
        return 0 if self.lendable is None else self.guaranteed - self.lendable


@dataclasses.dataclass(frozen=True)
class PoolShares:
    """The fair shares of one pool at one moment; treat the mappings as read-only.

    ``overcommitted`` is true when the guarantees add up to more than the capacity (the
    ``Overcommitted`` condition: a promise the pool cannot keep once everybody claims it).
    ``rationed`` is the stronger, current fact that the guarantees *in demand* exceed the
    capacity, so some tenant gets less than ``min(demand, guaranteed)``.
    ``reserved`` is idle, non-lendable guarantee held back for its owner (not part of a share).
    Tenants not in the mappings have share, guarantee and demand 0.
    """

    capacity: int
    shares: Mapping[str, float]
    guaranteed_total: int
    overcommitted: bool
    rationed: bool = False
    guaranteed: Mapping[str, int] = dataclasses.field(default_factory=dict)
    demand: Mapping[str, int] = dataclasses.field(default_factory=dict)
    reserved: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def share(self, tenant: str) -> float:
        """The tenant's fair share in GPUs (0 for a tenant without a claim)."""
        return self.shares.get(tenant, 0.0)

    def borrowed(self, tenant: str, allocated: int) -> float:
        """GPUs the tenant uses beyond its own guarantee (the status field ``borrowed``)."""
        return float(max(0, allocated - self.guaranteed.get(tenant, 0)))

    def deficit(self, tenant: str, allocated: int) -> float:
        """How far the tenant is below its fair share (0 when at or above it)."""
        missing = self.share(tenant) - allocated
        return missing if missing > TOLERANCE else 0.0

    def protected(self, tenant: str) -> float:
        """The allocation preemption may never push the tenant below: max(share, guarantee),
        or only the share while the pool is :attr:`rationed` (the guarantees in demand exceed
        the capacity, so they cannot all be kept: each is cut to its rationed share, and a
        tenant holding more than that must give the excess back to the others)."""
        if self.rationed:
            return self.share(tenant)
        return max(self.share(tenant), float(self.guaranteed.get(tenant, 0)))

    def reclaimable(self, tenant: str, allocated: int) -> int:
        """Whole GPUs others may reclaim from the tenant without pushing it below
        :meth:`protected`."""
        spare = allocated - self.protected(tenant)
        return max(0, int(spare + TOLERANCE))


def at_most(amount: float, bound: float) -> bool:
    """``amount <= bound`` up to :data:`TOLERANCE` (shares are rounded reals)."""
    return amount <= bound + TOLERANCE


def compute(capacity: int, claims: Sequence[TenantClaim]) -> PoolShares:
    """Fair shares of a pool with ``capacity`` GPUs among ``claims`` (see the module docstring).

    Raises ``ValueError`` for a negative capacity or a tenant named twice.
    """
    if capacity < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}")
    names = [claim.tenant for claim in claims]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"tenants claimed more than once: {', '.join(duplicates)}")

    ordered = sorted(claims, key=lambda c: c.tenant)
    weights = {c.tenant: float(c.weight) for c in ordered}
    base = {c.tenant: min(c.wanted, c.guaranteed) for c in ordered}
    guaranteed_total = sum(c.guaranteed for c in ordered)
    base_total = sum(base.values())
    rationed = base_total > capacity

    reserved: dict[str, float] = {}
    exact: dict[str, float]
    if rationed:
        exact = water_fill(float(capacity), caps=base, weights=weights)
    else:
        left = float(capacity - base_total)
        held = {c.tenant: c.non_lendable - c.demand for c in ordered if c.non_lendable > c.demand}
        reserved = water_fill(left, caps=held, weights=weights)
        left -= sum(reserved.values())
        unmet = {c.tenant: c.wanted - base[c.tenant] for c in ordered if c.wanted > base[c.tenant]}
        extra = water_fill(left, caps=unmet, weights=weights)
        exact = {name: base[name] + extra.get(name, 0.0) for name in names}

    return PoolShares(
        capacity=capacity,
        shares={name: _real(exact[name]) for name in names},
        guaranteed_total=guaranteed_total,
        overcommitted=guaranteed_total > capacity,
        rationed=rationed,
        guaranteed={c.tenant: c.guaranteed for c in claims},
        demand={c.tenant: c.demand for c in claims},
        reserved={name: _real(amount) for name, amount in reserved.items() if amount > 0},
    )


def water_fill(
    amount: float,
    *,
    caps: Mapping[str, int],
    weights: Mapping[str, float],
) -> dict[str, float]:
    """Share ``amount`` in proportion to weight, nobody above its cap (weighted max-min).

    Raises the common level ``t`` until ``weight * t`` reaches each tenant's cap; tenants
    capped early free the rest for the others. Returns every tenant in ``caps``; what nobody
    can take is left over (the sum may be below ``amount``). Caps are whole GPUs; a tenant
    whose cap is within :data:`_LEVEL_SLACK` (relative) of the level counts as capped, so a cap
    that is mathematically equal to the level is handed out exactly.
    """
    given = dict.fromkeys(caps, 0.0)
    open_ = sorted((name for name in caps if caps[name] > 0), key=lambda n: caps[n] / weights[n])
    left = max(amount, 0.0)
    weight_left = math.fsum(weights[name] for name in open_)
    for index, name in enumerate(open_):
        level = left / weight_left
        if caps[name] / weights[name] > level * (1 + _LEVEL_SLACK):
            for rest in open_[index:]:
                given[rest] = weights[rest] * level
            break
        given[name] = float(caps[name])
        left -= caps[name]
        weight_left -= weights[name]
    return given


_LEVEL_SLACK = 1e-12
"""Relative slack of the level test in :func:`water_fill` (float rounding, not policy)."""


def _real(value: float) -> float:
    return round(max(value, 0.0), PRECISION)
