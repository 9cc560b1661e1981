"""Which pods and nodes changed since the previous pass, found without a Python loop over
all of them (issue 16): the operator's store replaces a model object only when a watch event
changes it, so comparing each snapshot's objects by key and identity with the previous one's
finds exactly the objects the watch touched. Used by :class:`gpufair.state.passcache.PassCache`
and :func:`gpufair.state.occupancy.pool_occupancies`.

The previous objects are held until the comparison is made, so no new object can reuse an old
one's ``id``.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from gpufair.state import model


def same_items(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two sequences hold the very same objects in the same order."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


_UID = operator.attrgetter("uid")


@dataclasses.dataclass(frozen=True, slots=True)
class PodChanges:
    """The pods of a snapshot against those of the previous pass (:meth:`PodIndex.update`)."""

    changed: frozenset[str]
    """Uids of pods that are new or another object than before."""
    removed: frozenset[str]
    """Uids of pods that are gone."""
    before: Mapping[str, model.GpuPod]
    """The previous pass's pods by uid (the old objects of changed and removed pods)."""
    position: Mapping[str, int]
    """Where each pod is in the snapshot's ``pods``."""
    after: Mapping[str, model.GpuPod]
    """The snapshot's pods by uid."""

    def current(self, uid: str) -> model.GpuPod:
        return self.after[uid]

    @property
    def gone(self) -> frozenset[str]:
        """Uids whose previous object no longer stands."""
        return self.changed | self.removed


class PodIndex:
    """Which pods changed since the previous pass, found without a Python loop over them all:
    each snapshot's pods are compared by uid and object identity (the previous pods are held
    until the comparison is made, so no new object can reuse an old one's ``id``)."""

    def __init__(self) -> None:
        self._pods: tuple[model.GpuPod, ...] = ()
        self._uids: list[str] = []
        self._ids: dict[str, int] = {}
        self._by_uid: dict[str, model.GpuPod] = {}
        self._positions: dict[str, int] | None = None

    def update(self, pods: tuple[model.GpuPod, ...]) -> PodChanges | None:
        """The changes since the previous call; ``None`` when they cannot be told apart from a
        new stream (first call, repeated uids, or pods that stayed but changed their order):
        then every answer is computed afresh."""
        previous, before, old_uids, old_ids = self._pods, self._by_uid, self._uids, self._ids
        if previous and len(self._ids) == len(previous) and same_items(previous, pods):
            return PodChanges(frozenset(), frozenset(), before, self._position(), before)
        uids = list(map(_UID, pods))
        ids = dict(zip(uids, map(id, pods), strict=True))
        self._pods, self._uids, self._ids = pods, uids, ids
        self._by_uid = dict(zip(uids, pods, strict=True))
        self._positions = None
        if not previous or len(ids) != len(uids):
            return None
        changed = frozenset(uid for uid, _ in ids.items() - old_ids.items())
        removed = frozenset(old_ids.keys() - ids.keys())
        gone = changed | removed
        if [uid for uid in old_uids if uid not in gone] != [uid for uid in uids if uid not in gone]:
            return None
        del previous
        return PodChanges(changed, removed, before, self._position(), self._by_uid)

    def _position(self) -> dict[str, int]:
        if self._positions is None:
            self._positions = dict(zip(self._uids, range(len(self._uids)), strict=True))
        return self._positions


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    """The entries of a mapping that changed since the previous pass (:class:`MappingIndex`)."""

    changed: frozenset[str]
    """Keys that are new or map to another object than before."""
    removed: frozenset[str]
    before: Mapping[str, Any]
    """The previous mapping."""


class MappingIndex:
    """Which entries of a mapping (nodes by name) changed since the previous pass, compared
    by key and object identity without a Python loop over every entry (the previous objects
    are held, so no new object can reuse an old one's ``id``)."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._ids: dict[str, int] = {}
        self._seen = False

    def update(self, mapping: Mapping[str, Any]) -> Changes | None:
        """The changes since the previous call (``None`` on the first)."""
        previous, old_ids = self._items, self._ids
        ids = dict(zip(mapping.keys(), map(id, mapping.values()), strict=True))
        self._items, self._ids = dict(mapping), ids
        if not self._seen:
            self._seen = True
            return None
        if ids == old_ids:
            return Changes(changed=frozenset(), removed=frozenset(), before=previous)
        return Changes(
            changed=frozenset(key for key, _ in ids.items() - old_ids.items()),
            removed=frozenset(old_ids.keys() - ids.keys()),
            before=previous,
        )
