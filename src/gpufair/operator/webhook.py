"""The admission webhook's decision for a new pod, pure (ARCHITECTURE.md §2 step 2).

:mod:`.webhook_handlers` calls :func:`review` for every pod created in a watched namespace and
turns the verdict into a kopf patch or an ``AdmissionError``. The tenant facts come from the
reconciler's latest plan; before the first pass nothing is known and every GPU pod is gated
(never denied): the operator admits it once it knows more, and removes the gate from pods of
namespaces that turn out to belong to no tenant (``plan.release_unowned``). Denial is core's verdict
(:func:`gpufair.core.admission.reject`), so the webhook, the admission loop and the extender
agree on what "at the limit" means.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from gpufair.api import names
from gpufair.core import admission
from gpufair.k8s import pods as k8s_pods

OPT_OUT_VALUE = "disabled"


@dataclasses.dataclass(frozen=True, slots=True)
class Knowledge:
    """What the webhook knows from the latest reconcile pass."""

    owners: Mapping[str, str]
    """Tenant of each namespace."""
    pools: Mapping[str, tuple[str, ...]]
    """Pools of each tenant, in spec order."""
    states: Mapping[str, admission.TenantState]


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Gate:
    """Set the scheduler and add the admission gate (``gates`` is the full new list)."""

    scheduler_name: str
    gates: tuple[dict[str, str], ...]
    tenant: str | None


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
    if knowledge is not None and tenant is not None and tenant in knowledge.states:
        own = knowledge.pools.get(tenant, ())
        pool = own[0] if own else ""  # the webhook sees no nodes; the pass finds the real pool
        meta = pod.get("metadata") or {}
        hold = admission.reject(
            pod=admission.WaitingPod(
                uid=str(meta.get("uid") or ""),
                tenant=tenant,
                pool=pool,
                gpus=gpus,
                name=f"{namespace}/{meta.get('name') or meta.get('generateName') or ''}",
            ),
            tenant=knowledge.states[tenant],
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
    spec = pod.get("spec") or {}
    gates = [dict(gate) for gate in spec.get("schedulingGates") or []]
    if not any(gate.get("name") == names.ADMISSION_GATE for gate in gates):
        gates.append({"name": names.ADMISSION_GATE})
    return Gate(scheduler_name=names.SCHEDULER_NAME, gates=tuple(gates), tenant=tenant)
