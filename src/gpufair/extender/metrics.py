"""Every Prometheus metric the extender exports, declared in one place (ARCHITECTURE.md §6).

Each app gets its own registry (:class:`Metrics`), so several apps in one test process do not
collide; ``/metrics`` serves it. Per-pool capacity and fragmentation come from the operator;
the extender reports what only it sees: verb latency and errors, filter verdicts, the topology
level of every GPU set it binds, and the state of its cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import prometheus_client
import prometheus_client.core
import prometheus_client.registry

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Seconds; kube-scheduler's default extender timeout is 5 s, the budget per pod ~5.5 ms."""


@dataclasses.dataclass(frozen=True)
class FilterCounts:
    """The three children of ``gpufair_extender_filter_nodes``, looked up once (filter counts
    into them on every call)."""

    passed: prometheus_client.Counter
    failed: prometheus_client.Counter
    unresolvable: prometheus_client.Counter


class Metrics:
    """The extender's metrics in one registry."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self.request_duration = prometheus_client.Histogram(
            "gpufair_extender_request_duration_seconds",
            "Time to answer one kube-scheduler call, by verb.",
            ("verb",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = prometheus_client.Counter(
            "gpufair_extender_errors",
            "Calls answered with an Error (HTTP 200) or rejected as malformed (HTTP 400).",
            ("verb", "kind"),
            registry=self.registry,
        )
        self.node_verdicts = prometheus_client.Counter(
            "gpufair_extender_filter_nodes",
            "Nodes judged by filter: passed, failed (preemption may help) or unresolvable.",
            ("result",),
            registry=self.registry,
        )
        self.placements = prometheus_client.Counter(
            "gpufair_extender_placements",
            "GPU sets bound, by pool and worst link inside the set (NVLINK best, SYS worst).",
            ("pool", "level"),
            registry=self.registry,
        )
        self.filtered = FilterCounts(
            passed=self.node_verdicts.labels("passed"),
            failed=self.node_verdicts.labels("failed"),
            unresolvable=self.node_verdicts.labels("unresolvable"),
        )
        self.group_plan = prometheus_client.Counter(
            "gpufair_extender_group_plan",
            "Pod group members and their plan's node (gpufair.dev/group-plan): filter answers"
            " that dropped the plan (fell_back: node gone or full), binds on the planned node"
            " (bound_on_plan) and elsewhere (bound_off_plan).",
            ("outcome",),
            registry=self.registry,
        )
        self.victims_removed = prometheus_client.Counter(
            "gpufair_extender_preempt_victims_removed",
            "Victims proposed by kube-scheduler that the fair-share policy protected.",
            registry=self.registry,
        )


class CacheCollector(prometheus_client.registry.Collector):
    """Gauges read from the cache at scrape time."""

    def __init__(
        self,
        facts: Callable[[], dict[str, float]],
        silence: Callable[[], Mapping[str, float]] = dict,
    ) -> None:
        self._facts = facts
        self._silence = silence

    def collect(self) -> list[prometheus_client.core.GaugeMetricFamily]:
        facts = self._facts()
        silent = prometheus_client.core.GaugeMetricFamily(
            "gpufair_extender_cache_silence_seconds",
            "Seconds since each watched kind last heard from the API server (event, bookmark,"
            " list); past the staleness bound the extender is not ready.",
            labels=("kind",),
        )
        for kind, seconds in sorted(self._silence().items()):
            silent.add_metric((kind,), seconds)
        return [silent, *self._gauges(facts)]

    @staticmethod
    def _gauges(facts: dict[str, float]) -> list[prometheus_client.core.GaugeMetricFamily]:
        return [
            prometheus_client.core.GaugeMetricFamily(
                f"gpufair_extender_cache_{name}", help_text, value=facts.get(name, 0.0)
            )
            for name, help_text in (
                ("synced", "1 once every watched kind has been listed."),
                ("stale", "1 while some kind has heard nothing for longer than the bound."),
                ("nodes", "Nodes in the cache."),
                ("gpu_pods", "GPU pods in the cache (bound or pending)."),
                ("assumed", "Binds whose GPUs are assumed, not yet confirmed by the watch."),
                ("problems", "Objects the cache ignores as invalid (see the log)."),
            )
        ]
