"""A fake NVIDIA device plugin over real gRPC, built on the fake NVML of a real capture.

It serves ``DevicePlugin`` on a unix socket and registers with whatever ``kubelet.sock`` it is
given (the proxy's private one, as NVIDIA's plugin does when its device-plugin directory is the
proxy's). Devices are named by GPU UUID (NVIDIA's default ``DEVICE_ID_STRATEGY=uuid``) and carry
their NUMA node. Its own preference is deliberately naive (must-include devices, then the lowest
indices), so it differs from gpufair's topology-aware choice and a test can tell which won.
``Allocate`` answers ``NVIDIA_VISIBLE_DEVICES`` as NVIDIA's plugin does with the envvar
strategy, and refuses an unknown device.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc

from gpufair.agent import nvml_reader, nvml_topology
from gpufair.agent.kubeletapi.deviceplugin.v1beta1 import api_pb2 as dp
from gpufair.agent.kubeletapi.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc
from gpufair.core import topology
from gpufair.standin import fake_nvml

RESOURCE = "nvidia.com/gpu"


class FakeNvidiaPlugin(dp_grpc.DevicePluginServicer):
    def __init__(self, nvml: fake_nvml.FakeNvml, *, sysfs: pathlib.Path) -> None:
        assert nvml.machine is not None
        facts = nvml_reader.read_facts(nvml, node_root=nvml.machine.write_sysfs(sysfs))
        self.topology: topology.NodeTopology = nvml_topology.to_topology(facts)
        self.uuids = nvml_reader.read_uuids(nvml)
        self.index_of = {uuid: index for index, uuid in self.uuids.items()}
        self.allocations: list[tuple[str, ...]] = []
        self.preference_calls = 0
        self._server: grpc.Server | None = None
        self._stop = threading.Event()

    def device(self, index: int) -> dp.Device:
        numa = self.topology.gpu(index).numa
        info = dp.TopologyInfo(nodes=[dp.NUMANode(ID=numa)]) if numa is not None else None
        return dp.Device(ID=self.uuids[index], health="Healthy", topology=info)

    # -- DevicePlugin --------------------------------------------------------------------------

    def GetDevicePluginOptions(  # noqa: N802
        self, request: dp.Empty, context: grpc.ServicerContext
    ) -> dp.DevicePluginOptions:
        return dp.DevicePluginOptions(get_preferred_allocation_available=True)

    def ListAndWatch(  # noqa: N802
        self, request: dp.Empty, context: grpc.ServicerContext
    ) -> Iterator[dp.ListAndWatchResponse]:
        yield dp.ListAndWatchResponse(devices=[self.device(i) for i in self.topology.indices])
        while not self._stop.wait(0.1) and context.is_active():
            pass

    def GetPreferredAllocation(  # noqa: N802
        self, request: dp.PreferredAllocationRequest, context: grpc.ServicerContext
    ) -> dp.PreferredAllocationResponse:
        self.preference_calls += 1
        answers = []
        for one in request.container_requests:
            chosen = list(one.must_include_deviceIDs)
            for device in sorted(one.available_deviceIDs, key=self.index_of.__getitem__):
                if len(chosen) < one.allocation_size and device not in chosen:
                    chosen.append(device)
            answers.append(dp.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return dp.PreferredAllocationResponse(container_responses=answers)

    def Allocate(  # noqa: N802
        self, request: dp.AllocateRequest, context: grpc.ServicerContext
    ) -> dp.AllocateResponse:
        answers = []
        for one in request.container_requests:
            unknown = [d for d in one.devices_ids if d not in self.index_of]
            if unknown:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown devices {unknown}")
            self.allocations.append(tuple(one.devices_ids))
            answers.append(
                dp.ContainerAllocateResponse(
                    envs={"NVIDIA_VISIBLE_DEVICES": ",".join(one.devices_ids)}
                )
            )
        return dp.AllocateResponse(container_responses=answers)

    def PreStartContainer(  # noqa: N802
        self, request: dp.PreStartContainerRequest, context: grpc.ServicerContext
    ) -> dp.PreStartContainerResponse:
        return dp.PreStartContainerResponse()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, *, directory: pathlib.Path, endpoint: str = "nvidia-gpu.sock") -> None:
        """Serve on ``directory/endpoint`` and register with ``directory/kubelet.sock``."""
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        dp_grpc.add_DevicePluginServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix://{directory / endpoint}")
        self._server.start()
        with grpc.insecure_channel(f"unix://{directory / 'kubelet.sock'}") as channel:
            dp_grpc.RegistrationStub(channel).Register(
                dp.RegisterRequest(
                    version="v1beta1",
                    endpoint=endpoint,
                    resource_name=RESOURCE,
                    options=dp.DevicePluginOptions(get_preferred_allocation_available=True),
                ),
                timeout=5,
            )

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop(grace=None)
