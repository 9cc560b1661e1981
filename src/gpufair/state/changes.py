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
import itertools
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gpufair.state import model


def same_items(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two sequences hold the very same objects in the same order."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


_UID = operator.attrgetter("uid")


class ByUid(Mapping[str, model.GpuPod]):
    """A snapshot's pods by uid, read through their positions (no dict of them is built)."""

    __slots__ = ("_pods", "_position")

    def __init__(self, pods: Sequence[model.GpuPod], position: Mapping[str, int]) -> None:
        self._pods = pods
        self._position = position

    def __getitem__(self, uid: str) -> model.GpuPod:
        return self._pods[self._position[uid]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)


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
    """Which pods changed since the previous pass, found without a Python-level comparison of
    every pod in the usual case (objects replaced in place: one identity comparison of the two
    tuples in C), and with one cheap pass over the uids when pods came or went. The previous
    pods are held until the comparison is made, so identities are never confused."""

    def __init__(self) -> None:
        self._pods: tuple[model.GpuPod, ...] = ()
        self._position: dict[str, int] = {}
        self._unique = False

    def update(self, pods: tuple[model.GpuPod, ...]) -> PodChanges | None:
        """The changes since the previous call; ``None`` when they cannot be told apart from a
        new stream (first call, repeated uids, or pods that stayed but changed their order):
        then every answer is computed afresh."""
        previous, old_position = self._pods, self._position
        if previous and self._unique and len(previous) == len(pods):
            replaced = self._replaced(previous, pods)
            if replaced is not None:
                self._pods = pods
                return PodChanges(
                    replaced,
                    frozenset(),
                    ByUid(previous, old_position),
                    old_position,
                    ByUid(pods, old_position),
                )
        uids = list(map(_UID, pods))
        position = dict(zip(uids, range(len(uids)), strict=True))
        self._pods, self._position = pods, position
        unique, self._unique = self._unique, len(position) == len(uids)
        if not previous or not unique or not self._unique:
            return None
        removed = frozenset(old_position.keys() - position.keys())
        changed = frozenset(
            uid
            for uid, index in position.items()
            if (old := old_position.get(uid)) is None or previous[old] is not pods[index]
        )
        gone = changed | removed
        kept = list(map(old_position.__getitem__, itertools.filterfalse(gone.__contains__, uids)))
        if not all(map(operator.lt, kept, kept[1:])):
            return None
        return PodChanges(
            changed, removed, ByUid(previous, old_position), position, ByUid(pods, position)
        )

    @staticmethod
    def _replaced(
        previous: tuple[model.GpuPod, ...], pods: tuple[model.GpuPod, ...]
    ) -> frozenset[str] | None:
        """The uids of pods replaced in place (same uid at the same position), or ``None``
        when some position holds another pod now."""
        moved = list(itertools.compress(range(len(pods)), map(operator.is_not, previous, pods)))
        if any(previous[index].uid != pods[index].uid for index in moved):
            return None
        return frozenset(pods[index].uid for index in moved)


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
