"""Standard status conditions with transition tracking: one Kubernetes Event per transition.

The planner says which conditions an object should have now; :func:`merge` keeps each
condition's ``lastTransitionTime`` while its status stays the same and reports the ones whose
status changed (or that are new). Because the previous conditions come from the persisted
status, a restarted operator neither loses transition times nor repeats the events.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence

from gpufair.state import model


class Type(enum.StrEnum):
    READY = "Ready"
    OVERCOMMITTED = "Overcommitted"
    NAMESPACE_CONFLICT = "NamespaceConflict"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    NO_NODES = "NoNodes"
    TOPOLOGY_MISSING = "TopologyMissing"


@dataclasses.dataclass(frozen=True, slots=True)
class Desired:
    """A condition as the planner wants it; ``warning`` picks the event type of a transition."""

    type: Type
    status: bool
    reason: str
    message: str
    warning: bool = False

    @property
    def status_text(self) -> str:
        return "True" if self.status else "False"


def merge(
    previous: Sequence[model.Condition],
    desired: Iterable[Desired],
    *,
    now: float,
    generation: int,
) -> tuple[tuple[model.Condition, ...], tuple[Desired, ...]]:
    """The new conditions (in ``desired`` order) and those that transitioned.

    A condition transitions when its status differs from the previous one, or when it is new
    and says something (``Ready`` of any status, any other type only when ``True``); a changed
    reason or message alone updates the text without an event.
    """
    before = {condition.type: condition for condition in previous}
    merged: list[model.Condition] = []
    changed: list[Desired] = []
    for want in desired:
        old = before.get(want.type)
        moved = old is None or old.status != want.status_text
        merged.append(
            model.Condition(
                type=want.type,
                status=want.status_text,
                reason=want.reason,
                message=want.message,
                last_transition=now if moved or old is None else old.last_transition,
                observed_generation=generation,
            )
        )
        if (old is not None and moved) or (
            old is None and (want.status or want.type is Type.READY)
        ):
            changed.append(want)
    return tuple(merged), tuple(changed)
