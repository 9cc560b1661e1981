"""The admission webhook's decision for a new pod, pure (ARCHITECTURE.md §2 step 2).

:mod:`.webhook_handlers` calls :func:`review` for every pod created in a watched namespace and
turns the verdict into a kopf patch or an ``AdmissionError``. The tenant facts come from the
reconciler's latest plan; before the first pass nothing is known and every GPU pod is gated
(never denied): the operator admits it once it knows more, and removes the gate from pods of
namespaces that turn out to belong to no tenant (``scheduling.release_unowned``). Denial is
core's verdict (:func:`gpufair.core.admission.reject`), so the webhook, the admission loop and
the extender agree on what "at the limit" means.

Between two passes the webhook counts what it accepted itself (:class:`Ledger`): a burst of
pods of an ``onLimit: Reject`` tenant, created faster than passes run, is judged one after the
other against the pass's allocation, the GPUs the pass saw waiting, and the pods accepted since,
under one lock, so concurrent reviews cannot all slip under the limit (issue 13 item 10). Each
accepted pod carries a token (``gpufair.dev/admission-token``); the first pass that sees it
counts it from then on and the ledger forgets it.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gpufair.api import names
from gpufair.core import admission, policy
from gpufair.k8s import pods as k8s_pods
from gpufair.k8s import scheduling
from gpufair.state import model, rules

OPT_OUT_VALUE = "disabled"


@dataclasses.dataclass(frozen=True, slots=True)
class Knowledge:
    """What the webhook knows from the latest reconcile pass."""

    owners: Mapping[str, str]
    """Tenant of each namespace."""
    pools: Mapping[str, tuple[str, ...]]
    """Pools of each tenant, in spec order."""
    states: Mapping[str, admission.TenantState]
    queued: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    """GPUs per (tenant, pool) of pods accepted but not admitted yet: those the pass saw
    waiting, plus those accepted since (:meth:`Ledger.pending`)."""
    pool_nodes: Mapping[str, tuple[rules.NodeLabels, ...]] | None = None
    """Nodes (name, labels) of each pool at the pass, to find a new pod's pool from its
    selector and affinity as the pass will; ``None``: unknown, the tenant's first pool."""


@dataclasses.dataclass(frozen=True, slots=True)
class PassFacts:
    """What the webhook needs from a pass besides the tenants' states (see :func:`pass_facts`)."""

    queued: Mapping[tuple[str, str], int]
    tokens: frozenset[str]
    """Admission tokens of every pod the pass saw: the ledger forgets those."""
    pool_nodes: Mapping[str, tuple[rules.NodeLabels, ...]]


def pass_facts(
    pods: Iterable[model.GpuPod],
    *,
    pod_pools: Mapping[str, tuple[str, str]],
    nodes: Mapping[str, model.Node],
    node_pool: Mapping[str, str],
) -> PassFacts:
    """The GPUs of the gated pods per (tenant, pool), the tokens seen and each pool's nodes."""
    queued: dict[tuple[str, str], int] = {}
    tokens: set[str] = set()
    for pod in pods:
        if pod.admission_token:
            tokens.add(pod.admission_token)
        pair = pod_pools.get(pod.uid)
        if pair is not None and pod.state is model.PodState.GATED:
            queued[pair] = queued.get(pair, 0) + pod.gpus
    members: dict[str, list[rules.NodeLabels]] = {}
    for name, node in nodes.items():
        pool = node_pool.get(name)
        if pool is not None:
            members.setdefault(pool, []).append((name, node.labels))
    return PassFacts(
        queued=queued,
        tokens=frozenset(tokens),
        pool_nodes={pool: tuple(found) for pool, found in members.items()},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    tenant: str
    pool: str
    gpus: int
    at: float


class Ledger:
    """GPUs the webhook accepted for ``onLimit: Reject`` tenants since the pass that last saw
    them, shared by concurrent reviews. Use :meth:`locked` around judging and recording, so
    that no two reviews judge from the same count."""

    FORGET_AFTER_SECONDS = 600.0
    """An entry no pass has seen after this long is dropped (its pod was never created, or
    was deleted before a pass): counting it longer would refuse pods for nothing."""

    def __init__(self) -> None:
        self.locked = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def pending(self, *, seen: frozenset[str], now: float) -> dict[tuple[str, str], int]:
        """GPUs per (tenant, pool) accepted and not yet seen by a pass (hold :attr:`locked`)."""
        horizon = now - self.FORGET_AFTER_SECONDS
        for token in [t for t, e in self._entries.items() if t in seen or e.at < horizon]:
            del self._entries[token]
        totals: dict[tuple[str, str], int] = {}
        for entry in self._entries.values():
            key = (entry.tenant, entry.pool)
            totals[key] = totals.get(key, 0) + entry.gpus
        return totals

    def record(self, *, tenant: str, pool: str, gpus: int, now: float) -> str:
        """Count an accepted pod; the token to put on it (hold :attr:`locked`)."""
        token = uuid.uuid4().hex
        self._entries[token] = _Entry(tenant=tenant, pool=pool, gpus=gpus, at=now)
        return token


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Gate:
    """Set the scheduler and add the admission gate (``gates`` is the full new list)."""

    scheduler_name: str
    gates: tuple[dict[str, str], ...]
    tenant: str | None
    counted: tuple[str, int] | None = None
    """(pool, GPUs) when the pod counts against an ``onLimit: Reject`` limit until a pass
    sees it: record it in the :class:`Ledger`."""


@dataclasses.dataclass(frozen=True, slots=True)
class Deny:
    tenant: str
    pool: str
    reason: admission.HoldReason
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Forged:
    """The request sets, changes or removes an annotation only gpufair writes."""

    message: str


Verdict = Skip | Gate | Deny


def is_gpufair(
    username: str, *, trusted_namespace: str | None, trusted_users: Sequence[str] = ()
) -> bool:
    """Whether the requester is one of gpufair's own service accounts (any service account of
    the namespace gpufair runs in, where only cluster admins create pods and accounts), or a
    user named in ``trusted_users``."""
    if username and username in trusted_users:
        return True
    if not trusted_namespace:
        return False
    return username.startswith(f"system:serviceaccount:{trusted_namespace}:")


def forged(
    pod: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    *,
    username: str,
    trusted_namespace: str | None,
    trusted_users: Sequence[str] = (),
) -> Forged | None:
    """Refuse a create or update by anyone but gpufair that touches gpufair's annotations.

    On create any of them is refused (a pod template cannot carry them either: the controller
    creating the pod is not gpufair); on update only a change counts, so controllers that
    update other fields of a bound pod go through.
    """
    new_notes = k8s_pods.annotations_of(pod)
    old_notes = k8s_pods.annotations_of(old) if old is not None else {}
    touched = sorted(
        key for key in names.GPUFAIR_ONLY_ANNOTATIONS if new_notes.get(key) != old_notes.get(key)
    )
    trusted = is_gpufair(username, trusted_namespace=trusted_namespace, trusted_users=trusted_users)
    if not touched or trusted:
        return None
    return Forged(
        f"{', '.join(touched)} {'is' if len(touched) == 1 else 'are'} written only by gpufair"
        f" (its scheduler extender and operator), not by {username or 'an anonymous user'}:"
        " remove the annotation from the pod (or its template)"
    )


def review(
    pod: Mapping[str, Any],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    resources: Sequence[str],
    knowledge: Knowledge | None,
) -> Verdict:
    """What to do with a pod being created in ``namespace``."""
    if namespace_labels.get(names.OPT_OUT_LABEL) == OPT_OUT_VALUE:
        return Skip(f"namespace {namespace} opted out ({names.OPT_OUT_LABEL}={OPT_OUT_VALUE})")
    try:
        requested = k8s_pods.gpu_request_any(pod, resources)
    except k8s_pods.PodError as error:
        return Skip(f"GPU request unreadable: {error}")
    if requested is None:
        return Skip("requests no GPU")
    _, gpus = requested
    tenant = knowledge.owners.get(namespace) if knowledge else None
    if knowledge is not None and tenant is None:
        return Skip(f"namespace {namespace} belongs to no tenant")
    counted: tuple[str, int] | None = None
    if knowledge is not None and tenant is not None and tenant in knowledge.states:
        pool = _pool_of(pod, knowledge.pools.get(tenant, ()), knowledge.pool_nodes)
        meta = pod.get("metadata") or {}
        state = knowledge.states[tenant]
        queued = knowledge.queued.get((tenant, pool), 0)
        held = {**state.allocated, pool: state.allocated.get(pool, 0) + queued}
        hold = admission.reject(
            pod=admission.WaitingPod(
                uid=str(meta.get("uid") or ""),
                tenant=tenant,
                pool=pool,
                gpus=gpus,
                name=f"{namespace}/{meta.get('name') or meta.get('generateName') or ''}",
            ),
            tenant=dataclasses.replace(state, allocated=held),
        )
        if hold is not None:
            return Deny(
                tenant=tenant,
                pool=pool,
                reason=hold.reason,
                message=f"{hold.message}; tenant {tenant} has onLimit: Reject, so the pod is"
                " refused instead of queued (ask for a higher limit or budget, or wait for"
                " running pods to finish)",
            )
        if state.on_limit is policy.OnLimit.REJECT:
            counted = (pool, gpus)
    spec = pod.get("spec") or {}
    gates = [dict(gate) for gate in spec.get("schedulingGates") or []]
    if not any(gate.get("name") == names.ADMISSION_GATE for gate in gates):
        gates.append({"name": names.ADMISSION_GATE})
    return Gate(
        scheduler_name=names.SCHEDULER_NAME, gates=tuple(gates), tenant=tenant, counted=counted
    )


def _pool_of(
    pod: Mapping[str, Any],
    tenant_pools: Sequence[str],
    pool_nodes: Mapping[str, tuple[rules.NodeLabels, ...]] | None,
) -> str:
    """The pool the pass will queue the pod in (:func:`gpufair.state.rules.waiting_pool`):
    the first of the tenant's pools with a node its selector and required affinity admit."""
    if pool_nodes is None:
        return tenant_pools[0] if tenant_pools else ""
    fits = rules.PoolFit(lambda name: pool_nodes.get(name, ()))
    chosen = rules.waiting_pool(
        tenant_pools=tenant_pools,
        fits=functools.partial(
            fits,
            node_selector=k8s_pods.node_selector(pod),
            terms=scheduling.required_terms(pod),
        ),
    )
    return chosen or ""
