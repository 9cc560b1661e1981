"""Builders for simulator inputs: hand-made traces, small clusters, scenarios.

trace(job("a", at=0, gpus=4, runs=100), job("b", at=50, gpus=8, runs=100))
scenario(trace_, nodes=1, tenants=[tenant("a", guaranteed=4)])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tests.builders import topology as topology_builders

from gpufair.core import topology
from gpufair.sim import cluster, engine, runner, slowdown
from gpufair.sim import trace as trace_model

Row = tuple[str, float, float, int]


def job(tenant: str, *, at: float, gpus: int = 1, runs: float = 100.0) -> Row:
    """A trace row: ``tenant`` submits a ``gpus``-GPU job at ``at`` that runs ``runs`` seconds."""
    return (tenant, at, runs, gpus)


def trace(*rows: Row) -> trace_model.Trace:
    return trace_model.from_rows(rows)


def tenant(
    name: str, *, weight: float = 1.0, guaranteed: int = 0, limit: int | None = None
) -> engine.TenantSpec:
    return engine.TenantSpec(name=name, weight=weight, guaranteed=guaranteed, limit=limit)


def dgx1() -> cluster.MachineType:
    return cluster.MachineType(name="dgx1", topology=topology_builders.dgx1())


def pcie8() -> cluster.MachineType:
    return cluster.MachineType(name="pcie8", topology=topology_builders.pcie8())


def machine(node: topology.NodeTopology, name: str = "custom") -> cluster.MachineType:
    return cluster.MachineType(name=name, topology=node)


def scenario(
    jobs: trace_model.Trace,
    *,
    nodes: int = 1,
    tenants: Sequence[engine.TenantSpec] = (),
    types: Sequence[cluster.MachineType] | None = None,
    slowdowns: slowdown.SlowdownModel | None = None,
    checkpoint_interval: float = 0.0,
    baseline_pods: runner.BaselinePods = runner.BaselinePods.GPU,
    record_events: bool = True,
    window_end: float | None = math.inf,
) -> runner.Scenario:
    """A scenario measured over the whole run, slowdowns off unless given, events recorded."""
    return runner.Scenario(
        trace=jobs,
        machine_types=tuple(types or (dgx1(),)),
        nodes=nodes,
        tenants=tuple(tenants),
        slowdowns=slowdowns or slowdown.uniform(1.0),
        baseline_pods=baseline_pods,
        settings=engine.Settings(
            checkpoint_interval=checkpoint_interval, record_events=record_events
        ),
        window_end=window_end,
    )
