"""The mutating admission webhook for pods, as a kopf handler (decision in :mod:`.webhook`).

Imported by ``gpufair operator`` unless ``--dev``: kopf refuses to start with webhook handlers
but no webhook server. The handler is registered with ``failurePolicy: Ignore`` (when kopf
manages the configuration; ``operator/webhook.yaml`` says the same): if the operator is down,
pods are created ungated and the extender's filter still enforces limits.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from gpufair.operator import metrics, reconciler, view, webhook

logger = logging.getLogger(__name__)


def knowledge(memo: kopf.Memo) -> webhook.Knowledge | None:
    """What the latest pass knew (``None`` before the first one)."""
    driver: reconciler.Reconciler | None = getattr(memo, "reconciler", None)
    last = driver.last if driver is not None else None
    if last is None:
        return None
    cluster: view.ClusterView = memo.view
    return webhook.Knowledge(
        owners=last.owners,
        pools={
            name: tuple(p.pool for p in tenant.pools) for name, tenant in cluster.tenants.items()
        },
        states=last.states,
    )


@kopf.on.mutate(
    "",
    "v1",
    "pods",
    id="gpufair-admission",
    operations=["CREATE"],
    ignore_failures=True,
    side_effects=False,
)
def admit_pod(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    cluster: view.ClusterView = memo.view
    namespace = str(body.get("metadata", {}).get("namespace") or "")
    labels = cluster.namespaces[namespace].labels if namespace in cluster.namespaces else {}
    verdict = webhook.review(
        body,
        namespace=namespace,
        namespace_labels=labels,
        resources=cluster.gpu_resources(),
        knowledge=knowledge(memo),
    )
    if isinstance(verdict, webhook.Deny):
        metrics.ADMISSION_REJECTIONS.labels(verdict.tenant, verdict.pool, verdict.reason).inc()
        raise kopf.AdmissionError(verdict.message, code=403)
    if isinstance(verdict, webhook.Gate):
        patch.spec["schedulerName"] = verdict.scheduler_name
        patch.spec["schedulingGates"] = [dict(gate) for gate in verdict.gates]
