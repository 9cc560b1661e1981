"""The mutating admission webhook for pods, as a kopf handler (decision in :mod:`.webhook`).

Imported by ``gpufair operator`` unless ``--dev``: kopf refuses to start with webhook handlers
but no webhook server. The handler is registered with ``failurePolicy: Ignore`` (when kopf
manages the configuration; ``operator/webhook.yaml`` says the same): if the operator is down,
pods are created ungated and the extender's filter still enforces limits.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import kopf

from gpufair.api import names
from gpufair.operator import metrics, reconciler, settings, store, webhook
from gpufair.state import model, scheduling

logger = logging.getLogger(__name__)


def knowledge(
    memo: kopf.Memo, *, namespace: str, ledger: webhook.Ledger | None = None, now: float = 0.0
) -> webhook.Knowledge | None:
    """What the latest pass knew (``None`` before the first one), with namespace ownership as
    the store has it now, and the GPUs accepted since that pass (``ledger``: hold its lock).

    Ownership comes from the live store, not from the last pass: a pod created right after its
    TenantQuota (before the next pass) must be gated, not waved through as a pod of no tenant.
    A namespace the store has not seen yet and no tenant lists (its labels may match a tenant's
    selector) is treated as unknown: the pod is gated and the next pass admits or releases it.
    """
    driver: reconciler.Reconciler | None = getattr(memo, "reconciler", None)
    published = driver.published if driver is not None else None
    if published is None:
        return None
    last, facts = published
    cluster: store.ClusterStore = memo.store
    owners, _ = scheduling.namespace_owners(
        model.Snapshot(
            now=last.now,
            nodes={},
            pods=(),
            tenants=dict(cluster.tenants),
            pools={},
            namespaces=dict(cluster.namespaces),
        )
    )
    if namespace not in owners and namespace not in cluster.namespaces:
        return None
    queued = dict(facts.queued)
    if ledger is not None:
        for key, gpus in ledger.pending(seen=facts.tokens, now=now).items():
            queued[key] = queued.get(key, 0) + gpus
    return webhook.Knowledge(
        owners=owners,
        pools={
            name: tuple(p.pool for p in tenant.pools) for name, tenant in cluster.tenants.items()
        },
        states=last.states,
        queued=queued,
        pool_nodes=facts.pool_nodes,
    )


_LEDGER_LOCK = threading.Lock()


def ledger_of(memo: kopf.Memo) -> webhook.Ledger:
    """The process's webhook ledger: the one the operator's startup put in its memo (made here
    on first use only where no startup ran, as in tests that call the handler directly)."""
    with _LEDGER_LOCK:
        found: webhook.Ledger | None = getattr(memo, "ledger", None)
        if found is None:
            found = memo.ledger = webhook.Ledger()
        return found


@kopf.on.mutate(
    "",
    "v1",
    "pods",
    id="gpufair-admission",
    operations=["CREATE", "UPDATE"],
    ignore_failures=True,
    side_effects=False,
)
def admit_pod(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    userinfo: kopf.UserInfo | None = None,
    old: kopf.BodyEssence | None = None,
    operation: str | None = "CREATE",
    **_: Any,
) -> None:
    username = str(userinfo.get("username") or "") if userinfo is not None else ""
    forgery = webhook.forged(
        body,
        old if operation == "UPDATE" else None,
        username=username,
        trusted_namespace=settings.current().trusted_namespace,
        trusted_users=settings.current().trusted_users,
    )
    if forgery is not None:
        logger.warning("denied %s of a pod by %s: %s", operation, username, forgery.message)
        raise kopf.AdmissionError(forgery.message, code=403)
    if operation != "CREATE":
        return
    cluster: store.ClusterStore = memo.store
    namespace = str(body.get("metadata", {}).get("namespace") or "")
    labels = cluster.namespaces[namespace].labels if namespace in cluster.namespaces else {}
    ledger = ledger_of(memo)
    token: str | None = None
    with ledger.locked:  # judge and count as one step: concurrent reviews see each other
        now = time.time()
        verdict = webhook.review(
            body,
            namespace=namespace,
            namespace_labels=labels,
            resources=cluster.gpu_resources(),
            knowledge=knowledge(memo, namespace=namespace, ledger=ledger, now=now),
        )
        if isinstance(verdict, webhook.Gate) and verdict.counted and verdict.tenant:
            pool, gpus = verdict.counted
            token = ledger.record(tenant=verdict.tenant, pool=pool, gpus=gpus, now=now)
    if isinstance(verdict, webhook.Deny):
        metrics.ADMISSION_REJECTIONS.labels(verdict.tenant, verdict.pool, verdict.reason).inc()
        raise kopf.AdmissionError(verdict.message, code=403)
    if isinstance(verdict, webhook.Gate):
        patch.spec["schedulerName"] = verdict.scheduler_name
        patch.spec["schedulingGates"] = [dict(gate) for gate in verdict.gates]
        if token is not None:
            patch.metadata.setdefault("annotations", {})[names.ADMISSION_TOKEN_ANNOTATION] = token
