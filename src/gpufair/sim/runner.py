"""One benchmark run: the same trace, cluster and tenants replayed under each policy.

The CLI (``gpufair simulate``) builds a :class:`Scenario` and calls :func:`run_all`; tests call
:func:`run_policy` on hand-made traces. Everything a policy needs is built fresh per policy,
so the policies never share state.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import pathlib
import time
from collections.abc import Callable, Sequence

from gpufair.core import policy as core_policy
from gpufair.core import topology, topology_matrix
from gpufair.sim import (
    baselines,
    cluster,
    engine,
    gpufair_policy,
    metrics,
    nvidia_preference,
    placers,
    queues,
    slowdown,
)
from gpufair.sim import trace as trace_model

DEFAULT_TOPOLOGIES = ("dgx1-v100-8gpu-mlx5", "pcie-8x-quadro-rtx6000-pix-pxb")
"""Philly-era 8-GPU machines: a DGX-1 (two NVLink islands of four) and a PCIe box with two
PCIe switches, half the cluster each."""


class PolicyName(enum.StrEnum):
    GPUFAIR = "gpufair"
    GPUFAIR_WITHOUT_PROXY = "gpufair-without-proxy"
    """gpufair picks the machine; kubelet and NVIDIA's preference pick the GPUs there
    (:mod:`gpufair.sim.nvidia_preference`)."""
    DEFAULT = "default"
    QUOTA = "quota"
    KUEUE_TAS = "kueue-tas"
    """Kueue quotas with topology-aware scheduling: pods packed onto one machine or the fewest."""
    GANG_BINPACK = "gang-binpack"
    """A Volcano/KAI-style gang scheduler: deserved shares, bin-packing, reclaim."""


class BaselinePods(enum.StrEnum):
    """How the topology-blind baselines' jobs are shaped into pods."""

    GPU = "gpu"
    """One pod per GPU (MPI/Horovod-style workers): kube-scheduler spreads them."""
    JOB = "job"
    """One pod per job (per machine-full for wider jobs)."""


class TopologyError(ValueError):
    """A topology name that does not resolve to a usable capture."""


def load_machine_types(folder: pathlib.Path, names: Sequence[str]) -> list[cluster.MachineType]:
    """Parse ``folder/<name>.txt`` for each name with ``gpufair.core.topology_matrix``."""
    types = []
    for name in names:
        path = folder / f"{name}.txt"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in folder.glob("*.txt")))
            raise TopologyError(f"unknown topology {name!r} (no {path}); known: {known}")
        try:
            parsed = topology_matrix.parse(path.read_text())
        except topology_matrix.TopologyParseError as error:
            raise TopologyError(f"{path}: {error}") from error
        types.append(
            cluster.MachineType(name=name, topology=topology.from_matrix(parsed), matrix=parsed)
        )
    return types


@dataclasses.dataclass(frozen=True)
class Scenario:
    trace: trace_model.Trace
    machine_types: tuple[cluster.MachineType, ...]
    nodes: int
    tenants: tuple[engine.TenantSpec, ...]
    slowdowns: slowdown.SlowdownModel
    baseline_pods: BaselinePods = BaselinePods.GPU
    placement_mode: core_policy.PlacementMode = core_policy.PlacementMode.PACK
    topology_rule: core_policy.TopologyRule = core_policy.TopologyRule.PREFERRED
    settings: engine.Settings = dataclasses.field(default_factory=engine.Settings)
    half_life: float = 7 * 24 * 3600.0
    reclaim_interval: float = 60.0
    keep_islands: bool = True
    """gpufair's placer weighs the waiting demand by size (``placement.choose_keeping``)."""
    window_end: float | None = None
    """End of the measurement window (seconds since the trace origin); ``None``: the last
    submission (the whole run when all jobs are submitted at once); ``math.inf``: the whole
    run. The window starts at ``trace.measure_from`` (after the warm-up)."""

    def build_cluster(self) -> cluster.Cluster:
        return cluster.Cluster.uniform_mix(self.machine_types, nodes=self.nodes)

    def build_policy(self, name: PolicyName) -> engine.Policy:
        blind: placers.Placer = (
            placers.SpreadGPUs() if self.baseline_pods is BaselinePods.GPU else placers.SpreadPods()
        )
        if name is PolicyName.DEFAULT:
            return baselines.Default(placer=blind)
        if name is PolicyName.QUOTA:
            return baselines.Quota(placer=blind, reclaim_interval=self.reclaim_interval)
        packed = placers.BinPack(spill=self.baseline_pods is BaselinePods.GPU)
        if name is PolicyName.KUEUE_TAS:
            return baselines.Quota(
                placer=packed, reclaim_interval=self.reclaim_interval, name=name.value
            )
        if name is PolicyName.GANG_BINPACK:
            return baselines.GangBinPack(placer=packed, reclaim_interval=self.reclaim_interval)
        aware = (
            nvidia_preference.GpusByNvidia
            if name is PolicyName.GPUFAIR_WITHOUT_PROXY
            else placers.TopologyAware
        )
        waiting = queues.WaitingJobs()
        return gpufair_policy.Gpufair(
            placer=aware(
                mode=self.placement_mode,
                rule=self.topology_rule,
                demand=waiting.sizes if self.keep_islands else None,
            ),
            waiting=waiting,
            half_life=self.half_life,
            reclaim_interval=self.reclaim_interval,
        )


@dataclasses.dataclass(frozen=True)
class Result:
    simulation: engine.Simulation
    figures: metrics.PolicyFigures


def run_policy(
    scenario: Scenario,
    name: PolicyName,
    *,
    progress: Callable[[int], None] | None = None,
) -> Result:
    sim = engine.Simulation(
        trace=scenario.trace,
        cluster=scenario.build_cluster(),
        tenants=scenario.tenants,
        slowdowns=scenario.slowdowns,
        settings=scenario.settings,
    )
    window_start = scenario.trace.measure_from
    window_end = scenario.window_end
    if window_end is None:
        window_end = scenario.trace.span if scenario.trace.span > window_start else math.inf
    recorder = metrics.ShareRecorder(
        tenants=list(sim.tenants), window_start=window_start, window_end=window_end
    )
    policy = scenario.build_policy(name)
    began = time.perf_counter()
    sim.run(policy, observers=[recorder], progress=progress)
    wall = time.perf_counter() - began
    if math.isinf(window_end):
        recorder.close(sim.now)
    figures = metrics.summarize(sim, recorder, policy=name.value, wall_seconds=wall)
    return Result(simulation=sim, figures=figures)
