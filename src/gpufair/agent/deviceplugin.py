"""The device-plugin proxy: kubelet allocates the GPUs gpufair chose.

kubelet's device manager picks a container's GPUs itself and only asks the device plugin for a
preference (``GetPreferredAllocation``). NVIDIA's plugin prefers by NVLink and knows nothing of
gpufair, so without this proxy the extender's choice is bookkeeping only. The proxy sits between
the two, playing each one's counterpart:

- towards NVIDIA's plugin it is kubelet: it serves the ``Registration`` service on
  ``kubelet.sock`` in a private directory (``upstream_dir``, mounted into NVIDIA's container as
  its ``/var/lib/kubelet/device-plugins``), so NVIDIA's plugin registers with the proxy and
  never with kubelet, unchanged and unconfigured;
- towards kubelet it is the device plugin for the GPU resource: it registers on kubelet's
  ``kubelet.sock`` and serves ``DevicePlugin`` on its own socket, passing ``ListAndWatch``,
  ``Allocate``, ``PreStartContainer`` and the options through, and answering
  ``GetPreferredAllocation`` with :func:`gpufair.core.allocation.prefer` over the node's
  unconfirmed gpufair pods; otherwise with NVIDIA's preference. It never fails that call.

kubelet deletes every socket in its directory when it restarts and recreates ``kubelet.sock``;
:class:`Proxy` notices the new socket (its inode changes) and serves and registers again.
Started by ``gpufair agent --device-plugin-proxy`` (:mod:`gpufair.cli.agent`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from typing import Any

import grpc
import prometheus_client

from gpufair.agent.kubeletapi.deviceplugin.v1beta1 import api_pb2 as dp
from gpufair.agent.kubeletapi.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc
from gpufair.core import allocation

logger = logging.getLogger(__name__)

API_VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
DEFAULT_KUBELET_DIR = pathlib.Path("/var/lib/kubelet/device-plugins")
DEFAULT_UPSTREAM_DIR = pathlib.Path("/var/lib/gpufair/device-plugins")
DEFAULT_ENDPOINT = "gpufair-nvidia-gpu.sock"
CALL_TIMEOUT_SECONDS = 10.0
WATCH_INTERVAL_SECONDS = 1.0

PREFERENCES = prometheus_client.Counter(
    "gpufair_preferred_allocation_total",
    "GetPreferredAllocation answers by the device-plugin proxy, by outcome",
    ["outcome"],
)
REGISTRATIONS = prometheus_client.Counter(
    "gpufair_device_plugin_registrations_total",
    "Registrations of the device-plugin proxy with kubelet (one more after each kubelet restart)",
)

CandidateSource = Callable[[], Sequence[allocation.Candidate]]
"""The node's unconfirmed gpufair pods with their chosen device IDs (read at each call)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    resource: str = "nvidia.com/gpu"
    kubelet_dir: pathlib.Path = DEFAULT_KUBELET_DIR
    upstream_dir: pathlib.Path = DEFAULT_UPSTREAM_DIR
    endpoint: str = DEFAULT_ENDPOINT
    """Name of the proxy's socket in ``kubelet_dir``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Upstream:
    """NVIDIA's plugin as it registered with the proxy."""

    endpoint: str
    options: dp.DevicePluginOptions
    stub: dp_grpc.DevicePluginStub


class UpstreamRegistry(dp_grpc.RegistrationServicer):
    """The ``Registration`` service NVIDIA's plugin registers with (the proxy plays kubelet)."""

    def __init__(
        self, *, directory: pathlib.Path, resource: str, on_change: Callable[[], None]
    ) -> None:
        self._directory = directory
        self._resource = resource
        self._on_change = on_change
        self._lock = threading.Lock()
        self._upstream: Upstream | None = None
        self._channel: grpc.Channel | None = None

    def current(self) -> Upstream | None:
        with self._lock:
            return self._upstream

    def Register(  # noqa: N802 - the gRPC method's name
        self, request: dp.RegisterRequest, context: grpc.ServicerContext
    ) -> dp.Empty:
        if request.version != API_VERSION:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unsupported device plugin API version {request.version!r}; want {API_VERSION}",
            )
        if request.resource_name != self._resource:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"this proxy serves {self._resource}, not {request.resource_name!r}",
            )
        channel = grpc.insecure_channel(f"unix://{self._directory / request.endpoint}")
        upstream = Upstream(
            endpoint=request.endpoint,
            options=request.options,
            stub=dp_grpc.DevicePluginStub(channel),
        )
        with self._lock:
            old, self._channel, self._upstream = self._channel, channel, upstream
        if old is not None:
            old.close()
        logger.info("NVIDIA's device plugin registered on %s", request.endpoint)
        self._on_change()
        return dp.Empty()

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._upstream = None


class ProxyPlugin(dp_grpc.DevicePluginServicer):
    """The ``DevicePlugin`` kubelet talks to: NVIDIA's, except for the preference."""

    def __init__(self, *, upstreams: UpstreamRegistry, candidates: CandidateSource) -> None:
        self._upstreams = upstreams
        self._candidates = candidates

    def _upstream(self, context: grpc.ServicerContext) -> Upstream:
        upstream = self._upstreams.current()
        if upstream is None:
            context.abort(
                grpc.StatusCode.UNAVAILABLE, "NVIDIA's device plugin has not registered yet"
            )
        assert upstream is not None
        return upstream

    def GetDevicePluginOptions(  # noqa: N802
        self, request: dp.Empty, context: grpc.ServicerContext
    ) -> dp.DevicePluginOptions:
        del request  # Empty
        return proxy_options(self._upstream(context).options)

    def ListAndWatch(  # noqa: N802
        self, request: dp.Empty, context: grpc.ServicerContext
    ) -> Iterator[dp.ListAndWatchResponse]:
        stream = self._upstream(context).stub.ListAndWatch(request)
        context.add_callback(lambda: _cancel(stream))
        try:
            yield from stream
        except grpc.RpcError as error:
            if context.is_active():
                context.abort(error.code(), f"NVIDIA's ListAndWatch: {error.details()}")

    def Allocate(  # noqa: N802
        self, request: dp.AllocateRequest, context: grpc.ServicerContext
    ) -> dp.AllocateResponse:
        answer: dp.AllocateResponse = _forward(
            context, self._upstream(context).stub.Allocate, request
        )
        return answer

    def PreStartContainer(  # noqa: N802
        self, request: dp.PreStartContainerRequest, context: grpc.ServicerContext
    ) -> dp.PreStartContainerResponse:
        answer: dp.PreStartContainerResponse = _forward(
            context, self._upstream(context).stub.PreStartContainer, request
        )
        return answer

    def GetPreferredAllocation(  # noqa: N802
        self, request: dp.PreferredAllocationRequest, context: grpc.ServicerContext
    ) -> dp.PreferredAllocationResponse:
        del context  # never fails: no status to set
        candidates = self._read_candidates()
        upstream = self._upstreams.current()
        answers = [
            self._answer(one, candidates=candidates, upstream=upstream)
            for one in request.container_requests
        ]
        return dp.PreferredAllocationResponse(container_responses=answers)

    def _read_candidates(self) -> Sequence[allocation.Candidate]:
        try:
            return self._candidates()
        except Exception:
            logger.exception("reading the node's gpufair pods; answering NVIDIA's preference")
            return ()

    def _answer(
        self,
        request: dp.ContainerPreferredAllocationRequest,
        *,
        candidates: Sequence[allocation.Candidate],
        upstream: Upstream | None,
    ) -> dp.ContainerPreferredAllocationResponse:
        preference = allocation.prefer(
            candidates,
            available=list(request.available_deviceIDs),
            must_include=list(request.must_include_deviceIDs),
            size=request.allocation_size,
        )
        PREFERENCES.labels(outcome=str(preference.outcome)).inc()
        if preference.outcome is allocation.Outcome.GPUFAIR:
            logger.info("preferring %s for %s", ",".join(preference.devices), preference.pod)
            return dp.ContainerPreferredAllocationResponse(deviceIDs=preference.devices)
        if preference.outcome is allocation.Outcome.AMBIGUOUS:
            logger.warning("two unconfirmed gpufair pods fit this request; NVIDIA's preference")
        return dp.ContainerPreferredAllocationResponse(
            deviceIDs=_upstream_preference(upstream, request)
        )


def proxy_options(upstream: dp.DevicePluginOptions) -> dp.DevicePluginOptions:
    """NVIDIA's options, except that the proxy always answers ``GetPreferredAllocation``."""
    return dp.DevicePluginOptions(
        pre_start_required=upstream.pre_start_required, get_preferred_allocation_available=True
    )


def _upstream_preference(
    upstream: Upstream | None, request: dp.ContainerPreferredAllocationRequest
) -> list[str]:
    """NVIDIA's preference; failing that, the must-include devices then the first available."""
    if upstream is not None and upstream.options.get_preferred_allocation_available:
        try:
            answer = upstream.stub.GetPreferredAllocation(
                dp.PreferredAllocationRequest(container_requests=[request]),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            if answer.container_responses:
                return list(answer.container_responses[0].deviceIDs)
        except grpc.RpcError as error:
            logger.warning("NVIDIA's GetPreferredAllocation failed: %s", error)
    chosen = list(dict.fromkeys(request.must_include_deviceIDs))
    for device in sorted(request.available_deviceIDs):
        if len(chosen) >= request.allocation_size:
            break
        if device not in chosen:
            chosen.append(device)
    return chosen


def _cancel(stream: Any) -> None:
    stream.cancel()


def _forward(context: grpc.ServicerContext, call: Callable[..., Any], request: Any) -> Any:
    try:
        return call(request, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        context.abort(error.code(), f"NVIDIA's device plugin: {error.details()}")
        raise  # unreachable: abort raises


Shares = Callable[[Mapping[str, Any]], Sequence[int]]
"""The GPU amounts of a pod's containers in kubelet's admission order (empty: not known)."""


def candidates_from_pods(
    pods: Sequence[Mapping[str, Any]],
    *,
    device_ids: Mapping[int, str],
    chosen: Callable[[Mapping[str, Any]], frozenset[int] | None],
    confirmed: Callable[[Mapping[str, Any]], bool],
    shares: Shares = lambda _pod: (),
) -> list[allocation.Candidate]:
    """The node's unconfirmed gpufair pods, their chosen GPU indices as device IDs; a pod whose
    GPUs several containers request carries its set cut into their shares
    (:func:`gpufair.core.allocation.split`). A pod whose shares cannot be read, or do not add
    up to its set (GPUs in init containers, say), is no candidate: NVIDIA's preference."""
    found = []
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or confirmed(pod):
            continue
        try:
            indices = chosen(pod)
            amounts = list(shares(pod))
        except ValueError:
            continue
        if not indices or not all(index in device_ids for index in indices):
            continue
        devices = frozenset(device_ids[index] for index in indices)
        try:
            parts = allocation.split(devices, amounts) if len(amounts) > 1 else ()
        except ValueError:
            continue
        if len(amounts) == 1 and amounts[0] != len(devices):
            continue
        metadata = pod.get("metadata") or {}
        found.append(
            allocation.Candidate(
                pod=f"{metadata.get('namespace')}/{metadata.get('name')}",
                devices=devices,
                parts=parts,
            )
        )
    return found


class Proxy:
    """Serves both sides and keeps the proxy registered with kubelet across its restarts."""

    def __init__(self, *, settings: Settings, candidates: CandidateSource) -> None:
        self.settings = settings
        self._changed = threading.Event()
        self.upstreams = UpstreamRegistry(
            directory=settings.upstream_dir,
            resource=settings.resource,
            on_change=self._changed.set,
        )
        self._plugin = ProxyPlugin(upstreams=self.upstreams, candidates=candidates)
        self._upstream_server: grpc.Server | None = None
        self._server: grpc.Server | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.registered = threading.Event()

    @property
    def socket(self) -> pathlib.Path:
        return self.settings.kubelet_dir / self.settings.endpoint

    def start(self) -> None:
        """Serve ``Registration`` for NVIDIA's plugin, then watch kubelet in the background."""
        self.settings.upstream_dir.mkdir(parents=True, exist_ok=True)
        self._upstream_server = _serve(
            self.settings.upstream_dir / KUBELET_SOCKET,
            lambda server: dp_grpc.add_RegistrationServicer_to_server(self.upstreams, server),
        )
        self._thread = threading.Thread(target=self._loop, name="device-plugin-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(5)
        for server in (self._server, self._upstream_server):
            if server is not None:
                server.stop(grace=None)
        self.upstreams.close()

    def _loop(self) -> None:
        """Register when NVIDIA's plugin (re)registers or kubelet recreates its socket."""
        seen: tuple[int, int] | None = None
        while not self._stopping.is_set():
            kubelet_socket = _identity(self.settings.kubelet_dir / KUBELET_SOCKET)
            upstream_changed = self._changed.is_set()
            if kubelet_socket is None:
                self.registered.clear()
            elif self.upstreams.current() is not None and (
                kubelet_socket != seen
                or upstream_changed
                or not self.registered.is_set()
                or not self.socket.exists()  # kubelet removed it: it restarted
            ):
                self._changed.clear()
                if self._serve_and_register():
                    seen = kubelet_socket
            self._changed.wait(WATCH_INTERVAL_SECONDS)

    def _serve_and_register(self) -> bool:
        if self._server is not None:
            self._server.stop(grace=None)
        self._server = _serve(
            self.socket,
            lambda server: dp_grpc.add_DevicePluginServicer_to_server(self._plugin, server),
        )
        upstream = self.upstreams.current()
        assert upstream is not None
        try:
            with grpc.insecure_channel(
                f"unix://{self.settings.kubelet_dir / KUBELET_SOCKET}"
            ) as channel:
                dp_grpc.RegistrationStub(channel).Register(
                    dp.RegisterRequest(
                        version=API_VERSION,
                        endpoint=self.settings.endpoint,
                        resource_name=self.settings.resource,
                        options=proxy_options(upstream.options),
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
        except grpc.RpcError as error:
            logger.warning("registering %s with kubelet failed: %s", self.settings.resource, error)
            self.registered.clear()
            return False
        REGISTRATIONS.inc()
        logger.info("registered %s with kubelet on %s", self.settings.resource, self.socket)
        self.registered.set()
        return True


def _serve(path: pathlib.Path, add: Callable[[grpc.Server], None]) -> grpc.Server:
    if path.exists() or path.is_symlink():
        path.unlink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    add(server)
    server.add_insecure_port(f"unix://{path}")
    server.start()
    return server


def _identity(path: pathlib.Path) -> tuple[int, int] | None:
    """Inode and change time: a recreated socket differs even where the inode is reused."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_ctime_ns
