"""The operator's in-memory store of the cluster, fed by kopf watch events.

The kopf handlers (:mod:`.handlers`) call ``apply_*`` for every event of pods, nodes,
namespaces, TenantQuotas, GPUPools and the owners whose sizes group their pods (Jobs, and
JobSets, Kubeflow jobs and upstream PodGroups/Workloads where served, :mod:`.owners`); the
reconciler takes an immutable :class:`~.snapshot.Snapshot` per pass. The store also
remembers what this process last wrote (usage records and conditions), because its own status
writes reach it through the watch only later: the newer of persisted and written wins, so a
pass never meters from a stale ``as_of``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from gpufair.api import names
from gpufair.core import usage
from gpufair.operator import intents, objects, owners
from gpufair.state import groups, model

logger = logging.getLogger(__name__)

Body = Mapping[str, Any]


class ClusterStore:
    """Current objects by key, plus the pods that left since the last metered pass."""

    def __init__(self) -> None:
        self.nodes: dict[str, model.Node] = {}
        self.pods: dict[str, model.GpuPod] = {}
        self.tenants: dict[str, model.Tenant] = {}
        self.pools: dict[str, model.Pool] = {}
        self.namespaces: dict[str, model.Namespace] = {}
        self.departed: dict[str, model.GpuPod] = {}
        self.others: dict[str, tuple[str, int, int]] = {}
        """Pods without GPUs bound to a node: (node, CPU millicores, memory bytes) they request,
        by uid; what reclaim subtracts from a node's CPU and memory besides the GPU pods."""
        self.owner_sizes: dict[str, owners.OwnerEntries] = {f: {} for f in owners.FIELDS}
        """Group sizes from the owner objects seen, by ``groups.OwnerSizes`` field: what sizes
        the groups their pods do not state (indexed Jobs, JobSets, Kubeflow jobs, ...)."""
        self._owned: dict[tuple[str, str, str], tuple[Hashable, ...]] = {}
        """The keys each owner object (resource, namespace, name) put in ``owner_sizes``."""
        self.unsized: set[str] = set()
        """Pods (uid) of a controller's group whose size the pod does not state."""
        self.blocked: dict[str, float] = {}
        """Pods (uid) whose eviction a disruption budget refused, until when to leave them."""
        self.written_usage: dict[tuple[str, str], usage.Usage] = {}
        self.written_conditions: dict[tuple[str, str], tuple[model.Condition, ...]] = {}
        self.changed = asyncio.Event()
        self.synced = False
        """Whether the initial listing of every watched kind is in (see :meth:`mark_synced`)."""

    # -- events -------------------------------------------------------------------------------

    def gpu_resources(self) -> tuple[str, ...]:
        """Resource names that make a pod a GPU pod: every pool's, and the default."""
        found = {pool.resource_name for pool in self.pools.values()}
        return (names.DEFAULT_GPU_RESOURCE, *sorted(found - {names.DEFAULT_GPU_RESOURCE}))

    def apply_pod(self, body: Body, *, deleted: bool, now: float) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        previous = self.pods.get(uid)
        if deleted or not objects.holds_a_node(body):
            self.others.pop(uid, None)
        if deleted:
            gone = self.pods.pop(uid, None)
            if gone is not None and gone.started_at is not None and gone.finished_at is None:
                self.departed[uid] = dataclasses.replace(
                    gone, state=model.PodState.FINISHED, finished_at=now
                )
            self.blocked.pop(uid, None)
        else:
            pod = objects.gpu_pod(
                body, resources=self.gpu_resources(), observed_at=now, previous=previous
            )
            if pod is None:
                self.pods.pop(uid, None)
                if objects.holds_a_node(body):
                    self.others[uid] = objects.node_requests(body)
                return
            self.pods[uid] = pod
        current = None if deleted else self.pods.get(uid)
        if current is not None and current.group_unsized is not None:
            self.unsized.add(uid)
        else:
            self.unsized.discard(uid)
        self.changed.set()

    def apply_job(self, body: Body, *, deleted: bool) -> None:
        """A Job event: the size of its pods' group (only indexed Jobs form groups)."""
        self.apply_owner(owners.JOB, body, deleted=deleted)

    def apply_owner(self, kind: owners.OwnerKind, body: Body, *, deleted: bool) -> None:
        """An owner object's event: the sizes of its pods' groups. An object whose sizes cannot
        be read gives none (its pods are admitted one by one, each told so) and is logged."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        entries: owners.OwnerEntries = {}
        if not deleted:
            try:
                entries = kind.entries(body)
            except groups.GroupError as error:
                logger.warning(
                    "%s %s/%s: %s; its pods are admitted one by one",
                    kind.kind,
                    namespace,
                    name,
                    error,
                )
        sizes = self.owner_sizes[kind.field]
        ident = (kind.resource, namespace, name)
        before = {key: sizes[key] for key in self._owned.pop(ident, ()) if key in sizes}
        for key in before:
            del sizes[key]
        sizes.update(entries)
        if entries:
            self._owned[ident] = tuple(entries)
        if entries != before:
            self.changed.set()

    def apply_node(self, body: Body, *, deleted: bool) -> None:
        name = str((body.get("metadata") or {}).get("name", ""))
        if deleted:
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = objects.node(body)
        self.changed.set()

    def apply_namespace(self, body: Body, *, deleted: bool) -> None:
        namespace = objects.namespace(body)
        if deleted:
            self.namespaces.pop(namespace.name, None)
        else:
            self.namespaces[namespace.name] = namespace
        self.changed.set()

    def apply_tenant(self, body: Body, *, deleted: bool) -> None:
        """A TenantQuota event; its own status writes do not wake the reconciler."""
        tenant = objects.tenant(body)
        previous = self.tenants.get(tenant.name)
        if deleted:
            self.tenants.pop(tenant.name, None)
            self._forget(tenant.name)
            self.changed.set()
            return
        if previous is not None and previous.created_at != tenant.created_at:
            self._forget(tenant.name)
        self.tenants[tenant.name] = tenant
        if previous is None or previous.generation != tenant.generation:
            self.changed.set()

    def apply_pool(self, body: Body, *, deleted: bool) -> None:
        pool = objects.gpu_pool(body)
        previous = self.pools.get(pool.name)
        if deleted:
            self.pools.pop(pool.name, None)
            self.written_conditions.pop(("pool", pool.name), None)
            self.changed.set()
            return
        self.pools[pool.name] = pool
        if previous is None or previous.generation != pool.generation:
            self.changed.set()

    def _forget(self, tenant: str) -> None:
        for key in [key for key in self.written_usage if key[0] == tenant]:
            del self.written_usage[key]
        self.written_conditions.pop(("tenant", tenant), None)

    def mark_synced(self) -> None:
        """The initial listings of pods, nodes, namespaces, quotas, pools and owners are in.

        :mod:`.handlers` calls it when the reconcile loop starts: kopf runs that daemon only
        after every indexed kind was listed and each listed object went through the index
        handlers, which fill the store. Passes before it release no pod (``Snapshot.synced``).
        """
        self.synced = True

    # -- passes -------------------------------------------------------------------------------

    def take_snapshot(self, *, now: float) -> model.Snapshot:
        """An immutable picture for one pass (the store may change while it is planned)."""
        for uid in [uid for uid, until in self.blocked.items() if until <= now]:
            del self.blocked[uid]
        return model.Snapshot(
            now=now,
            nodes=dict(self.nodes),
            pods=(*self._sized_pods(), *self.departed.values()),
            tenants={name: self._current(tenant) for name, tenant in self.tenants.items()},
            pools={
                name: dataclasses.replace(
                    pool,
                    conditions=self.written_conditions.get(("pool", name), pool.conditions),
                )
                for name, pool in self.pools.items()
            },
            namespaces=dict(self.namespaces),
            blocked=frozenset(self.blocked),
            synced=self.synced,
            other_requests=self._other_requests(),
        )

    def _sized_pods(self) -> list[model.GpuPod]:
        """The pods, each controller's group sized from the owners seen (an indexed Job of one
        pod is no group); a group whose owner is unknown stays unsized: its pods run alone."""
        if not self.unsized:
            return list(self.pods.values())
        pods = dict(self.pods)
        sizes = groups.OwnerSizes(**self.owner_sizes)
        for uid in self.unsized & pods.keys():
            pod = pods[uid]
            key = pod.group_unsized
            size = groups.owner_size(key, sizes) if key is not None else None
            if key is None or size is None:
                continue
            pods[uid] = dataclasses.replace(
                pod,
                group=groups.Membership(key=key, size=size) if size > 1 else None,
                group_unsized=None,
            )
        return list(pods.values())

    def _other_requests(self) -> dict[str, tuple[int, int]]:
        totals: dict[str, tuple[int, int]] = {}
        for node, cpu, memory in self.others.values():
            before = totals.get(node, (0, 0))
            totals[node] = (before[0] + cpu, before[1] + memory)
        return totals

    def _current(self, tenant: model.Tenant) -> model.Tenant:
        records = dict(tenant.usage)
        for (name, pool), written in self.written_usage.items():
            if name != tenant.name:
                continue
            persisted = records.get(pool)
            if persisted is None or (persisted.as_of or 0.0) < (written.as_of or 0.0):
                records[pool] = written
        return dataclasses.replace(
            tenant,
            usage=records,
            conditions=self.written_conditions.get(("tenant", tenant.name), tenant.conditions),
        )

    def record_tenant(self, status: intents.TenantStatus) -> None:
        """Remember a status this process wrote (call after the write succeeded)."""
        for entry in status.pools:
            self.written_usage[(status.name, entry.pool)] = entry.usage
        self.written_conditions[("tenant", status.name)] = status.conditions

    def record_pool(self, status: intents.PoolStatus) -> None:
        self.written_conditions[("pool", status.name)] = status.conditions

    def metered(self, *, up_to: float, pods: Iterable[model.GpuPod] = ()) -> None:
        """Drop departed pods whose time is metered (the statuses up to ``up_to`` are written)."""
        del pods
        for uid in [
            uid
            for uid, pod in self.departed.items()
            if pod.finished_at is not None and pod.finished_at <= up_to
        ]:
            del self.departed[uid]

    def block(self, uid: str, *, until: float) -> None:
        self.blocked[uid] = until
