"""The PodResources reconciler: gpufair's books say which GPUs each pod really got.

Bind records the GPUs gpufair chose; kubelet allocates the container's GPUs itself (following
the device-plugin proxy's preference when it runs, NVIDIA's otherwise). This reconciler reads
kubelet's PodResources API (``v1`` ``List`` on ``/var/lib/kubelet/pod-resources/kubelet.sock``)
on an interval and writes what kubelet allocated onto each GPU pod of the node
(``gpufair.dev/gpus-confirmed`` indices, ``gpufair.dev/gpu-uuids`` device IDs). The extender and
the operator trust the confirmed annotation over bind's (:func:`gpufair.k8s.pods.bound_gpus`),
and a confirmed pod stops being a candidate for the proxy's answer. When kubelet allocated other
GPUs than bind chose, the pod gets a Warning event ``GPUAllocationMismatch`` and
``gpufair_allocation_mismatch_total`` counts it. Started by ``gpufair agent`` with
``--pod-resources-socket`` (:mod:`gpufair.cli.agent`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import grpc
import prometheus_client

from gpufair.agent.kubeletapi.podresources.v1 import api_pb2 as pr
from gpufair.agent.kubeletapi.podresources.v1 import api_pb2_grpc as pr_grpc
from gpufair.api import names
from gpufair.core import allocation
from gpufair.k8s import pods

logger = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
MISMATCH_REASON = "GPUAllocationMismatch"
CALL_TIMEOUT_SECONDS = 10.0

MISMATCHES = prometheus_client.Counter(
    "gpufair_allocation_mismatch_total",
    "GPU pods whose GPUs from kubelet differ from the GPUs gpufair's bind chose",
    ["node"],
)
CONFIRMATIONS = prometheus_client.Counter(
    "gpufair_allocation_confirmed_total",
    "GPU pods whose allocation the agent confirmed from kubelet's PodResources API, by verdict",
    ["node", "verdict"],
)


class PodApi(Protocol):
    """The API calls the reconciler makes (:class:`KubePodApi` against a real API server)."""

    def node_pods(self, node: str) -> Sequence[Mapping[str, Any]]:
        """Pods bound to ``node``."""
        ...

    def annotate(self, pod: Mapping[str, Any], annotations: Mapping[str, str]) -> None: ...

    def warn(self, pod: Mapping[str, Any], *, reason: str, message: str) -> None:
        """Record a Warning event on the pod."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    pod: str
    check: allocation.Check
    written: bool


def allocated_devices(
    response: pr.ListPodResourcesResponse, *, resource: str
) -> dict[tuple[str, str], frozenset[str]]:
    """(namespace, name) -> device IDs of ``resource`` held by any of the pod's containers."""
    held: dict[tuple[str, str], frozenset[str]] = {}
    for pod in response.pod_resources:
        ids = {
            device_id
            for container in pod.containers
            for devices in container.devices
            if devices.resource_name == resource
            for device_id in devices.device_ids
        }
        if ids:
            held[(pod.namespace, pod.name)] = frozenset(ids)
    return held


@dataclasses.dataclass
class Reconciler:
    api: PodApi
    node: str
    resource: str
    device_ids: Mapping[int, str]
    """GPU index -> device ID as NVIDIA's plugin names it (UUID, or the index as text)."""
    list_pod_resources: Callable[[], pr.ListPodResourcesResponse]

    def reconcile_once(self) -> list[Outcome]:
        """Confirm or correct every GPU pod of the node kubelet reports; returns what it did."""
        held = allocated_devices(self.list_pod_resources(), resource=self.resource)
        index_of = {device: index for index, device in self.device_ids.items()}
        outcomes = []
        for pod in self.api.node_pods(self.node):
            key = (pods.namespace(pod), pods.name(pod))
            if key not in held:
                continue  # not admitted yet, or holds no GPU
            unknown = sorted(held[key] - index_of.keys())
            if unknown:
                logger.warning("%s holds devices this node does not know: %s", key, unknown)
                continue
            allocated = frozenset(index_of[device] for device in held[key])
            outcome = self._settle(pod, allocated)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _settle(self, pod: Mapping[str, Any], allocated: frozenset[int]) -> Outcome | None:
        chosen = _read(pods.chosen_gpus, pod)
        confirmed = _read(pods.confirmed_gpus, pod)
        result = allocation.check(chosen=chosen, allocated=allocated)
        if confirmed == allocated:
            return Outcome(pods.ref(pod), result, written=False)
        self.api.annotate(
            pod,
            {
                names.GPUS_CONFIRMED_ANNOTATION: pods.format_gpus(allocated),
                names.GPU_UUIDS_ANNOTATION: ",".join(
                    self.device_ids[index] for index in sorted(allocated)
                ),
            },
        )
        CONFIRMATIONS.labels(node=self.node, verdict=str(result.verdict)).inc()
        if result.verdict is allocation.Verdict.MISMATCH:
            MISMATCHES.labels(node=self.node).inc()
            self.api.warn(pod, reason=MISMATCH_REASON, message=mismatch_message(result))
        return Outcome(pods.ref(pod), result, written=True)


def _read(
    read: Callable[[Mapping[str, Any]], frozenset[int] | None], pod: Mapping[str, Any]
) -> frozenset[int] | None:
    """An annotation's GPUs; a malformed one counts as absent (kubelet's answer replaces it)."""
    try:
        return read(pod)
    except pods.PodError as error:
        logger.warning("%s: %s", pods.ref(pod), error)
        return None


def mismatch_message(result: allocation.Check) -> str:
    allocated = pods.format_gpus(result.allocated)
    chosen = pods.format_gpus(result.chosen or ())
    return (
        f"kubelet allocated GPUs {allocated}, gpufair chose {chosen}; gpufair now counts "
        f"{allocated} (is the device-plugin proxy running on this node?)"
    )


def pod_resources_lister(socket: str) -> Callable[[], pr.ListPodResourcesResponse]:
    """A ``List`` call on kubelet's PodResources socket (one channel, reused)."""
    channel = grpc.insecure_channel(f"unix://{socket}")
    stub = pr_grpc.PodResourcesListerStub(channel)

    def list_pods() -> pr.ListPodResourcesResponse:
        answer: pr.ListPodResourcesResponse = stub.List(
            pr.ListPodResourcesRequest(), timeout=CALL_TIMEOUT_SECONDS
        )
        return answer

    return list_pods


def run_forever(reconciler: Reconciler, *, interval: float, stop: threading.Event) -> None:
    """Reconcile every ``interval`` seconds until ``stop``; errors are logged, never fatal."""
    while not stop.is_set():
        try:
            for outcome in reconciler.reconcile_once():
                if outcome.written:
                    logger.info("%s: %s", outcome.pod, outcome.check.verdict)
        except Exception:
            logger.exception("reconciling GPU allocations from PodResources")
        stop.wait(interval)


class KubePodApi:
    """:class:`PodApi` over a ``kubernetes.client.CoreV1Api``."""

    def __init__(self, core: Any, *, component: str = "gpufair-agent") -> None:
        self.core = core
        self.component = component

    def node_pods(self, node: str) -> Sequence[Mapping[str, Any]]:
        answer = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node}", _preload_content=False
        )
        items: list[Mapping[str, Any]] = json.loads(answer.data).get("items") or []
        return items

    def annotate(self, pod: Mapping[str, Any], annotations: Mapping[str, str]) -> None:
        self.core.patch_namespaced_pod(
            pods.name(pod), pods.namespace(pod), {"metadata": {"annotations": dict(annotations)}}
        )

    def warn(self, pod: Mapping[str, Any], *, reason: str, message: str) -> None:
        from kubernetes import client

        now = datetime.datetime.now(datetime.UTC)
        self.core.create_namespaced_event(
            pods.namespace(pod),
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(generate_name=f"{pods.name(pod)}."),
                involved_object=client.V1ObjectReference(
                    api_version="v1",
                    kind="Pod",
                    name=pods.name(pod),
                    namespace=pods.namespace(pod),
                    uid=pods.uid(pod) or None,
                ),
                reason=reason,
                message=message,
                type="Warning",
                source=client.V1EventSource(component=self.component),
                count=1,
                first_timestamp=now,
                last_timestamp=now,
            ),
        )
