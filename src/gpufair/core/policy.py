"""The policy vocabulary shared by the CRDs, the core decisions and the simulator.

The API models import these enums, so the values users write in YAML (``Pack``, ``Required``,
``Queue``, ``Hard``) are defined exactly once.
"""

from __future__ import annotations

import enum


class PlacementMode(enum.StrEnum):
    """How a pool places pods among free GPUs."""

    PACK = "Pack"
    """Fill partly used islands and nodes first, keeping whole NVLink islands free."""
    SPREAD = "Spread"
    """Prefer the emptiest nodes (for jobs that want host resources to themselves)."""


class TopologyRule(enum.StrEnum):
    """How strictly a pool keeps a multi-GPU pod inside one NVLink island."""

    PREFERRED = "Preferred"
    """Best set wins by score; a worse set is still accepted."""
    REQUIRED = "Required"
    """A request that fits one NVLink island of the node must get one, or the node is filtered."""


class OnLimit(enum.StrEnum):
    """What happens to a pod whose tenant is at its limit or out of budget."""

    QUEUE = "Queue"
    """The pod waits behind its scheduling gate until the tenant has room."""
    REJECT = "Reject"
    """The admission webhook denies the pod at creation."""


class BudgetEnforcement(enum.StrEnum):
    """What an exhausted GPU-hour budget does."""

    HARD = "Hard"
    """Stop admitting the tenant's pods until the period rolls over."""
    SOFT = "Soft"
    """Only report (condition, event, metric)."""
