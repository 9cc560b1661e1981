"""The extender's picture of the cluster: nodes, GPU pods, namespaces, TenantQuotas, GPUPools.

Watch threads (:mod:`gpufair.state.watch`) feed events in with :meth:`ClusterCache.upsert`,
:meth:`~ClusterCache.delete` and :meth:`~ClusterCache.replace` (a re-list); verbs read an
immutable :class:`Snapshot`. Nothing is stored outside the API server: free GPUs are derived
from the pods bound to each node and their ``gpufair.dev/gpus`` annotations, so a restarted
extender rebuilds the same picture from one list of each kind.

Bind decisions that the API server has not confirmed yet are *assumed* (:meth:`assume`): their
GPUs count as taken until the pod shows up bound in the watch, the pod is gone (deleted, or
missing from a re-list), or bind itself forgets them because its write failed. Never on a
timer: a watch may stay silent for minutes (its read timeout is 330 s), and forgetting a
successful bind before the watch delivers it would hand its GPUs out twice. Binds of one tenant
decide and assume under the tenant's lock (:meth:`tenant_lock`), so the limit a bind checks
already counts every other bind of that tenant.

The cache knows how current it is: every list, watch event and bookmark is *heard*
(:meth:`heard`); once some kind has heard nothing for longer than the staleness bound, the
cache is not ready (:meth:`not_ready`) and snapshots say so, until the watch hears again.

Indexes kept up to date on every event, so a verb never rescans the cluster: per node its
free GPU set (:class:`~gpufair.state.views.NodeView`), per pool its member nodes, per
(namespace, pool) the GPUs allocated. A snapshot copies only what changed since the last one.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import logging
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from gpufair.api import names
from gpufair.core import allocation, topology
from gpufair.core import labels as topology_labels
from gpufair.k8s import nodes, pods, scheduling
from gpufair.state import rules, views

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]


class Kind(enum.StrEnum):
    """The kinds the cache watches."""

    NODE = "Node"
    POD = "Pod"
    NAMESPACE = "Namespace"
    TENANT_QUOTA = "TenantQuota"
    GPU_POOL = "GPUPool"


class AssumeConflictError(RuntimeError):
    """The GPUs to assume are no longer free (another bind or a watch event took them)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Assumption:
    """GPUs given to a pod by bind, not yet seen bound in the watch."""

    uid: str
    namespace: str
    name: str
    node: str
    gpus: frozenset[int]
    resource: str


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """An immutable picture of the cluster for one decision."""

    synced: bool
    """Every kind has been listed and none is stale: verbs may answer from this picture."""
    nodes: Mapping[str, views.NodeView]
    pools: Mapping[str, views.PoolView]
    pool_nodes: Mapping[str, tuple[str, ...]]
    tenants: Mapping[str, views.TenantView]
    namespace_tenants: Mapping[str, str | None]
    usage: Mapping[tuple[str, str], int]
    """(tenant, pool) -> GPUs held by bound and assumed pods."""
    assumed: Mapping[str, Assumption]
    not_ready: str | None = None
    """Why verbs must not answer from this picture (not synced yet, or stale), or ``None``."""
    unbound: Mapping[tuple[str, str], tuple[views.PodView, ...]] = dataclasses.field(
        default_factory=dict
    )
    """(tenant, pool) -> the tenant's GPU pods not bound yet (gated or pending), in the pool
    :func:`gpufair.state.rules.waiting_pool` gives them: the demand fair shares count."""
    shape_of: Mapping[str, int] = dataclasses.field(default_factory=lambda: ShapeIndex())
    """Node name -> shape id; a name the cache does not know maps to :data:`UNKNOWN_SHAPE`."""
    shapes: Mapping[int, views.NodeView] = dataclasses.field(default_factory=dict)
    """Shape id -> a node of that shape (every decision about a node depends on its shape)."""

    def tenant_of(self, namespace: str) -> str | None:
        if namespace in self.namespace_tenants:
            return self.namespace_tenants[namespace]
        return rules.namespace_owner(
            namespace,
            labels=None,
            tenants=(tenant.namespaces for tenant in self.tenants.values()),
        )

    def used(self, tenant: str, pool: str) -> int:
        return self.usage.get((tenant, pool), 0)

    @functools.cached_property
    def _demand(self) -> dict[str, Mapping[int, int]]:
        sizes: dict[str, list[int]] = {}
        for (_, pool), waiting in self.unbound.items():
            view = self.pools.get(pool)
            if view is None:
                continue
            found = sizes.setdefault(pool, [])
            found.extend(pod.request(view.resource) for pod in waiting if not pod.deleting)
        return {pool: rules.demand_by_size(found) for pool, found in sizes.items()}

    def demand(self, pool: str) -> Mapping[int, int]:
        """Pods waiting in ``pool`` (gated or pending, not being deleted) by GPU count
        (:func:`gpufair.state.rules.demand_by_size`); computed once per snapshot."""
        return self._demand.get(pool, {})


NOT_SYNCED = "gpufair extender cache has not synced with the API server yet"


def stale_reason(bound: float | None) -> str:
    """The answer while the cache is stale (the same text every time: kube-scheduler groups
    reasons by text)."""
    return (
        f"gpufair extender cache is stale: nothing heard from the API server for over {bound:g} s"
        " (watch broken or API server unreachable)"
    )


UNKNOWN_SHAPE = -2
"""The shape id of a node name the cache does not know."""


class ShapeIndex(dict[str, int]):
    """Node name -> shape id, answering :data:`UNKNOWN_SHAPE` for unknown names, so a verb can
    look up thousands of names in one C-level ``operator.itemgetter`` call."""

    def __missing__(self, key: str) -> int:
        return UNKNOWN_SHAPE

    def compacted(self) -> ShapeIndex:
        """The same index with its names copied into fresh strings, allocated one after the
        other in name order. A verb looks up thousands of freshly decoded names per request,
        and each lookup compares with the stored name: stored names scattered over the heap
        (each beside its own node object) cost a cache miss apiece, about 4x the lookups'
        time on a busy machine (0.6 against 0.15 ms for 3,350 names at 5,000 nodes)."""
        return ShapeIndex({_fresh_copy(name): shape_id for name, shape_id in sorted(self.items())})


def _fresh_copy(text: str) -> str:
    """A new string equal to ``text`` (``str`` operations hand back ``text`` itself)."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


_K = TypeVar("_K")
_V = TypeVar("_V")


def _frozen(mapping: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return types.MappingProxyType(dict(mapping))


class ClusterCache:
    """Thread-safe store fed by watch events; :meth:`snapshot` is cheap when nothing changed."""

    def __init__(
        self,
        *,
        staleness_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        required_kinds: Iterable[Kind] = tuple(Kind),
    ) -> None:
        """``staleness_seconds``: how long a kind may hear nothing from the API server before
        the cache stops being ready (``None``: never stale, for caches fed by hand)."""
        self._clock = clock
        self._staleness = staleness_seconds
        self._required = frozenset(required_kinds)
        self._lock = threading.RLock()
        self._node_locks: dict[str, threading.Lock] = {}
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._synced: set[Kind] = set()
        self._heard: dict[Kind, float] = {}
        self._stale = False

        self._node_objs: dict[str, Obj] = {}
        self._parsed: dict[str, _ParsedNode] = {}
        """Per node, what its object says (parsed again only when the object or the pool's
        resource changes; a pod event rebuilds the node's view but does not change it)."""
        self._pools: dict[str, views.PoolView] = {}
        self._tenants: dict[str, views.TenantView] = {}
        self._ns_labels: dict[str, Mapping[str, str]] = {}
        self._pods: dict[str, views.PodView] = {}
        self._unbound: set[str] = set()
        """Pods (uid) not bound to a node yet."""
        self._assumed: dict[str, Assumption] = {}

        self._pods_on_node: dict[str, set[str]] = collections.defaultdict(set)
        self._assumed_on_node: dict[str, set[str]] = collections.defaultdict(set)
        self._node_pool: dict[str, str | None] = {}
        self._views: dict[str, views.NodeView] = {}
        self._topology_ids: dict[topology.NodeTopology, int] = {}
        self._topologies: list[topology.NodeTopology] = []
        self._shape_ids: dict[tuple[object, ...], int] = {}
        self._shape_of = ShapeIndex()
        self._names_added = 0
        """Nodes added since ``_shape_of`` was last compacted (:meth:`ShapeIndex.compacted`;
        again once they are a sixteenth of all, so adding nodes costs O(1) amortised)."""
        self._shape_nodes: dict[int, views.NodeView] = {}
        self._flat: dict[int, topology.NodeTopology] = {}
        self._contributions: dict[str, tuple[str, str, int]] = {}
        self._usage: collections.Counter[tuple[str, str]] = collections.Counter()
        self.problems: dict[tuple[Kind, str], str] = {}
        """Objects the cache could not use, with the reason (logged once, shown in metrics)."""

        self._dirty: set[str] = {"all"}
        self._snapshot: Snapshot | None = None
        self._readers: list[weakref.ref[Snapshot]] = []
        """Snapshots reading ``_views`` and ``_shape_of`` themselves, not copies: while one of
        them lives, the two maps are copied before they change (:meth:`_own_node_maps`)."""
        self._frozen_parts: dict[str, Any] = {}

    # -- feeding -----------------------------------------------------------------------------

    def upsert(self, kind: Kind, obj: Obj) -> None:
        """An object was added or modified."""
        with self._lock:
            self._upsert(kind, obj)

    def delete(self, kind: Kind, obj: Obj) -> None:
        """An object was deleted (only its metadata is read)."""
        with self._lock:
            self._delete(kind, _key(kind, obj))

    def replace(self, kind: Kind, objs: Iterable[Obj]) -> None:
        """The full list of ``kind`` (after a list or re-list): everything else of it is gone."""
        with self._lock:
            fresh = list(objs)
            keys = {_key(kind, obj) for obj in fresh}
            for stale in self._keys(kind) - keys:
                self._delete(kind, stale)
            for obj in fresh:
                self._upsert(kind, obj)
            self._synced.add(kind)
            self._heard[kind] = self._clock()
            self._dirty.add("synced")

    def mark_synced(self, kind: Kind) -> None:
        with self._lock:
            self._synced.add(kind)
            self._heard[kind] = self._clock()
            self._dirty.add("synced")

    def heard(self, kind: Kind) -> None:
        """The API server just spoke about ``kind`` (an event, a bookmark, a watch it ended)."""
        self._heard[kind] = self._clock()  # one dict store: atomic, no lock needed

    @property
    def synced(self) -> bool:
        """Every required kind has been listed at least once."""
        return self._required <= self._synced

    def silence(self) -> dict[Kind, float]:
        """Seconds since each required kind last heard from the API server (``inf``: never)."""
        now = self._clock()
        return {kind: now - self._heard.get(kind, -float("inf")) for kind in self._required}

    def stale(self) -> bool:
        """Some required kind has heard nothing for longer than the staleness bound."""
        if self._staleness is None or not self.synced:
            return False
        return max(self.silence().values(), default=0.0) > self._staleness

    def not_ready(self) -> str | None:
        """Why verbs must not answer from the cache (``/readyz`` says it too), or ``None``."""
        if not self.synced:
            return NOT_SYNCED
        if self.stale():
            return stale_reason(self._staleness)
        return None

    # -- assumptions -------------------------------------------------------------------------

    def node_lock(self, node: str) -> threading.Lock:
        """The lock a bind holds on ``node`` around choosing GPUs and assuming them."""
        with self._lock:
            lock = self._node_locks.get(node)
            if lock is None:
                lock = self._node_locks[node] = threading.Lock()
            return lock

    def tenant_lock(self, tenant: str) -> threading.Lock:
        """The lock a bind holds on its tenant from reading the tenant's usage until its GPUs
        are assumed, so a limit is checked against every other bind of the tenant (taken
        before any node lock)."""
        with self._lock:
            lock = self._tenant_locks.get(tenant)
            if lock is None:
                lock = self._tenant_locks[tenant] = threading.Lock()
            return lock

    def node(self, name: str) -> views.NodeView | None:
        """The node's current view (assumptions included), without building a snapshot."""
        with self._lock:
            return self._views.get(name)

    def node_object(self, name: str) -> Obj | None:
        """The node as the API server last sent it (bind checks its labels and taints)."""
        with self._lock:
            return self._node_objs.get(name)

    def pod(self, uid: str) -> views.PodView | None:
        """A GPU pod by UID, bound or pending (the live entry, not a snapshot's)."""
        with self._lock:
            return self._pods.get(uid)

    def pod_count(self) -> int:
        with self._lock:
            return len(self._pods)

    def assume(
        self,
        *,
        uid: str,
        namespace: str,
        name: str,
        node: str,
        gpus: frozenset[int],
        resource: str,
    ) -> Assumption:
        """Count ``gpus`` on ``node`` as taken by the pod until the watch shows it bound or gone,
        or bind forgets them. Raises :class:`AssumeConflictError` if one of them is not free."""
        with self._lock:
            view = self._views.get(node)
            if view is None:
                raise AssumeConflictError(f"node {node} is not in the cache")
            previous = self._assumed.get(uid)
            free = view.free
            if previous is not None and previous.node == node:
                free = free | previous.gpus
            taken = gpus - free
            if taken:
                raise AssumeConflictError(f"GPUs {sorted(taken)} of node {node} are no longer free")
            if previous is not None:
                self._forget(uid)
            assumption = Assumption(
                uid=uid,
                namespace=namespace,
                name=name,
                node=node,
                gpus=gpus,
                resource=resource,
            )
            self._assumed[uid] = assumption
            self._assumed_on_node[node].add(uid)
            self._account(uid, namespace=namespace, node=node, count=len(gpus))
            self._rebuild_node(node)
            self._dirty.add("assumed")
            return assumption

    def forget(self, uid: str) -> None:
        """Drop an assumption (its bind failed)."""
        with self._lock:
            self._forget(uid)

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """An immutable picture; the same object as last time when nothing changed."""
        with self._lock:
            stale = self.stale()
            if stale != self._stale:
                self._stale = stale
                self._dirty.add("synced")
            if self._snapshot is not None and not self._dirty:
                return self._snapshot
            parts = self._frozen_parts
            dirty = self._dirty
            if "nodes" in dirty or "nodes" not in parts:
                # Not copied (a copy of 10,000 nodes costs a quarter of a millisecond, once per
                # pod): the cache copies them itself if they change while a snapshot lives.
                parts["nodes"] = types.MappingProxyType(self._views)
                if self._names_added * 16 > len(self._shape_of):
                    self._shape_of = self._shape_of.compacted()
                    self._names_added = 0
                parts["shape_of"] = self._shape_of
                # Never copied: an id, once given, always names the same shape, any view of a
                # shape serves every decision about it, and ids only get added.
                parts["shapes"] = types.MappingProxyType(self._shape_nodes)
            if "pools" in dirty or "pools" not in parts:
                parts["pools"] = _frozen(self._pools)
            if "pool_nodes" in dirty or "pool_nodes" not in parts:
                members: dict[str, list[str]] = {pool: [] for pool in self._pools}
                for node, pool in self._node_pool.items():
                    if pool is not None:
                        members.setdefault(pool, []).append(node)
                parts["pool_nodes"] = types.MappingProxyType(
                    {pool: tuple(sorted(nodes_)) for pool, nodes_ in members.items()}
                )
            if dirty & {"tenants", "namespaces"} or "tenants" not in parts:
                parts["tenants"] = _frozen(self._tenants)
                parts["namespace_tenants"] = types.MappingProxyType(self._namespace_tenants())
                dirty.add("usage")
            if "usage" in dirty or "usage" not in parts:
                tenant_of = parts["namespace_tenants"]
                usage: collections.Counter[tuple[str, str]] = collections.Counter()
                for (namespace, pool), count in self._usage.items():
                    if namespace in tenant_of:
                        tenant = tenant_of[namespace]
                    else:
                        tenant = self._resolve_tenant(namespace)
                    if tenant is not None and count:
                        usage[(tenant, pool)] += count
                parts["usage"] = types.MappingProxyType(dict(usage))
            if dirty & {"pods", "tenants", "namespaces", "pool_nodes"} or "unbound" not in parts:
                parts["unbound"] = types.MappingProxyType(
                    self._unbound_by_pool(parts["namespace_tenants"], parts["pool_nodes"])
                )
            if "assumed" in dirty or "assumed" not in parts:
                parts["assumed"] = _frozen(self._assumed)
            not_ready = self.not_ready()
            snapshot = self._snapshot = Snapshot(
                synced=not_ready is None, not_ready=not_ready, **parts
            )
            self._readers = [ref for ref in self._readers if ref() is not None]
            self._readers.append(weakref.ref(snapshot))
            dirty.clear()
            return snapshot

    # -- internals ---------------------------------------------------------------------------

    def _keys(self, kind: Kind) -> set[str]:
        stores: dict[Kind, Mapping[str, object]] = {
            Kind.NODE: self._node_objs,
            Kind.POD: self._pods,
            Kind.NAMESPACE: self._ns_labels,
            Kind.TENANT_QUOTA: self._tenants,
            Kind.GPU_POOL: self._pools,
        }
        return set(stores[kind])

    def _problem(self, kind: Kind, key: str, message: str | None) -> None:
        if message is None:
            self.problems.pop((kind, key), None)
        elif self.problems.get((kind, key)) != message:
            self.problems[(kind, key)] = message
            log.warning("ignoring %s %s: %s", kind, key, message)

    def _upsert(self, kind: Kind, obj: Obj) -> None:
        key = _key(kind, obj)
        if kind is Kind.NODE:
            self._node_objs[key] = obj
            self._place_node(key)
        elif kind is Kind.POD:
            self._upsert_pod(key, obj)
        elif kind is Kind.NAMESPACE:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if self._ns_labels.get(key) != labels:
                self._ns_labels[key] = dict(labels)
                self._dirty.add("namespaces")
        elif kind is Kind.TENANT_QUOTA:
            try:
                self._tenants[key] = views.tenant_view(obj)
                self._problem(kind, key, None)
            except views.ViewError as exc:
                self._tenants.pop(key, None)
                self._problem(kind, key, str(exc))
            self._dirty.add("tenants")
        elif kind is Kind.GPU_POOL:
            try:
                pool = views.pool_view(obj)
                self._problem(kind, key, None)
            except views.ViewError as exc:
                self._delete(kind, key)
                self._problem(kind, key, str(exc))
                return
            if self._pools.get(key) != pool:
                self._pools[key] = pool
                self._replace_all_nodes()

    def _delete(self, kind: Kind, key: str) -> None:
        self.problems.pop((kind, key), None)
        if kind is Kind.NODE:
            if self._node_objs.pop(key, None) is not None:
                self._place_node(key)
        elif kind is Kind.POD:
            self._remove_pod(key)
            self._forget(key)
        elif kind is Kind.NAMESPACE:
            if self._ns_labels.pop(key, None) is not None:
                self._dirty.add("namespaces")
        elif kind is Kind.TENANT_QUOTA:
            if self._tenants.pop(key, None) is not None:
                self._dirty.add("tenants")
        elif kind is Kind.GPU_POOL and self._pools.pop(key, None) is not None:
            self._replace_all_nodes()

    def _upsert_pod(self, uid: str, obj: Obj) -> None:
        problem: str | None = None
        shares: dict[str, tuple[int, ...]] = {}
        try:
            requests = pods.extended_requests(obj)
            shares = pods.request_shares(obj, requests)
        except pods.PodError as exc:
            requests, problem = {}, str(exc)
        if not requests and problem is None:
            self._remove_pod(uid)
            return
        try:
            gpus = pods.bound_gpus(obj)
        except pods.PodError as exc:
            gpus, problem = None, str(exc)
        self._problem(Kind.POD, uid, problem)
        view = views.PodView(
            uid=uid,
            namespace=pods.namespace(obj),
            name=pods.name(obj),
            requests=requests,
            shares=shares,
            node=pods.node_name(obj),
            gpus=gpus,
            priority=pods.priority(obj),
            created=pods.creation_timestamp(obj),
            started=pods.start_time(obj),
            checkpoint=pods.annotations_of(obj).get(names.CHECKPOINT_ANNOTATION),
            terminal=pods.is_terminal(obj),
            problem=problem,
            confirmed=names.GPUS_CONFIRMED_ANNOTATION in pods.annotations_of(obj),
            gated=pods.is_gated(obj),
            deleting=pods.is_deleting(obj),
            pool_hint=pods.bound_pool(obj),
            node_selector=pods.node_selector(obj),
            required_terms=scheduling.required_terms(obj),
        )
        if view.terminal:
            self._remove_pod(uid)
            self._forget(uid)
            return
        previous = self._pods.get(uid)
        if previous == view:
            return
        self._remove_pod(uid)
        self._pods[uid] = view
        self._dirty.add("pods")
        if view.node is None:
            self._unbound.add(uid)
        if view.node is not None:
            self._forget(uid, rebuild=self._assumed_node(uid) != view.node)
            self._pods_on_node[view.node].add(uid)
            self._account(uid, namespace=view.namespace, node=view.node, count=None)
            self._rebuild_node(view.node)

    def _remove_pod(self, uid: str) -> None:
        view = self._pods.pop(uid, None)
        if view is None:
            return
        self._unbound.discard(uid)
        self._dirty.add("pods")
        if view.node is not None:
            self._pods_on_node[view.node].discard(uid)
            self._unaccount(uid)
            self._rebuild_node(view.node)

    def _forget(self, uid: str, *, rebuild: bool = True) -> None:
        """Drop the pod's assumption; ``rebuild=False`` when the caller rebuilds its node next
        (a confirmed binding: the node's view is rebuilt once, with the bound pod)."""
        assumption = self._assumed.pop(uid, None)
        if assumption is None:
            return
        self._assumed_on_node[assumption.node].discard(uid)
        if uid not in self._pods or self._pods[uid].node is None:
            self._unaccount(uid)
        if rebuild:
            self._rebuild_node(assumption.node)
        self._dirty.add("assumed")

    def _assumed_node(self, uid: str) -> str | None:
        assumption = self._assumed.get(uid)
        return assumption.node if assumption is not None else None

    def _resource_of(self, node: str) -> str:
        pool = self._node_pool.get(node)
        return self._pools[pool].resource if pool in self._pools else names.DEFAULT_GPU_RESOURCE

    def _account(self, uid: str, *, namespace: str, node: str, count: int | None) -> None:
        """Record the GPUs ``uid`` holds in its node's pool (``None``: read from the pod)."""
        self._unaccount(uid)
        pool = self._node_pool.get(node)
        if pool is None:
            return
        if count is None:
            count = self._pods[uid].request(self._resource_of(node))
        if count:
            self._contributions[uid] = (namespace, pool, count)
            self._usage[(namespace, pool)] += count
            self._dirty.add("usage")

    def _unaccount(self, uid: str) -> None:
        previous = self._contributions.pop(uid, None)
        if previous is not None:
            namespace, pool, count = previous
            self._usage[(namespace, pool)] -= count
            if self._usage[(namespace, pool)] <= 0:
                del self._usage[(namespace, pool)]
            self._dirty.add("usage")

    def _pool_of(self, obj: Obj) -> str | None:
        """The node's pool (:func:`gpufair.state.rules.pool_of_node`)."""
        return rules.pool_of_node(
            {name: pool.node_selector for name, pool in self._pools.items()},
            nodes.labels(obj),
            on_bad_selector=lambda name, message: self._problem(Kind.GPU_POOL, name, message),
        )

    def _place_node(self, name: str) -> None:
        """(Re)compute the node's pool, re-account what runs on it, rebuild its view."""
        obj = self._node_objs.get(name)
        if obj is None:
            self._node_pool.pop(name, None)
            self._dirty.add("pool_nodes")
            self._rebuild_node(name)
            return
        pool = self._pool_of(obj)
        if name not in self._node_pool or self._node_pool[name] != pool:
            self._node_pool[name] = pool
            self._dirty.add("pool_nodes")
            for uid in self._pods_on_node.get(name, ()):
                self._account(uid, namespace=self._pods[uid].namespace, node=name, count=None)
            for uid in self._assumed_on_node.get(name, ()):
                assumption = self._assumed[uid]
                self._account(
                    uid, namespace=assumption.namespace, node=name, count=len(assumption.gpus)
                )
        self._rebuild_node(name)

    def _replace_all_nodes(self) -> None:
        self._dirty.update(("pools", "pool_nodes"))
        for name in list(self._node_objs):
            self._place_node(name)

    def _intern(self, topo: topology.NodeTopology) -> tuple[topology.NodeTopology, int]:
        """One shared object and a small id per distinct topology (cheap to hash and compare)."""
        number = self._topology_ids.get(topo)
        if number is None:
            number = self._topology_ids[topo] = len(self._topologies)
            self._topologies.append(topo)
        return self._topologies[number], number

    def _own_node_maps(self) -> None:
        """Make ``_views`` and ``_shape_of`` safe to change: copies, if a snapshot still reads
        them (a verb is using it); otherwise they change in place, and no snapshot ever pays
        for copying every node."""
        self._snapshot = None  # stale from here on; a verb may still hold it
        if any(ref() is not None for ref in self._readers):
            self._views = dict(self._views)
            self._shape_of = ShapeIndex(self._shape_of)
        self._readers = []

    def _rebuild_node(self, name: str) -> None:
        obj = self._node_objs.get(name)
        self._own_node_maps()
        self._dirty.add("nodes")
        if obj is None:
            self._views.pop(name, None)
            self._shape_of.pop(name, None)
            self._parsed.pop(name, None)
            return
        resource = self._resource_of(name)
        parsed = self._parsed.get(name)
        if parsed is None or parsed.obj is not obj or parsed.resource != resource:
            parsed = self._parsed[name] = self._parse(obj, resource)
        allocatable, topo, topo_id = parsed.allocatable, parsed.topology, parsed.topology_id
        schedulable, problem = parsed.schedulable, parsed.problem
        self._problem(Kind.NODE, name, problem)
        held = [
            (self._pods[uid].gpus, self._pods[uid].request(resource))
            for uid in self._pods_on_node.get(name, ())
        ]
        held.extend(
            (self._assumed[uid].gpus, len(self._assumed[uid].gpus))
            for uid in self._assumed_on_node.get(name, ())
        )
        free_gpus = rules.free_gpus(gpus=topo, allocatable=allocatable, held=held)
        free = free_gpus.indices
        bound = tuple(self._pods[uid] for uid in sorted(self._pods_on_node.get(name, ())))
        waiting = self._waiting_sizes(name, obj, bound, resource)
        previous = self._views.get(name)
        if previous is not None and previous.free == free:
            free = previous.free
        pool = self._node_pool.get(name)
        node_problem = "node has invalid gpufair topology labels" if problem else None
        shape = views.node_shape(
            pool=pool,
            topology_id=topo_id,
            free=free,
            hidden=free_gpus.hidden,
            problem=node_problem,
            schedulable=schedulable,
            waiting=waiting,
        )
        shape_id = self._shape_ids.get(shape)
        if shape_id is None:
            shape_id = self._shape_ids[shape] = len(self._shape_ids)
        view = self._views[name] = views.NodeView(
            name=name,
            pool=pool,
            topology=topo,
            topology_id=topo_id,
            allocatable=allocatable,
            schedulable=schedulable,
            free=free,
            hidden=free_gpus.hidden,
            problem=node_problem,
            pods=bound,
            waiting=waiting,
            shape_id=shape_id,
        )
        if name not in self._shape_of:
            self._names_added += 1
        self._shape_of[name] = shape_id
        self._shape_nodes[shape_id] = view

    def _parse(self, obj: Obj, resource: str) -> _ParsedNode:
        """What a node's object says, with its topology interned (parsed once per object)."""
        allocatable, topo, schedulable, problem = _parse_node(obj, resource)
        if topo is None:
            topo = self._flat.get(allocatable)
            if topo is None:
                topo = self._flat[allocatable] = rules.node_topology(None, allocatable)
        topo, topo_id = self._intern(topo)
        return _ParsedNode(obj, resource, allocatable, topo, topo_id, schedulable, problem)

    def _waiting_sizes(
        self, name: str, obj: Obj, bound: tuple[views.PodView, ...], resource: str
    ) -> frozenset[int]:
        """Sizes of unconfirmed gpufair pods on a node whose agent runs the proxy."""
        node_labels = (obj.get("metadata") or {}).get("labels") or {}
        if node_labels.get(topology_labels.PROXY_LABEL) != "true":
            return frozenset()
        sizes: set[int] = set()
        for pod in bound:
            if pod.gpus is not None and not pod.confirmed:
                sizes |= allocation.request_sizes(
                    pod.request(resource), pod.shares.get(resource, ())
                )
        for uid in self._assumed_on_node.get(name, ()):
            pending = self._pods.get(uid)
            shares = pending.shares.get(resource, ()) if pending is not None else ()
            sizes |= allocation.request_sizes(len(self._assumed[uid].gpus), shares)
        return frozenset(sizes)

    def _unbound_by_pool(
        self, tenant_of: Mapping[str, str | None], pool_nodes: Mapping[str, tuple[str, ...]]
    ) -> dict[tuple[str, str], tuple[views.PodView, ...]]:
        """The pods not bound yet by (tenant, pool) (:func:`gpufair.state.rules.waiting_pool`,
        a pod's ``nodeSelector`` and required affinity judged against the pool's nodes)."""
        fits = rules.PoolFit(
            lambda pool: (
                (name, nodes.labels(self._node_objs[name]))
                for name in pool_nodes.get(pool, ())
                if name in self._node_objs
            )
        )

        def fit(pool: str, pod: views.PodView) -> bool:
            return fits(pool, node_selector=pod.node_selector, terms=pod.required_terms)

        result: dict[tuple[str, str], list[views.PodView]] = {}
        for uid in sorted(self._unbound):
            pod = self._pods[uid]
            tenant_name = tenant_of.get(pod.namespace)
            tenant = self._tenants.get(tenant_name) if tenant_name is not None else None
            if tenant is None:
                continue
            pool = rules.waiting_pool(
                tenant_pools=list(tenant.pools), fits=functools.partial(fit, pod=pod)
            )
            if pool is not None:
                result.setdefault((tenant.name, pool), []).append(pod)
        return {key: tuple(pods_) for key, pods_ in result.items()}

    def _resolve_tenant(self, namespace: str) -> str | None:
        return rules.namespace_owner(
            namespace,
            labels=self._ns_labels.get(namespace),
            tenants=(tenant.namespaces for tenant in self._tenants.values()),
        )

    def _namespace_tenants(self) -> dict[str, str | None]:
        """Tenant (or ``None``) of every namespace the cache knows of."""
        known = set(self._ns_labels) | {namespace for namespace, _ in self._usage}
        for tenant in self._tenants.values():
            known |= tenant.namespaces.namespaces
        return {namespace: self._resolve_tenant(namespace) for namespace in known}


class _ParsedNode(NamedTuple):
    obj: Obj
    resource: str
    allocatable: int
    topology: topology.NodeTopology
    topology_id: int
    schedulable: bool
    problem: str | None


def _parse_node(
    obj: Obj, resource: str
) -> tuple[int, topology.NodeTopology | None, bool, str | None]:
    """A node's allocatable GPUs, topology (from the agent's labels), schedulability, and the
    problem that made one of them unreadable."""
    problem: str | None = None
    try:
        allocatable = nodes.allocatable_gpus(obj, resource)
    except nodes.NodeError as exc:
        allocatable, problem = 0, str(exc)
    try:
        topo: topology.NodeTopology | None = nodes.gpu_topology(obj)
    except nodes.NodeError as exc:
        topo, problem = None, str(exc)
    return allocatable, topo, nodes.is_schedulable(obj), problem


def _key(kind: Kind, obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    if kind is Kind.POD:
        return str(metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}")
    return str(metadata.get("name", ""))
