"""The bind verb: choose the GPUs, assume them, create the binding that records them.

kube-scheduler skips prioritize when only one node passed filter, so bind never relies on an
earlier verb: it chooses the GPU set itself from the node's current free GPUs. Deciding and
acting are separate steps: under the node's lock the GPUs are chosen and assumed in the cache
(so two concurrent binds to one node never get the same GPU), then, outside the lock, the
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
from gpufair.k8s import pods
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
    """What bind recorded on the pod (``None`` fields for a pod without a GPU request)."""

    node: str
    gpus: tuple[int, ...] = ()
    numa: int | None = None
    pool: str | None = None
    level: placement.LinkLevel | None = None


_CONFLICT_RETRIES = 3


def _ask(
    args: extender_wire.ExtenderBindingArgs, state: cache.ClusterCache, writer: PodWriter
) -> verbs.PodAsk:
    known = state.pod(args.pod_uid) if args.pod_uid else None
    if known is not None and known.name == args.pod_name:
        return verbs.PodAsk(
            uid=known.uid, namespace=known.namespace, name=known.name, requests=known.requests
        )
    pod = writer.read_pod(args.pod_namespace, args.pod_name)
    if pod is None:
        raise BindError(f"pod {args.pod_namespace}/{args.pod_name} not found")
    if args.pod_uid and pods.uid(pod) and pods.uid(pod) != args.pod_uid:
        raise BindError(
            f"pod {args.pod_namespace}/{args.pod_name} has UID {pods.uid(pod)}, not {args.pod_uid}"
        )
    try:
        return verbs.read_pod(pod)
    except verbs.CannotJudgeError as exc:
        raise BindError(str(exc)) from None


def choose_and_assume(
    *,
    ask: verbs.PodAsk,
    node_name: str,
    state: cache.ClusterCache,
    placer: verbs.Placer,
) -> Bound:
    """Under the node's lock: pick the GPU set on the node's current free GPUs and assume it."""
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
    snapshot = state.snapshot()
    if ask.requests and not snapshot.synced:
        raise BindError(verbs.NOT_SYNCED)
    if not verbs.wants_gpus(ask, snapshot):
        _write_binding(args, writer, annotations={})
        return Bound(node=args.node)
    bound = choose_and_assume(ask=ask, node_name=args.node, state=state, placer=placer)
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
