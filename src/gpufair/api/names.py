"""Names gpufair writes on or reads from Kubernetes objects: one place for every key.

Label and annotation keys, the scheduling gate, the scheduler name and the CRD coordinates are
part of the user-facing contract; every component imports them from here.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "gpufair.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

TENANT_QUOTA_KIND: Final = "TenantQuota"
TENANT_QUOTA_PLURAL: Final = "tenantquotas"
GPU_POOL_KIND: Final = "GPUPool"
GPU_POOL_PLURAL: Final = "gpupools"

DEFAULT_GPU_RESOURCE: Final = "nvidia.com/gpu"
SCHEDULER_NAME: Final = "gpufair-scheduler"
ADMISSION_GATE: Final = f"{GROUP}/admission"

GPUS_ANNOTATION: Final = f"{GROUP}/gpus"
"""Comma-separated GPU indices bound to the pod, written by the extender's bind (``"0,1,2,3"``)."""
GPUS_CONFIRMED_ANNOTATION: Final = f"{GROUP}/gpus-confirmed"
"""GPU indices kubelet really allocated to the pod, written by the node agent from kubelet's
PodResources API; trusted over :data:`GPUS_ANNOTATION` wherever both are present."""
GPU_UUIDS_ANNOTATION: Final = f"{GROUP}/gpu-uuids"
"""Comma-separated device IDs (GPU UUIDs) kubelet allocated, in the order of the indices."""
NUMA_ANNOTATION: Final = f"{GROUP}/numa"
"""NUMA node of the bound GPUs (for CPU and memory alignment); absent when mixed or unknown."""
POOL_ANNOTATION: Final = f"{GROUP}/pool"
"""The GPUPool the pod was placed in."""
ADMITTED_AT_ANNOTATION: Final = f"{GROUP}/admitted-at"
"""RFC 3339 time the operator removed the admission gate (queue wait = this - creation)."""
CHECKPOINT_ANNOTATION: Final = f"{GROUP}/last-checkpoint"
"""RFC 3339 time of the pod's newest checkpoint; preemption prefers victims that lose least."""
ADMISSION_TOKEN_ANNOTATION: Final = f"{GROUP}/admission-token"
"""Written by the admission webhook on pods of ``onLimit: Reject`` tenants it accepted: the next
reconcile pass that sees the pod takes over counting it from the webhook's ledger."""
RETRY_ANNOTATION: Final = f"{GROUP}/retry-at"
"""RFC 3339 time the operator last updated a pod the extender had rejected, because the cause
(its tenant's limit or budget, or the pool's free GPUs) changed for the better: kube-scheduler
retries an unschedulable pod on an update of the pod, not on a TenantQuota change."""
GROUP_PLAN_ANNOTATION: Final = f"{GROUP}/group-plan"
"""The node a pod group member is planned on, written by the operator in the patch that lifts
the member's gate (the pass placed the whole group, ``gpufair.core.gang.fit``); the extender
places the member there while that node can take it (docs/pod-groups.md)."""
GPUFAIR_ONLY_ANNOTATIONS: Final = (
    GPUS_ANNOTATION,
    NUMA_ANNOTATION,
    POOL_ANNOTATION,
    ADMITTED_AT_ANNOTATION,
    GROUP_PLAN_ANNOTATION,
)
"""Pod annotations only gpufair's own service accounts may set, change or remove: the cache
trusts them as facts about the pod's GPUs, so a tenant that could write them could take GPUs
twice or move its usage to another pool, or steer a group member's plan (the webhook denies
it)."""
TENANT_LABEL: Final = f"{GROUP}/tenant"
"""Namespace label the operator keeps: the tenant that owns the namespace (by the TenantQuotas,
never by the label itself). The ValidatingAdmissionPolicy matches tenant namespaces by it."""
OPT_OUT_LABEL: Final = f"{GROUP}/admission"
"""Namespace label; the value ``disabled`` opts the namespace out of the admission webhook."""
POD_GROUP_KEY: Final = f"{GROUP}/pod-group"
"""Pod annotation or label: the name of the group (one job) the pod belongs to; the group is
admitted all or nothing, within the pod's namespace (docs/pod-groups.md)."""
GROUP_SIZE_KEY: Final = f"{GROUP}/group-size"
"""Pod annotation or label: how many pods the :data:`POD_GROUP_KEY` group has (a positive
integer); every member says the same. Also overrides the size a job controller implies."""
NVLINK_DOMAIN_LABEL: Final = "nvidia.com/gpu.clique"
"""Node label (NVIDIA GPU Feature Discovery) naming the multi-node NVLink partition (clique) the
node's GPUs belong to; nodes with the same value reach each other over NVLink."""
