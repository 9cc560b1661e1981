"""Every Prometheus metric the operator exports, declared in one place (ARCHITECTURE.md §6).

The metrics live in their own registry, served on ``/metrics`` by ``gpufair operator`` (port
``--metrics-port``). Gauges are rewritten from each reconcile pass (tenants and pools that
disappear are dropped with them); counters and the histogram only grow within a process.
"""

from __future__ import annotations

from typing import Final

import prometheus_client

REGISTRY: Final = prometheus_client.CollectorRegistry(auto_describe=True)

_TP: Final = ("tenant", "pool")

# -- per tenant and pool ---------------------------------------------------------------------
TENANT_ALLOCATED: Final = prometheus_client.Gauge(
    "gpufair_tenant_allocated_gpus",
    "GPUs held by the tenant's bound pods in the pool.",
    _TP,
    registry=REGISTRY,
)
TENANT_GUARANTEED: Final = prometheus_client.Gauge(
    "gpufair_tenant_guaranteed_gpus",
    "GPUs guaranteed to the tenant in the pool (spec).",
    _TP,
    registry=REGISTRY,
)
TENANT_LIMIT: Final = prometheus_client.Gauge(
    "gpufair_tenant_limit_gpus",
    "Ceiling of the tenant in the pool, borrowing included (pool capacity when unset).",
    _TP,
    registry=REGISTRY,
)
TENANT_FAIR_SHARE: Final = prometheus_client.Gauge(
    "gpufair_tenant_fair_share_gpus",
    "Instantaneous weighted max-min fair share of the tenant in the pool (real GPUs).",
    _TP,
    registry=REGISTRY,
)
TENANT_BORROWED: Final = prometheus_client.Gauge(
    "gpufair_tenant_borrowed_gpus",
    "GPUs the tenant holds above its guarantee in the pool.",
    _TP,
    registry=REGISTRY,
)
TENANT_WAITING: Final = prometheus_client.Gauge(
    "gpufair_tenant_waiting_pods",
    "Pods of the tenant waiting behind the admission gate for the pool.",
    _TP,
    registry=REGISTRY,
)
TENANT_DECAYED_USAGE: Final = prometheus_client.Gauge(
    "gpufair_tenant_decayed_gpu_seconds",
    "Decayed (half-life) GPU-seconds of the tenant in the pool; orders admission.",
    _TP,
    registry=REGISTRY,
)
TENANT_BUDGET_USED: Final = prometheus_client.Gauge(
    "gpufair_tenant_budget_used_gpu_hours",
    "GPU-hours the tenant used in the current budget period, all pools together.",
    ("tenant",),
    registry=REGISTRY,
)
TENANT_BUDGET: Final = prometheus_client.Gauge(
    "gpufair_tenant_budget_gpu_hours",
    "GPU-hour budget of the tenant per period (absent when the tenant has none).",
    ("tenant",),
    registry=REGISTRY,
)
GPU_SECONDS: Final = prometheus_client.Counter(
    "gpufair_tenant_gpu_seconds",
    "GPU-seconds metered for the tenant in the pool by this process (the persisted total "
    "per budget period is in the TenantQuota status).",
    _TP,
    registry=REGISTRY,
)
QUEUE_WAIT: Final = prometheus_client.Histogram(
    "gpufair_queue_wait_seconds",
    "Time a pod waited behind the admission gate before the operator admitted it.",
    _TP,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600),
    registry=REGISTRY,
)
ADMISSIONS: Final = prometheus_client.Counter(
    "gpufair_admissions",
    "Pods the operator admitted by removing their scheduling gate.",
    _TP,
    registry=REGISTRY,
)
PREEMPTIONS: Final = prometheus_client.Counter(
    "gpufair_preemptions",
    "Pods evicted by the operator, by the victim's tenant and pool and the reason.",
    ("tenant", "pool", "reason"),
    registry=REGISTRY,
)
EVICTIONS_REFUSED: Final = prometheus_client.Counter(
    "gpufair_evictions_refused",
    "Evictions the API server refused (reason DisruptionBudget for HTTP 429, or Error).",
    ("tenant", "pool", "reason"),
    registry=REGISTRY,
)
ADMISSION_REJECTIONS: Final = prometheus_client.Counter(
    "gpufair_admission_rejections",
    "Pods the admission webhook denied, by reason (AtLimit, BudgetExhausted).",
    ("tenant", "pool", "reason"),
    registry=REGISTRY,
)

# -- per pool --------------------------------------------------------------------------------
POOL_CAPACITY: Final = prometheus_client.Gauge(
    "gpufair_pool_capacity_gpus",
    "Allocatable GPUs of the pool's schedulable nodes.",
    ("pool",),
    registry=REGISTRY,
)
POOL_FREE: Final = prometheus_client.Gauge(
    "gpufair_pool_free_gpus",
    "GPUs of the pool's schedulable nodes not held by a bound pod.",
    ("pool",),
    registry=REGISTRY,
)
POOL_LARGEST_FREE_ISLAND: Final = prometheus_client.Gauge(
    "gpufair_pool_largest_free_island_gpus",
    "Largest set of free GPUs on one NVLink island of one node in the pool.",
    ("pool",),
    registry=REGISTRY,
)
POOL_FRAGMENTATION: Final = prometheus_client.Gauge(
    "gpufair_pool_fragmentation_ratio",
    "How scattered the pool's free GPUs are: 0 all in whole islands, 1 all stranded.",
    ("pool",),
    registry=REGISTRY,
)
POOL_NODES: Final = prometheus_client.Gauge(
    "gpufair_pool_nodes",
    "Nodes matching the pool's selector, by whether they are schedulable.",
    ("pool", "schedulable"),
    registry=REGISTRY,
)

# -- the operator itself ---------------------------------------------------------------------
RECONCILE_DURATION: Final = prometheus_client.Histogram(
    "gpufair_operator_reconcile_duration_seconds",
    "Duration of one reconcile pass (snapshot, plan, apply).",
    registry=REGISTRY,
)
RECONCILE_ERRORS: Final = prometheus_client.Counter(
    "gpufair_operator_reconcile_errors",
    "Reconcile passes or API writes that failed, by stage.",
    ("stage",),
    registry=REGISTRY,
)

PER_TENANT_POOL_GAUGES: Final = (
    TENANT_ALLOCATED,
    TENANT_GUARANTEED,
    TENANT_LIMIT,
    TENANT_FAIR_SHARE,
    TENANT_BORROWED,
    TENANT_WAITING,
    TENANT_DECAYED_USAGE,
)
PER_POOL_GAUGES: Final = (
    POOL_CAPACITY,
    POOL_FREE,
    POOL_LARGEST_FREE_ISLAND,
    POOL_FRAGMENTATION,
    POOL_NODES,
)


def serve(*, port: int, host: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` of :data:`REGISTRY` from a background thread."""
    prometheus_client.start_http_server(port, addr=host, registry=REGISTRY)
