"""The cluster rules the extender and the operator must answer alike, each written once.

The extender (:mod:`gpufair.state.cache`) and the operator (:mod:`gpufair.operator.plan`,
:mod:`gpufair.state.occupancy`) keep their own indexes, but every fact both derive from the
same objects is computed here, by pure functions over plain values, so the two cannot drift
apart (``tests/state/test_one_model.py`` checks that they agree on one cluster):

- which pool a node belongs to (:func:`pool_of_node`);
- who owns a namespace, and who else claims it (:func:`namespace_claimants`);
- which GPUs of a node are free (:func:`node_topology`, :func:`free_gpus`);
- which pool a pod that waits for admission belongs to (:func:`waiting_pool`, :class:`PoolFit`);
- which nodes a pod may land on, taints included (:func:`node_admits`);
- a tenant's claim in a pool, the input of fair shares (:func:`tenant_claim`);
- the waiting demand by size that placement keeps islands for (:func:`demand_by_size`).

LabelSelector matching itself is :func:`gpufair.k8s.selectors.matches`; kubeconfig loading is
:mod:`gpufair.state.kubeconfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gpufair.core import fairshare, topology
from gpufair.k8s import nodes, pods, scheduling, selectors

Selector = Mapping[str, Any] | None


def selector_matches(selector: Selector, labels: Mapping[str, str]) -> bool:
    """LabelSelector matching where a malformed selector matches nothing (the object that holds
    it is reported invalid elsewhere; it must not capture nodes or namespaces meanwhile)."""
    try:
        return selectors.matches(selector, labels)
    except selectors.SelectorError:
        return False


def pool_of_node(
    pool_selectors: Mapping[str, Selector],
    labels: Mapping[str, str],
    *,
    on_bad_selector: Callable[[str, str], None] | None = None,
) -> str | None:
    """The pool of a node: the alphabetically first pool whose ``nodeSelector`` matches its
    labels (overlapping pools are reported by the operator; this only has to be the same
    everywhere). A malformed selector matches nothing; ``on_bad_selector(pool, message)`` hears
    of it."""
    for name in sorted(pool_selectors):
        try:
            if selectors.matches(pool_selectors[name], labels):
                return name
        except selectors.SelectorError as exc:
            if on_bad_selector is not None:
                on_bad_selector(name, str(exc))
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class TenantNamespaces:
    """Which namespaces a tenant owns: listed by name and/or by a namespace LabelSelector."""

    tenant: str
    namespaces: frozenset[str] = frozenset()
    selector: Selector = None
    """A LabelSelector in Kubernetes JSON (``matchLabels``/``matchExpressions``), or ``None``."""


def namespace_claimants(
    namespace: str,
    *,
    labels: Mapping[str, str] | None,
    tenants: Iterable[TenantNamespaces],
) -> tuple[str, ...]:
    """Every tenant that claims ``namespace``, the owner first.

    Tenants that list the namespace by name come first (alphabetically), then those whose
    ``namespaceSelector`` matches its labels (alphabetically). ``labels`` is ``None`` for a
    namespace not seen yet: only a listing can claim it, since its labels are unknown.
    Selectors never see ``gpufair.dev/tenant``, which gpufair writes from ownership.
    """
    listed: list[str] = []
    by_selector: list[str] = []
    for entry in tenants:
        if namespace in entry.namespaces:
            listed.append(entry.tenant)
        elif (
            labels is not None
            and entry.selector is not None
            and selector_matches(entry.selector, pods.without_tenant_label(labels))
        ):
            by_selector.append(entry.tenant)
    return (*sorted(listed), *sorted(by_selector))


def namespace_owner(
    namespace: str,
    *,
    labels: Mapping[str, str] | None,
    tenants: Iterable[TenantNamespaces],
) -> str | None:
    """The tenant owning ``namespace`` (the first of :func:`namespace_claimants`), or ``None``."""
    claimants = namespace_claimants(namespace, labels=labels, tenants=tenants)
    return claimants[0] if claimants else None


def node_topology(
    labelled: topology.NodeTopology | None, allocatable: int
) -> topology.NodeTopology:
    """The GPUs a node is known to have: those its agent labelled, or, without labels,
    ``allocatable`` GPUs about which nothing else is known. A labelled count that differs from
    the allocatable count keeps the labels (they name the real indices); :func:`free_gpus`
    caps what can be handed out at the allocatable count."""
    return labelled if labelled is not None else nodes.flat_topology(allocatable)


@dataclasses.dataclass(frozen=True, slots=True)
class FreeGpus:
    """A node's GPUs nobody is known to hold (``indices``), of which ``hidden`` are taken anyway:
    by pods whose indices nobody recorded, or because the node allocates fewer GPUs than it
    labels. A request fits when ``count <= len(indices) - hidden``."""

    indices: frozenset[int]
    hidden: int = 0

    @property
    def usable(self) -> frozenset[int]:
        """The GPUs that can be handed out: ``indices`` without ``hidden`` of them, the highest
        dropped first (a pod without recorded GPUs is taken to hold the highest indices)."""
        keep = max(0, len(self.indices) - self.hidden)
        return frozenset(sorted(self.indices)[:keep])


def free_gpus(
    *,
    gpus: topology.NodeTopology,
    allocatable: int,
    held: Iterable[tuple[frozenset[int] | None, int]],
) -> FreeGpus:
    """The free GPUs of a node with topology ``gpus`` and ``allocatable`` GPUs, given each pod's
    (recorded indices or ``None``, GPU count). At most ``min(labelled, allocatable)`` GPUs are
    ever usable: held ones count against that whether or not their indices are known."""
    indices = frozenset(gpus.indices)
    used: set[int] = set()
    hidden = max(0, len(indices) - allocatable)
    for recorded, count in held:
        known = (recorded or frozenset()) & indices
        used |= known
        hidden += max(0, count - len(known))
    free = indices - used
    return FreeGpus(indices=free, hidden=min(hidden, len(free)))


NodeLabels = tuple[str, Mapping[str, str]]
"""A node's name and labels: what a pod's ``nodeSelector`` and required affinity judge."""


class PoolFit:
    """Whether some node of a pool admits a pod's ``nodeSelector`` and required node affinity
    (taints aside), remembered per (pool, selector, affinity) for one pass: a job's pods share
    their selector, so a pool's nodes are scanned once per distinct selector, not once per pod.
    """

    def __init__(self, pool_nodes: Callable[[str], Iterable[NodeLabels]]) -> None:
        self._pool_nodes = pool_nodes
        self._answers: dict[tuple[str, frozenset[tuple[str, str]], str], bool] = {}

    def __call__(
        self,
        pool: str,
        *,
        node_selector: Mapping[str, str],
        terms: Sequence[Mapping[str, Any]] | None,
    ) -> bool:
        key = (pool, frozenset(node_selector.items()), repr(terms) if terms else "")
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = any(
                scheduling.labels_admit(
                    node_selector=node_selector, terms=terms, node_name=name, labels=labels
                )
                for name, labels in self._pool_nodes(pool)
            )
        return answer


def node_admits(
    *,
    node_selector: Mapping[str, str],
    terms: Sequence[Mapping[str, Any]] | None,
    tolerations: Sequence[Mapping[str, Any]],
    node_name: str,
    labels: Mapping[str, str],
    taints: Sequence[Mapping[str, Any]],
) -> bool:
    """Whether kube-scheduler's node filters let a pod onto a node: its ``nodeSelector`` and
    required node affinity admit the node's labels and it tolerates the node's ``NoSchedule``
    and ``NoExecute`` taints. Reclaim evicts only on nodes that pass (issue 13 item 1)."""
    if not scheduling.labels_admit(
        node_selector=node_selector, terms=terms, node_name=node_name, labels=labels
    ):
        return False
    return (
        scheduling.untolerated_taint(
            {"spec": {"tolerations": list(tolerations)}}, {"spec": {"taints": list(taints)}}
        )
        is None
    )


def waiting_pool(*, tenant_pools: Sequence[str], fits: Callable[[str], bool]) -> str | None:
    """The pool a pod that waits for admission belongs to: the first of its tenant's pools with
    a node that ``fits`` the pod (its ``nodeSelector`` and required node affinity), else the
    tenant's first pool. Never a pool named in an annotation, which a tenant could write."""
    if not tenant_pools:
        return None
    return next((name for name in tenant_pools if fits(name)), tenant_pools[0])


def tenant_claim(
    *,
    tenant: str,
    weight: float,
    guaranteed: int,
    limit: int | None,
    lendable: int | None,
    held: int,
    waiting: int,
) -> fairshare.TenantClaim:
    """A tenant's claim in one pool: its entitlement, and as demand what it holds (bound and
    admitted pods) plus what its pods waiting for admission ask for. A tenant stopped by its
    budget passes ``waiting=0``."""
    return fairshare.TenantClaim(
        tenant=tenant,
        weight=weight,
        guaranteed=guaranteed,
        limit=limit,
        lendable=lendable,
        demand=held + waiting,
    )


def demand_by_size(sizes: Iterable[int]) -> dict[int, int]:
    """Pods waiting in a pool by GPU count (``{8: 2, 2: 5}``), from each waiting pod's request:
    the ``demand`` of :func:`gpufair.core.placement.choose_keeping`. A waiting pod is one not on
    a node and not being deleted, gated or admitted; the extender (its snapshot's ``unbound``
    pods) and the operator's pass (gated and pending pods) both count it here."""
    demand: dict[int, int] = {}
    for size in sizes:
        if size > 0:
            demand[size] = demand.get(size, 0) + 1
    return demand
