"""Waiting jobs grouped by (tenant, GPU count), oldest first within each group.

Every policy needs "the oldest waiting jobs of each size that could fit"; grouping by size
makes that a look at a few group heads instead of a scan of the whole queue (a contended week
has thousands of waiting jobs but only about ten distinct GPU counts). New submissions arrive
in submit order, so each group is a deque; preempted jobs go back in at their original submit
time (as Kueue requeues an evicted workload by creation time) through a small side heap.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Callable, Iterator

from gpufair.sim import engine

Entry = tuple[float, int]
"""``(submit, job_id)``: the order within a group."""


class _Group:
    __slots__ = ("fresh", "requeued")

    def __init__(self) -> None:
        self.fresh: collections.deque[Entry] = collections.deque()
        self.requeued: list[Entry] = []

    def __len__(self) -> int:
        return len(self.fresh) + len(self.requeued)

    def head(self) -> Entry:
        if not self.requeued:
            return self.fresh[0]
        if not self.fresh:
            return self.requeued[0]
        return min(self.fresh[0], self.requeued[0])

    def pop(self) -> Entry:
        if self.requeued and (not self.fresh or self.requeued[0] < self.fresh[0]):
            return heapq.heappop(self.requeued)
        return self.fresh.popleft()

    def first(self, count: int) -> list[Entry]:
        fresh = itertools.islice(self.fresh, count)
        if not self.requeued:
            return list(fresh)
        return list(itertools.islice(heapq.merge(fresh, sorted(self.requeued)), count))


class WaitingJobs:
    """The waiting jobs of one policy."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, int], _Group] = {}
        self.count = 0
        self.sizes: dict[int, int] = {}
        """Waiting jobs by GPU count (the demand histogram island keeping weighs)."""

    def push(self, job: engine.Job) -> None:
        group = self._groups.get((job.tenant, job.gpus))
        if group is None:
            group = self._groups[job.tenant, job.gpus] = _Group()
        entry = (job.submit, job.job_id)
        if not group.fresh or group.fresh[-1] <= entry:
            group.fresh.append(entry)
        else:
            heapq.heappush(group.requeued, entry)
        self.count += 1
        self.sizes[job.gpus] = self.sizes.get(job.gpus, 0) + 1

    def pop(self, tenant: str, gpus: int) -> int:
        """Remove and return the id of the oldest waiting job of this group."""
        group = self._groups[tenant, gpus]
        _, job_id = group.pop()
        if not group:
            del self._groups[tenant, gpus]
        self.count -= 1
        self.sizes[gpus] -= 1
        if not self.sizes[gpus]:
            del self.sizes[gpus]
        return job_id

    def heads(self) -> Iterator[tuple[str, int, float, int]]:
        """``(tenant, gpus, submit, job_id)`` of the oldest job of every non-empty group."""
        for (tenant, gpus), group in self._groups.items():
            submit, job_id = group.head()
            yield tenant, gpus, submit, job_id

    def counts(self) -> Iterator[tuple[str, int, int]]:
        """``(tenant, gpus, jobs)`` of every group."""
        for (tenant, gpus), group in self._groups.items():
            yield tenant, gpus, len(group)

    def oldest(self, count: Callable[[int], int]) -> Iterator[tuple[str, int]]:
        """``(tenant, job_id)`` of the ``count(gpus)`` oldest jobs of every group."""
        for (tenant, gpus), group in self._groups.items():
            for _, job_id in group.first(count(gpus)):
                yield tenant, job_id
