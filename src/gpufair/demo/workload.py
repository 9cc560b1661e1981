"""The demo's burst of GPU jobs: who submits what, when, and how long each job runs.

The plan tells a story in three acts, scaled to the demo's duration:

1. ``batch`` arrives first with many small jobs and, the pool being idle, borrows most of it.
2. ``research`` (8- and 4-GPU jobs) and ``vision`` (a mix of 1 to 4) arrive: the pool is
   contended, the operator admits by weighted fair share and reclaims GPUs from the borrower.
3. Further waves of mixed sizes keep the pool contended while jobs complete, so the shares move.

Deterministic for a given seed; times are seconds after the burst starts.
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    tenant: str
    gpus: int
    submit_at: float
    run_seconds: float


@dataclasses.dataclass(frozen=True)
class _Wave:
    tenant: str
    at: float  # fraction of the duration
    sizes: tuple[int, ...]
    run: tuple[float, float]  # run time range, fractions of the duration


_WAVES: tuple[_Wave, ...] = (
    _Wave("batch", 0.0, (1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 4, 4, 2, 2), (0.45, 0.7)),
    _Wave("research", 0.12, (8, 4, 4, 2, 8, 4), (0.22, 0.35)),
    _Wave("vision", 0.15, (4, 2, 2, 1, 1, 2, 4, 1, 2), (0.18, 0.3)),
    _Wave("batch", 0.3, (1, 2, 1, 2), (0.2, 0.3)),
    _Wave("research", 0.42, (8, 2, 4, 2), (0.2, 0.3)),
    _Wave("vision", 0.5, (2, 4, 1, 1, 2), (0.15, 0.25)),
    _Wave("batch", 0.55, (2, 2, 1, 1), (0.15, 0.25)),
    _Wave("research", 0.65, (4, 4, 2), (0.12, 0.2)),
    _Wave("vision", 0.7, (1, 2, 2, 4), (0.1, 0.2)),
)


def plan(duration: float, *, seed: int = 7) -> list[Job]:
    """Every job of the demo, in submission order."""
    rng = random.Random(seed)
    jobs: list[Job] = []
    counters: dict[str, int] = {}
    for wave in _WAVES:
        for offset, gpus in enumerate(wave.sizes):
            counters[wave.tenant] = counters.get(wave.tenant, 0) + 1
            low, high = wave.run
            jobs.append(
                Job(
                    name=f"{wave.tenant}-{counters[wave.tenant]:02d}-{gpus}g",
                    tenant=wave.tenant,
                    gpus=gpus,
                    # a burst, not one instant: a few pods per second
                    submit_at=duration * wave.at + 0.15 * offset,
                    run_seconds=duration * rng.uniform(low, high),
                )
            )
    jobs.sort(key=lambda job: job.submit_at)
    return jobs
