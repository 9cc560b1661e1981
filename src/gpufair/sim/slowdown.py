"""How much slower a job runs on a poor placement: the simulator's placement cost model.

The trace gives each job's duration; the simulator takes it as the duration at the best
placement (all GPUs in one NVLink island, or on the fewest machines for jobs wider than one
machine) and multiplies it by :meth:`SlowdownModel.factor` for the GPUs it actually got.

Two inputs, stated in ``docs/simulator.md``:

* **Spreading over machines** is measured. The Pollux placement profiles
  (``../shared/data/placement-profiles/<model>_placements.csv``) time the same training step
  with the same per-GPU batch on one machine and spread over several. For each of the six
  models, :func:`load_profiles` takes the geometric mean, over batch sizes and spread
  placements of 2-4 GPUs, of ``step_time(spread) / step_time(one machine)`` (the *cross-machine
  factor*), and the same ratio for jobs that already span machines spread over more of them
  than needed (the *extra-machine factor*, clamped at 1: the profiles show that once a job's
  ring crosses the network, more machines hardly cost more). Each job is assigned one of the
  models deterministically (round robin on its trace position), so the slowdowns the trace
  sees have the spread the measurements have.
* **Links inside one machine** are not measured by the profiles. A set of GPUs on one machine
  whose worst link is ``level`` costs ``1 + (cross - 1) * LEVEL_FRACTION[level]``: the fraction
  is how much of the network's extra all-reduce time a slower intra-machine link adds, from
  nominal bandwidths (see :data:`NOMINAL_GBPS`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import pathlib
from collections.abc import Mapping, Sequence

from gpufair.core import topology

MACHINE_GPUS_IN_PROFILES = 4
"""The profiles were measured on 4-GPU machines: placement ``22`` is 2+2 on two machines."""

NOMINAL_GBPS: Mapping[str, float] = {
    "NVLINK": 40.0,
    "PIX": 12.0,
    "PXB": 10.0,
    "PHB": 9.0,
    "NODE": 8.0,
    "SYS": 5.0,
    "NETWORK": 3.0,
}
"""Rough all-reduce bandwidth (GB/s) per link kind: NVLink 2.0 pair, PCIe 3.0 x16 peer-to-peer
through one switch / several bridges / the host bridge / across host bridges, across the CPU
interconnect, and 25 Gb/s Ethernet between machines (the profiles' testbed)."""


def _fraction(kind: str) -> float:
    """Share of the network's extra transfer time that a link of this kind adds."""
    best = 1.0 / NOMINAL_GBPS["NVLINK"]
    worst = 1.0 / NOMINAL_GBPS["NETWORK"]
    return (1.0 / NOMINAL_GBPS[kind] - best) / (worst - best)


LEVEL_FRACTION: Mapping[topology.LinkLevel, float] = {
    topology.LinkLevel.SELF: 0.0,
    topology.LinkLevel.NVLINK: 0.0,
    **{
        level: _fraction(level.name)
        for level in (
            topology.LinkLevel.PIX,
            topology.LinkLevel.PXB,
            topology.LinkLevel.PHB,
            topology.LinkLevel.NODE,
            topology.LinkLevel.SYS,
        )
    },
}


class ProfileError(ValueError):
    """A placement-profile file that cannot be used; the message names the file."""


@dataclasses.dataclass(frozen=True, slots=True)
class ModelProfile:
    """The two measured factors of one training model."""

    name: str
    cross_machine: float
    extra_machines: float


@dataclasses.dataclass(frozen=True, slots=True)
class SlowdownModel:
    """Placement slowdowns for jobs, one measured profile per model (round robin over jobs)."""

    profiles: tuple[ModelProfile, ...]
    machine_gpus: int = 8

    def profile_for(self, job_id: int) -> ModelProfile:
        return self.profiles[job_id % len(self.profiles)]

    def factor(
        self,
        *,
        job_id: int,
        gpus: int,
        machines: int,
        level: topology.LinkLevel,
    ) -> float:
        """Run-time multiplier (>= 1) for ``gpus`` GPUs on ``machines`` machines.

        ``level`` is the worst link among GPUs on the same machine (``SELF`` for one GPU).
        """
        if gpus <= 1:
            return 1.0
        profile = self.profile_for(job_id)
        needed = math.ceil(gpus / self.machine_gpus)
        if machines > needed:
            return profile.cross_machine if needed == 1 else profile.extra_machines
        if machines > 1:
            return 1.0
        return 1.0 + (profile.cross_machine - 1.0) * LEVEL_FRACTION[level]


def uniform(factor: float = 1.0, *, machine_gpus: int = 8) -> SlowdownModel:
    """A model where any spread costs ``factor`` (tests; ``1.0`` switches slowdowns off)."""
    return SlowdownModel(
        profiles=(ModelProfile(name="uniform", cross_machine=factor, extra_machines=factor),),
        machine_gpus=machine_gpus,
    )


def load_profiles(folder: pathlib.Path, *, machine_gpus: int = 8) -> SlowdownModel:
    """Read every ``*_placements.csv`` in ``folder`` into a :class:`SlowdownModel`."""
    files = sorted(folder.glob("*_placements.csv"))
    if not files:
        raise ProfileError(f"{folder}: no *_placements.csv placement profiles")
    return SlowdownModel(
        profiles=tuple(_profile(path) for path in files), machine_gpus=machine_gpus
    )


def _profile(path: pathlib.Path) -> ModelProfile:
    steps: dict[tuple[str, int], float] = {}
    try:
        with path.open(newline="") as handle:
            for record in csv.DictReader(handle):
                steps[record["placement"], int(record["local_bsz"])] = float(record["step_time"])
    except (OSError, KeyError, ValueError) as error:
        raise ProfileError(f"{path}: cannot read placement profile: {error}") from error
    cross = _ratio(steps, spans_needed=False)
    extra = _ratio(steps, spans_needed=True)
    if cross is None or extra is None:
        raise ProfileError(f"{path}: no spread/consolidated pairs at equal batch size")
    return ModelProfile(
        name=path.name.removesuffix("_placements.csv"),
        cross_machine=max(1.0, cross),
        extra_machines=max(1.0, extra),
    )


def consolidated(gpus: int) -> str:
    """The placement string using the fewest 4-GPU machines: ``9`` -> ``"441"``."""
    full, rest = divmod(gpus, MACHINE_GPUS_IN_PROFILES)
    return str(MACHINE_GPUS_IN_PROFILES) * full + (str(rest) if rest else "")


def _ratio(steps: Mapping[tuple[str, int], float], *, spans_needed: bool) -> float | None:
    """Geometric mean of step(spread) / step(consolidated) at equal per-GPU batch size.

    ``spans_needed`` False: jobs that fit one profile machine (2-4 GPUs) spread over several.
    True: jobs that need several machines spread over more than the fewest.
    """
    logs: list[float] = []
    for (placement, batch), step in steps.items():
        gpus = sum(int(digit) for digit in placement)
        best = consolidated(gpus)
        if placement == best or len(placement) <= len(best):
            continue
        if (len(best) > 1) != spans_needed or (best, batch) not in steps:
            continue
        logs.append(math.log(step / steps[best, batch]))
    return _geomean(logs)


def _geomean(logs: Sequence[float]) -> float | None:
    return math.exp(sum(logs) / len(logs)) if logs else None
