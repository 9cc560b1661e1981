"""A stand-in for kubelet's device manager over real gRPC on unix sockets.

It behaves as kubelet documents and as its ``devicemanager`` does (``manager.go``,
``devicesToAllocate``):

- serves ``Registration`` on ``<dir>/kubelet.sock``; a plugin registers with version
  ``v1beta1``, its socket name (relative to ``<dir>``), resource name and options; kubelet then
  dials the plugin and keeps its ``ListAndWatch`` stream open, taking healthy devices from it;
- for a container it first reuses devices (``must_include``), takes what is still needed from
  ``healthy - in use``, and, when the pod has a NUMA hint (Topology Manager), from the aligned
  devices first; it asks ``GetPreferredAllocation`` only when the plugin says it is available and
  there is a choice (``needed < len(aligned)``, or no aligned set), over ``aligned | allocated``
  or ``available | allocated``; it keeps the preferred devices that are legal
  (``preferred & aligned`` / ``available``) and fills the rest itself, in no promised order;
  a failed ``GetPreferredAllocation`` fails the admission; then it calls ``Allocate``;
- on restart it removes every socket in its directory (plugins must notice ``kubelet.sock``
  being recreated and register again), keeps its checkpoint of allocations, and calls
  ``Allocate`` again with the checkpointed devices when a container is restarted;
- its PodResources ``List`` reports each container's devices from the same books.
"""

from __future__ import annotations

import dataclasses
import pathlib
import random
import threading
import time
from concurrent import futures

import grpc

from gpufair.agent.kubeletapi.deviceplugin.v1beta1 import api_pb2 as dp
from gpufair.agent.kubeletapi.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc
from gpufair.agent.kubeletapi.podresources.v1 import api_pb2 as pr
from gpufair.agent.kubeletapi.podresources.v1 import api_pb2_grpc as pr_grpc


class AdmissionError(Exception):
    """kubelet would reject the pod (``UnexpectedAdmissionError``)."""


@dataclasses.dataclass
class Endpoint:
    resource: str
    options: dp.DevicePluginOptions
    channel: grpc.Channel
    stub: dp_grpc.DevicePluginStub
    stream: object = None


@dataclasses.dataclass(frozen=True)
class Container:
    namespace: str
    pod: str
    uid: str
    name: str


class DeviceManager(dp_grpc.RegistrationServicer, pr_grpc.PodResourcesListerServicer):
    def __init__(self, directory: pathlib.Path, *, seed: int = 0) -> None:
        self.directory = directory
        self.endpoints: dict[str, Endpoint] = {}
        self.healthy: dict[str, set[str]] = {}
        self.numa: dict[str, int] = {}
        self.checkpoint: dict[Container, tuple[str, frozenset[str]]] = {}
        self.allocate_calls: list[tuple[str, ...]] = []
        self.preference_errors: list[str] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._pod_resources: grpc.Server | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        dp_grpc.add_RegistrationServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix://{self.directory / 'kubelet.sock'}")
        self._server.start()

    def serve_pod_resources(self, socket: pathlib.Path) -> None:
        self._pod_resources = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pr_grpc.add_PodResourcesListerServicer_to_server(self, self._pod_resources)
        self._pod_resources.add_insecure_port(f"unix://{socket}")
        self._pod_resources.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
        if self._pod_resources is not None:
            self._pod_resources.stop(grace=None)
        with self._lock:
            for endpoint in self.endpoints.values():
                endpoint.channel.close()
            self.endpoints.clear()

    def restart(self) -> None:
        """Stop, remove every socket in the directory, start again; the checkpoint survives."""
        if self._server is not None:
            self._server.stop(grace=None)
        with self._lock:
            for endpoint in self.endpoints.values():
                endpoint.channel.close()
            self.endpoints.clear()
            self.healthy.clear()
        for path in self.directory.iterdir():
            if path.is_socket():
                path.unlink()
        self.start()

    # -- Registration --------------------------------------------------------------------------

    def Register(  # noqa: N802
        self, request: dp.RegisterRequest, context: grpc.ServicerContext
    ) -> dp.Empty:
        if request.version != "v1beta1":
            context.abort(grpc.StatusCode.UNKNOWN, f"unsupported version {request.version!r}")
        if "/" in request.endpoint:
            context.abort(
                grpc.StatusCode.UNKNOWN, "endpoint must be a socket name in the directory"
            )
        channel = grpc.insecure_channel(f"unix://{self.directory / request.endpoint}")
        endpoint = Endpoint(
            resource=request.resource_name,
            options=request.options,
            channel=channel,
            stub=dp_grpc.DevicePluginStub(channel),
        )
        with self._lock:
            old = self.endpoints.get(request.resource_name)
            self.endpoints[request.resource_name] = endpoint
        if old is not None:
            old.channel.close()
        threading.Thread(target=self._list_and_watch, args=(endpoint,), daemon=True).start()
        return dp.Empty()

    def _list_and_watch(self, endpoint: Endpoint) -> None:
        try:
            for answer in endpoint.stub.ListAndWatch(dp.Empty()):
                with self._lock:
                    self.healthy[endpoint.resource] = {
                        d.ID for d in answer.devices if d.health == "Healthy"
                    }
                    for device in answer.devices:
                        if device.topology.nodes:
                            self.numa[device.ID] = device.topology.nodes[0].ID
        except grpc.RpcError:
            with self._lock:
                if self.endpoints.get(endpoint.resource) is endpoint:
                    self.healthy.pop(endpoint.resource, None)

    def wait_for_devices(self, resource: str, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.healthy.get(resource, ())) >= count:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"{resource}: fewer than {count} healthy devices after {timeout}s")

    # -- admission -----------------------------------------------------------------------------

    def in_use(self, resource: str) -> set[str]:
        return {
            device
            for kind, devices in self.checkpoint.values()
            if kind == resource
            for device in devices
        }

    def admit(
        self,
        container: Container,
        *,
        resource: str,
        count: int,
        numa_hint: frozenset[int] | None = None,
        reusable: frozenset[str] = frozenset(),
    ) -> frozenset[str]:
        """Choose and allocate ``count`` devices for the container (``devicesToAllocate``)."""
        with self._lock:
            endpoint = self.endpoints.get(resource)
            healthy = set(self.healthy.get(resource, ()))
            in_use = self.in_use(resource)
        if endpoint is None:
            raise AdmissionError(f"no device plugin registered for {resource}")
        allocated: set[str] = set()
        needed = count

        def take(devices: set[str]) -> bool:
            nonlocal needed
            pool = sorted(devices - allocated)
            self._random.shuffle(pool)  # Go's set iteration: no promised order
            for device in pool:
                if needed == 0:
                    break
                allocated.add(device)
                needed -= 1
            return needed == 0

        if not take(set(reusable)):
            available = healthy - in_use
            if len(available) < needed:
                raise AdmissionError(
                    f"requested number of devices unavailable for {resource}. "
                    f"Requested: {needed}, Available: {len(available)}"
                )
            aligned = (
                {d for d in available if self.numa.get(d) in numa_hint}
                if numa_hint is not None
                else set()
            )
            if aligned and needed < len(aligned):
                preferred = self._preferred(endpoint, aligned | allocated, allocated, count)
                if not take(preferred & aligned):
                    take(aligned)
            elif not take(aligned):
                preferred = self._preferred(endpoint, available | allocated, allocated, count)
                if not take(preferred & available):
                    take(available - aligned)
        chosen = frozenset(allocated)
        self._allocate(endpoint, chosen)
        with self._lock:
            self.checkpoint[container] = (resource, chosen)
        return chosen

    def _preferred(
        self, endpoint: Endpoint, available: set[str], must_include: set[str], size: int
    ) -> set[str]:
        if not endpoint.options.get_preferred_allocation_available:
            return set()
        try:
            answer = endpoint.stub.GetPreferredAllocation(
                dp.PreferredAllocationRequest(
                    container_requests=[
                        dp.ContainerPreferredAllocationRequest(
                            available_deviceIDs=sorted(available),
                            must_include_deviceIDs=sorted(must_include),
                            allocation_size=size,
                        )
                    ]
                ),
                timeout=10,
            )
        except grpc.RpcError as error:
            self.preference_errors.append(str(error.details()))
            raise AdmissionError(f"GetPreferredAllocation failed: {error.details()}") from error
        return set(answer.container_responses[0].deviceIDs)

    def _allocate(self, endpoint: Endpoint, devices: frozenset[str]) -> dp.AllocateResponse:
        try:
            answer: dp.AllocateResponse = endpoint.stub.Allocate(
                dp.AllocateRequest(
                    container_requests=[dp.ContainerAllocateRequest(devices_ids=sorted(devices))]
                ),
                timeout=10,
            )
        except grpc.RpcError as error:
            raise AdmissionError(f"Allocate failed: {error.details()}") from error
        self.allocate_calls.append(tuple(sorted(devices)))
        return answer

    def restart_container(self, container: Container) -> dp.AllocateResponse:
        """A container restarts: Allocate again with its checkpointed devices."""
        with self._lock:
            resource, devices = self.checkpoint[container]
            endpoint = self.endpoints.get(resource)
        if endpoint is None:
            raise AdmissionError(f"no device plugin registered for {resource}")
        return self._allocate(endpoint, devices)

    def remove(self, container: Container) -> None:
        with self._lock:
            self.checkpoint.pop(container, None)

    # -- PodResources v1 -----------------------------------------------------------------------

    def GetAllocatableResources(  # noqa: N802
        self, request: pr.AllocatableResourcesRequest, context: grpc.ServicerContext
    ) -> pr.AllocatableResourcesResponse:
        with self._lock:
            healthy = {resource: sorted(ids) for resource, ids in self.healthy.items()}
        return pr.AllocatableResourcesResponse(
            devices=[
                pr.ContainerDevices(resource_name=resource, device_ids=ids)
                for resource, ids in sorted(healthy.items())
            ]
        )

    def Get(  # noqa: N802
        self, request: pr.GetPodResourcesRequest, context: grpc.ServicerContext
    ) -> pr.GetPodResourcesResponse:
        listed = self.List(pr.ListPodResourcesRequest(), context)
        for pod in listed.pod_resources:
            if (pod.namespace, pod.name) == (request.pod_namespace, request.pod_name):
                return pr.GetPodResourcesResponse(pod_resources=pod)
        context.abort(
            grpc.StatusCode.NOT_FOUND,
            f"pod {request.pod_namespace}/{request.pod_name} not found",
        )
        raise AssertionError("unreachable: abort raises")

    def List(  # noqa: N802
        self, request: pr.ListPodResourcesRequest, context: grpc.ServicerContext
    ) -> pr.ListPodResourcesResponse:
        with self._lock:
            books = dict(self.checkpoint)
        pods: dict[tuple[str, str], pr.PodResources] = {}
        for container, (resource, devices) in sorted(books.items(), key=lambda kv: kv[0].uid):
            pod = pods.setdefault(
                (container.namespace, container.pod),
                pr.PodResources(name=container.pod, namespace=container.namespace),
            )
            pod.containers.append(
                pr.ContainerResources(
                    name=container.name,
                    devices=[
                        pr.ContainerDevices(resource_name=resource, device_ids=sorted(devices))
                    ],
                )
            )
        return pr.ListPodResourcesResponse(pod_resources=list(pods.values()))
