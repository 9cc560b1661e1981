"""API writes that carry out a reconcile pass's decisions: status patches, gate removal,
evictions.

The reconciler (:mod:`gpufair.operator.reconciler`) calls these after it decided; each call is
one request with the official ``kubernetes`` client, run in a worker thread so kopf's event loop
never blocks. Outcomes the caller acts on are returned as values (:class:`EvictionOutcome`),
not raised: a disruption budget refusing an eviction is an ordinary answer, not an error.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Mapping
from typing import Any

import kubernetes

from gpufair.api import names


class EvictionOutcome(enum.StrEnum):
    EVICTED = "Evicted"
    """The API server accepted the eviction (the pod terminates with its grace period)."""
    GONE = "Gone"
    """The pod no longer exists (or is another pod by now): nothing to do."""
    DISRUPTION_BUDGET = "DisruptionBudget"
    """HTTP 429: a PodDisruptionBudget forbids it now; try again later."""
    ERROR = "Error"


class ClusterWriter:
    """Writes of one operator process (one API client, shared by all calls)."""

    def __init__(self, api_client: Any | None = None) -> None:
        self._client = api_client or kubernetes.client.ApiClient()
        self._core = kubernetes.client.CoreV1Api(self._client)
        self._custom = kubernetes.client.CustomObjectsApi(self._client)

    async def patch_status(self, *, plural: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge ``status`` into a cluster-scoped gpufair object's status subresource.

        Lists in a merge patch replace the stored list, so ``conditions`` and ``pools`` are
        written whole, as computed.
        """
        await asyncio.to_thread(
            self._custom.patch_cluster_custom_object_status,
            names.GROUP,
            names.VERSION,
            plural,
            name,
            {"status": dict(status)},
        )

    async def admit(
        self,
        *,
        namespace: str,
        name: str,
        admitted_at: str,
        annotations: Mapping[str, str] | None = None,
    ) -> bool:
        """Remove gpufair's scheduling gate (other gates stay) and stamp the admission time,
        with ``annotations`` in the same write (a group member's plan: the gate never comes
        off without it).

        A strategic merge patch with a ``$patch: delete`` directive on the gate (the list is
        merged by ``name``), so the write is idempotent. Returns False when the pod is gone.
        """
        notes = {**(annotations or {}), names.ADMITTED_AT_ANNOTATION: admitted_at}
        body = {
            "metadata": {"annotations": notes},
            "spec": {"schedulingGates": [{"$patch": "delete", "name": names.ADMISSION_GATE}]},
        }
        try:
            await asyncio.to_thread(self._core.patch_namespaced_pod, name, namespace, body)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    async def nudge(self, *, namespace: str, name: str, at: str) -> None:
        """Update the pod (``gpufair.dev/retry-at``) so that kube-scheduler, which retries an
        unschedulable pod when the pod changes, tries it again. A pod gone meanwhile is fine."""
        body = {"metadata": {"annotations": {names.RETRY_ANNOTATION: at}}}
        try:
            await asyncio.to_thread(self._core.patch_namespaced_pod, name, namespace, body)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    async def label_namespace(self, *, namespace: str, tenant: str | None) -> None:
        """Set (or, for ``None``, remove) the namespace's ``gpufair.dev/tenant`` label."""
        body = {"metadata": {"labels": {names.TENANT_LABEL: tenant}}}
        try:
            await asyncio.to_thread(self._core.patch_namespace, namespace, body)
        except kubernetes.client.ApiException as error:
            if error.status != 404:  # a namespace deleted meanwhile needs no label
                raise

    async def evict(
        self, *, namespace: str, name: str, uid: str, dry_run: bool = False
    ) -> EvictionOutcome:
        """Create a ``policy/v1`` Eviction for the pod (honours grace periods and PDBs).

        The ``uid`` precondition makes sure a pod recreated under the same name is not hit.
        With ``dry_run`` (``dryRun=All``) the API server answers what the eviction would,
        disruption budgets included, and evicts nothing.
        """
        body = kubernetes.client.V1Eviction(
            metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace),
            delete_options=kubernetes.client.V1DeleteOptions(
                preconditions=kubernetes.client.V1Preconditions(uid=uid) if uid else None
            ),
        )
        try:
            call = functools.partial(
                self._core.create_namespaced_pod_eviction, name, namespace, body
            )
            await asyncio.to_thread(functools.partial(call, dry_run="All") if dry_run else call)
        except kubernetes.client.ApiException as error:
            if error.status == 429:
                return EvictionOutcome.DISRUPTION_BUDGET
            if error.status in (404, 409):
                return EvictionOutcome.GONE
            return EvictionOutcome.ERROR
        return EvictionOutcome.EVICTED
