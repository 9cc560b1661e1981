"""The bind verb: choose the GPUs, assume them, create the binding that records them.

kube-scheduler skips prioritize when only one node passed filter, so bind never relies on an
earlier verb: it chooses the GPU set itself from the node's current free GPUs. Deciding and
acting are separate steps: under the tenant's lock and the node's lock the GPUs are chosen and
assumed in the cache (so two concurrent binds to one node never get the same GPU, and binds of
one tenant never pass its limit together), then, outside the locks, the
``pods/binding`` is created through :class:`PodWriter` with the choice in the Binding's own
``metadata.annotations``: the API server copies them onto the pod together with ``nodeName``
in one write (``setPodHostAndAnnotations``), so no pod is ever bound without its GPUs recorded
and no separate patch can fail half-way. A failed write forgets the assumption.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from gpufair.api import extender_wire, names
from gpufair.core import placement
from gpufair.extender import verbs
from gpufair.k8s import pods, scheduling
from gpufair.state import cache


class PodWriter(Protocol):
    """The API calls bind makes (implemented by :class:`gpufair.state.kube.KubeClient`)."""

    def read_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The pod, or ``None`` when it does not exist."""
        ...

    def bind_pod(
        self, *, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]
    ) -> None:
        """Create the pod's ``pods/binding`` to ``node`` carrying ``annotations`` for the pod."""
        ...


class BindError(Exception):
    """The pod could not be bound; the message goes into the answer's ``Error``."""


@dataclasses.dataclass(frozen=True)
class Bound:
    """What bind recorded on the pod: its node, GPUs, their NUMA node, pool and link level."""

    node: str
    gpus: tuple[int, ...] = ()
    numa: int | None = None
    pool: str | None = None
    level: placement.LinkLevel | None = None
    planned: str | None = None
    """The node the pod's group plan named (``None``: no plan), to tell bound on or off it."""


_CONFLICT_RETRIES = 3


def _read(args: extender_wire.ExtenderBindingArgs, writer: PodWriter) -> Mapping[str, Any]:
    """The pod as the API server has it now (never the cache's copy: bind checks what the pod
    asks for against the node, and a stale copy could hide a selector or a binding)."""
    try:
        pod = writer.read_pod(args.pod_namespace, args.pod_name)
    except Exception as exc:  # API server unreachable or refusing: kube-scheduler retries
        raise BindError(
            f"reading pod {args.pod_namespace}/{args.pod_name}: {type(exc).__name__}: {exc}"
        ) from exc
    if pod is None:
        raise BindError(f"pod {args.pod_namespace}/{args.pod_name} not found")
    if args.pod_uid and pods.uid(pod) and pods.uid(pod) != args.pod_uid:
        raise BindError(
            f"pod {args.pod_namespace}/{args.pod_name} has UID {pods.uid(pod)}, not {args.pod_uid}"
        )
    return pod


def refusal(
    pod: Mapping[str, Any],
    *,
    node_name: str,
    node: Mapping[str, Any] | None,
    managed: frozenset[str],
    requests: Mapping[str, int] | None = None,
) -> str | None:
    """Why kube-scheduler would never ask to bind this pod to this node, or ``None``.

    The extender holds cluster-wide ``pods/binding`` rights, so it binds only what its own
    scheduler could have chosen: a pending pod of the gpufair scheduler that requests a GPU
    resource gpufair manages, to a known node its selector, required affinity and tolerations
    allow (the tenant's pools are checked by the verdict afterwards). ``requests``: the pod's
    extended requests when already read (``pods.extended_requests``).
    """
    ref = pods.ref(pod)
    if pods.scheduler_name(pod) != names.SCHEDULER_NAME:
        return (
            f"refusing to bind {ref}: it uses scheduler {pods.scheduler_name(pod)!r}, "
            f"not {names.SCHEDULER_NAME}"
        )
    if pods.node_name(pod):
        return f"refusing to bind {ref}: it is already bound to {pods.node_name(pod)}"
    if requests is None:
        requests = pods.extended_requests(pod)
    if not managed.intersection(requests):
        return f"refusing to bind {ref}: it requests no GPU resource gpufair manages"
    if node is None:
        return f"refusing to bind {ref} to {node_name}: node not in gpufair's cache"
    excluded = scheduling.node_excludes(pod, node)
    if excluded is not None:
        return f"refusing to bind {ref} to {node_name}: {excluded}"
    return None


def _ask(
    args: extender_wire.ExtenderBindingArgs, state: cache.ClusterCache, writer: PodWriter
) -> verbs.PodAsk:
    snapshot = state.snapshot()
    if not snapshot.synced:  # answered before any API call: a stale cache answers at once
        raise BindError(snapshot.not_ready or verbs.NOT_SYNCED)
    pod = _read(args, writer)
    try:
        ask = verbs.read_pod(pod)
    except verbs.CannotJudgeError as exc:
        raise BindError(str(exc)) from None
    managed = verbs.gpu_resources(snapshot)
    reason = refusal(
        pod,
        node_name=args.node,
        node=state.node_object(args.node),
        managed=managed,
        requests=ask.requests,
    )
    if reason is not None:
        raise BindError(reason)
    return ask


def choose_and_assume(
    *,
    ask: verbs.PodAsk,
    node_name: str,
    state: cache.ClusterCache,
    placer: verbs.Placer,
) -> Bound:
    """Under the tenant's lock, then the node's: pick the GPU set on the node's current free
    GPUs and assume it. The tenant's lock makes the limit check and the assumption one step:
    two binds of a tenant to different nodes would otherwise both check the limit on the usage
    before either assumed, and together exceed it."""
    tenant = state.snapshot().tenant_of(ask.namespace)
    if tenant is None:  # no limit to keep; the verdict gives the reason
        return _choose_and_assume(ask=ask, node_name=node_name, state=state, placer=placer)
    with state.tenant_lock(tenant):
        return _choose_and_assume(ask=ask, node_name=node_name, state=state, placer=placer)


def _choose_and_assume(
    *,
    ask: verbs.PodAsk,
    node_name: str,
    state: cache.ClusterCache,
    placer: verbs.Placer,
) -> Bound:
    for _ in range(_CONFLICT_RETRIES):
        snapshot = state.snapshot()
        judge = verbs.Judge(snapshot, ask, placer)
        with state.node_lock(node_name):
            node = state.node(node_name)
            if node is None:
                raise BindError(f"node {node_name} is not in gpufair's cache")
            verdict = judge.verdict_for(node)
            if verdict.choice is None:
                raise BindError(f"cannot bind {ask.ref} to {node_name}: {verdict.reason}")
            assert node.pool is not None
            pool = snapshot.pools[node.pool]
            gpus = frozenset(verdict.choice.gpus)
            del judge, snapshot  # a live snapshot makes the cache copy its node maps to assume
            try:
                state.assume(
                    uid=ask.uid,
                    namespace=ask.namespace,
                    name=ask.name,
                    node=node_name,
                    gpus=gpus,
                    resource=pool.resource,
                )
            except cache.AssumeConflictError:
                continue
            return Bound(
                node=node_name,
                gpus=verdict.choice.gpus,
                numa=verbs.numa_of(node, gpus),
                pool=pool.name,
                level=verdict.choice.level,
            )
    raise BindError(f"cannot bind {ask.ref} to {node_name}: its free GPUs kept changing")


def bind(
    args: extender_wire.ExtenderBindingArgs,
    *,
    state: cache.ClusterCache,
    placer: verbs.Placer,
    writer: PodWriter,
) -> Bound:
    """Bind the pod, recording its GPUs; raises :class:`BindError` with a readable reason."""
    ask = _ask(args, state, writer)
    bound = choose_and_assume(ask=ask, node_name=args.node, state=state, placer=placer)
    bound = dataclasses.replace(bound, planned=ask.planned_node)
    try:
        _write_binding(args, writer, annotations=binding_annotations(bound))
    except BindError:
        state.forget(ask.uid)
        raise
    return bound


def binding_annotations(bound: Bound) -> dict[str, str]:
    """The annotations the Binding carries onto the pod: GPUs, NUMA node and pool."""
    notes = {names.GPUS_ANNOTATION: pods.format_gpus(bound.gpus)}
    if bound.numa is not None:
        notes[names.NUMA_ANNOTATION] = str(bound.numa)
    if bound.pool is not None:
        notes[names.POOL_ANNOTATION] = bound.pool
    return notes


def _write_binding(
    args: extender_wire.ExtenderBindingArgs, writer: PodWriter, *, annotations: Mapping[str, str]
) -> None:
    try:
        writer.bind_pod(
            namespace=args.pod_namespace,
            name=args.pod_name,
            uid=args.pod_uid,
            node=args.node,
            annotations=annotations,
        )
    except Exception as exc:
        raise BindError(
            f"binding {args.pod_namespace}/{args.pod_name} to {args.node}: {exc}"
        ) from exc
