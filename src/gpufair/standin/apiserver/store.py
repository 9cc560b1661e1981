"""Objects, resource versions and the watch-event log of the stand-in.

Objects live in kmock's ``ObjectsArray`` (``emulator.objects``, keyed by resource, namespace and
name, each with a version history), so in-process users keep kmock's assertion helpers. What kmock
0.8 lacks is added here:

- one cluster-wide revision counter (etcd's revision): every write stores the new value as the
  object's ``metadata.resourceVersion`` and lists report it as ``metadata.resourceVersion``;
- a bounded per-resource log of watch events, so a watch can resume from a ``resourceVersion``
  (events after it are replayed) and one older than the log answers ``410 Gone``;
- a per-resource index, so lists do not scan every object of every resource;
- bounded history: kmock keeps every version of every object forever; the stand-in keeps the last
  few (``history``), so a long demo does not grow without bound.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import kmock

from gpufair.standin.apiserver import registry

ObjectKey = tuple[str | None, str]  # (namespace, name)


class EventType:
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One change: ``obj`` is the new state (the last state for DELETED), ``old`` the previous."""

    revision: int
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


class EventLog:
    """The most recent events of one resource, oldest first."""

    def __init__(self, limit: int) -> None:
        self._events: collections.deque[Event] = collections.deque()
        self._limit = limit
        self.compacted = 0  # the newest revision no longer in the log

    def append(self, event: Event) -> None:
        if len(self._events) >= self._limit:
            self.compacted = self._events.popleft().revision
        self._events.append(event)

    def since(self, revision: int) -> list[Event]:
        newer: list[Event] = []
        for event in reversed(self._events):
            if event.revision <= revision:
                break
            newer.append(event)
        newer.reverse()
        return newer


class Store:
    """Objects of every resource plus their revisions and watch logs."""

    def __init__(self, objects: kmock.ObjectsArray, *, events: int, history: int) -> None:
        self.objects = objects
        self.revision = 0
        self._events_limit = events
        self._history = history
        self._index: dict[kmock.resource, dict[ObjectKey, kmock.Object]] = {}
        self._logs: dict[kmock.resource, EventLog] = {}
        self._waiters: dict[kmock.resource, asyncio.Future[None]] = {}

    def log(self, spec: registry.ResourceSpec) -> EventLog:
        return self._logs.setdefault(spec.key, EventLog(self._events_limit))

    def get(self, spec: registry.ResourceSpec, namespace: str | None, name: str) -> dict[str, Any]:
        """A deep copy of the object, or ``{}`` when absent."""
        obj = self._index.get(spec.key, {}).get((namespace, name))
        if obj is None or obj.deleted:
            return {}
        return copy.deepcopy(obj.raw)

    def items(self, spec: registry.ResourceSpec, namespace: str | None) -> list[dict[str, Any]]:
        """Deep copies of the live objects, in namespace/name order (etcd key order)."""
        found = [
            (key, obj)
            for key, obj in self._index.get(spec.key, {}).items()
            if not obj.deleted and (namespace is None or key[0] == namespace)
        ]
        found.sort(key=lambda pair: (pair[0][0] or "", pair[0][1]))
        return [copy.deepcopy(obj.raw) for _, obj in found]

    def count(self, spec: registry.ResourceSpec) -> int:
        return sum(1 for obj in self._index.get(spec.key, {}).values() if not obj.deleted)

    def put(
        self, spec: registry.ResourceSpec, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Store a new state (ADDED when ``old`` is ``None``, else MODIFIED); returns a copy."""
        self.revision += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.revision)
        metadata = obj["metadata"]
        key = (metadata.get("namespace"), metadata["name"])
        index = self._index.setdefault(spec.key, {})
        stored = index.get(key)
        if stored is None:
            self.objects[spec.key, key[0], key[1]] = copy.deepcopy(obj)
            index[key] = self.objects[spec.key, key[0], key[1]]
        else:
            stored.history.append(copy.deepcopy(obj))
            self._trim(stored)
        kind = EventType.ADDED if old is None else EventType.MODIFIED
        self._publish(spec, Event(self.revision, kind, copy.deepcopy(obj), old))
        return copy.deepcopy(obj)

    def remove(self, spec: registry.ResourceSpec, obj: dict[str, Any]) -> dict[str, Any]:
        """Delete the object (its last state gets the deletion's revision); returns that state."""
        self.revision += 1
        metadata = obj.setdefault("metadata", {})
        metadata["resourceVersion"] = str(self.revision)
        stored = self._index.get(spec.key, {}).get((metadata.get("namespace"), metadata["name"]))
        if stored is not None and not stored.deleted:
            stored.history.append(copy.deepcopy(obj))
            stored.delete()
            del stored.history[:-2]  # keep the last state and the deletion marker only
        self._publish(spec, Event(self.revision, EventType.DELETED, copy.deepcopy(obj), None))
        return copy.deepcopy(obj)

    def forget(self, spec: registry.ResourceSpec) -> None:
        """Drop a resource's index and log (its CRD was deleted); watchers are woken."""
        self._index.pop(spec.key, None)
        self._logs.pop(spec.key, None)
        self._wake(spec)

    async def changed(self, spec: registry.ResourceSpec) -> None:
        """Wait until the next write to this resource."""
        waiter = self._waiters.get(spec.key)
        if waiter is None or waiter.done():
            waiter = self._waiters[spec.key] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def live_keys(self, spec: registry.ResourceSpec) -> Iterator[ObjectKey]:
        for key, obj in self._index.get(spec.key, {}).items():
            if not obj.deleted:
                yield key

    def _publish(self, spec: registry.ResourceSpec, event: Event) -> None:
        self.log(spec).append(event)
        self._wake(spec)

    def _wake(self, spec: registry.ResourceSpec) -> None:
        waiter = self._waiters.pop(spec.key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _trim(self, stored: kmock.Object) -> None:
        if len(stored.history) > self._history:
            del stored.history[: -self._history]
