"""Fluent builders for fair-share, usage, admission and preemption inputs (Kueue style).

    tenant("a").weight(2).guaranteed(16).limit(32).demand(40).claim()

Everything not said has a harmless default: pool ``h100``, weight 1, no guarantee, no limit.
"""

from __future__ import annotations

import dataclasses
from typing import Self

from gpufair.core import fairshare

POOL = "h100"


@dataclasses.dataclass
class TenantBuilder:
    """One tenant in one pool: quota, demand, allocation, usage, budget and preemption policy."""

    name: str
    _weight: float = 1.0
    _guaranteed: int = 0
    _limit: int | None = None
    _lendable: int | None = None
    _demand: int = 0

    def weight(self, value: float) -> Self:
        self._weight = value
        return self

    def guaranteed(self, value: int) -> Self:
        self._guaranteed = value
        return self

    def limit(self, value: int | None) -> Self:
        self._limit = value
        return self

    def lendable(self, value: int) -> Self:
        self._lendable = value
        return self

    def demand(self, value: int) -> Self:
        self._demand = value
        return self

    def claim(self) -> fairshare.TenantClaim:
        return fairshare.TenantClaim(
            tenant=self.name,
            weight=self._weight,
            guaranteed=self._guaranteed,
            limit=self._limit,
            lendable=self._lendable,
            demand=self._demand,
        )


def tenant(name: str) -> TenantBuilder:
    return TenantBuilder(name)


def shares(capacity: int, *tenants: TenantBuilder) -> fairshare.PoolShares:
    """Fair shares of a pool of ``capacity`` among the built tenants."""
    return fairshare.compute(capacity, [t.claim() for t in tenants])
