"""The GPU nodes' side of the stand-in cluster: kubelet allocates each container's GPUs.

The stand-in API server's own kubelet only marks pods ``Running``; nothing there allocates
devices, so no pod would ever carry ``gpufair.dev/gpus-confirmed``. This process gives every GPU
node of the demo what a real GPU node runs, over real gRPC on unix sockets, all nodes in one
process (threads):

- kubelet's device manager (:mod:`gpufair.standin.devicemanager`) with its PodResources API;
- NVIDIA's device plugin (:mod:`gpufair.standin.nvidia_plugin`) on the fake NVML of the node's
  real ``nvidia-smi topo -m`` capture, registered with the proxy as it is on a real node;
- the agent's own device-plugin proxy and PodResources reconciler
  (:class:`gpufair.agent.allocations.Allocations`), calling the API server as the agent
  (``$KUBECONFIG``), and the node label ``gpufair.dev/device-plugin-proxy=true`` the agent sets
  while its proxy runs;
- kubelet's admission: a loop that lists the pods bound to these nodes, admits every GPU
  container of a new one through the device manager (in spec order, as kubelet does), frees
  the devices of pods that finished or vanished, and marks a pod ``Failed``
  (``UnexpectedAdmissionError``) when its GPUs cannot be allocated.

Run by ``gpufair demo`` as ``python -m gpufair.standin.gpunodes --api-url URL --node
NAME=CAPTURE ...``; logs ``gpunodes: ready`` once every proxy is registered with its kubelet.
SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pathlib
import shutil
import signal
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import prometheus_client

from gpufair.agent import allocations, podresources, publisher
from gpufair.agent.kubeletapi.podresources.v1 import api_pb2 as pr
from gpufair.api import names
from gpufair.core import labels, topology_matrix
from gpufair.k8s import pods
from gpufair.standin import devicemanager, fake_nvml, kube, nvidia_plugin

logger = logging.getLogger("gpufair.standin.gpunodes")

READY_LINE = "gpunodes: ready"
RESOURCE = names.DEFAULT_GPU_RESOURCE
FINISHED = ("Succeeded", "Failed")


@dataclasses.dataclass(frozen=True)
class NodeArg:
    name: str
    capture: pathlib.Path


class GpuNode:
    """One node: kubelet's device manager, NVIDIA's plugin, the agent's proxy and reconciler."""

    def __init__(
        self, root: pathlib.Path, *, spec: NodeArg, api: podresources.PodApi, interval: float
    ) -> None:
        self.name = spec.name
        root.mkdir(parents=True)
        self.kubelet = devicemanager.DeviceManager(root / "dp")
        machine = fake_nvml.machine_from_capture(topology_matrix.parse(spec.capture.read_text()))
        self.nvidia = nvidia_plugin.FakeNvidiaPlugin(
            fake_nvml.FakeNvml(machine), sysfs=root / "sys"
        )
        self.agent = allocations.Allocations(
            options=allocations.Options(
                node=spec.name,
                resource=RESOURCE,
                proxy=True,
                kubelet_dir=root / "dp",
                upstream_dir=root / "nv",
                pod_resources_socket=str(root / "pr.sock"),
                interval=interval,
            ),
            api=api,
            ids=self.nvidia.uuids,
        )
        self._root = root

    def start(self, *, timeout: float = 20.0) -> None:
        self.kubelet.start()
        self.kubelet.serve_pod_resources(self._root / "pr.sock")
        self.agent.start()
        self.nvidia.start(directory=self._root / "nv")
        proxy = self.agent.proxy
        assert proxy is not None
        if not proxy.registered.wait(timeout):
            raise RuntimeError(f"{self.name}: the proxy did not register with kubelet")
        self.kubelet.wait_for_devices(RESOURCE, len(self.nvidia.uuids), timeout=timeout)

    def stop(self) -> None:
        self.agent.stop()
        self.nvidia.stop()
        self.kubelet.stop()

    def kubelet_pod_resources(self) -> Callable[[], pr.ListPodResourcesResponse]:
        """A ``List`` call on this node's PodResources socket (what the reconciler reads)."""
        return podresources.pod_resources_lister(str(self._root / "pr.sock"))


class Kubelet:
    """kubelet's admission of GPU containers on the stand-in's GPU nodes (one loop, all nodes)."""

    def __init__(self, api: kube.Api, nodes: Mapping[str, GpuNode]) -> None:
        self.api = api
        self.nodes = dict(nodes)
        self.admitted: dict[str, tuple[str, list[devicemanager.Container]]] = {}
        """pod uid -> (node, its admitted containers)."""

    def sync(self, listed: Iterable[Mapping[str, Any]]) -> None:
        """Free what finished or vanished first, then admit what is new (one consistent list)."""
        live: dict[str, Mapping[str, Any]] = {}
        for pod in listed:
            node = (pod.get("spec") or {}).get("nodeName")
            phase = (pod.get("status") or {}).get("phase")
            if node in self.nodes and phase not in FINISHED and pods.uid(pod):
                live[pods.uid(pod)] = pod
        for uid in [uid for uid in self.admitted if uid not in live]:
            node, containers = self.admitted.pop(uid)
            for container in containers:
                self.nodes[node].kubelet.remove(container)
        for uid, pod in live.items():
            if uid not in self.admitted:
                self._admit(pod)

    def _admit(self, pod: Mapping[str, Any]) -> None:
        node_name = str(pod["spec"]["nodeName"])
        node = self.nodes[node_name]
        admitted: list[devicemanager.Container] = []
        self.admitted[pods.uid(pod)] = (node_name, admitted)
        try:
            requests = pods.container_requests(pod, RESOURCE)
        except pods.PodError as error:
            logger.warning("%s: %s", pods.ref(pod), error)
            return
        for name, count in requests:
            container = devicemanager.Container(
                pods.namespace(pod), pods.name(pod), pods.uid(pod), name
            )
            try:
                got = node.kubelet.admit(container, resource=RESOURCE, count=count)
            except devicemanager.AdmissionError as error:
                logger.warning("%s on %s: admission refused: %s", pods.ref(pod), node_name, error)
                self._fail(pod, str(error))
                return
            admitted.append(container)
            indices = sorted(node.nvidia.index_of[device] for device in got)
            logger.info("%s/%s on %s: GPUs %s", pods.ref(pod), name, node_name, indices)

    def _fail(self, pod: Mapping[str, Any], message: str) -> None:
        patch = {
            "status": {
                "phase": "Failed",
                "reason": "UnexpectedAdmissionError",
                "message": f"Allocate failed due to {message}",
            }
        }
        try:
            self.api.merge_patch(
                kube.pod_path(pods.namespace(pod), pods.name(pod)) + "/status", patch
            )
        except kube.ApiError as error:
            logger.warning("could not mark %s Failed: %s", pods.ref(pod), error)


def label_proxy_nodes(core: Any, nodes: Iterable[str]) -> None:
    """``gpufair.dev/device-plugin-proxy=true``, as the agent labels a node while its proxy runs."""
    for node in nodes:
        core.patch_node(node, {"metadata": {"labels": {labels.PROXY_LABEL: "true"}}})


def parse_node(text: str) -> NodeArg:
    name, sep, capture = text.partition("=")
    if not sep or not name or not capture:
        raise argparse.ArgumentTypeError(f"want NAME=CAPTURE, got {text!r}")
    path = pathlib.Path(capture)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{name}: no capture file {path}")
    return NodeArg(name, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gpufair.standin.gpunodes")
    parser.add_argument("--api-url", required=True, help="the stand-in API server (as kubelet)")
    parser.add_argument(
        "--node",
        type=parse_node,
        action="append",
        required=True,
        metavar="NAME=CAPTURE",
        help="a GPU node and its nvidia-smi topo -m capture (repeat)",
    )
    parser.add_argument("--reconcile-interval", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between pod lists")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="the agents' metrics on 127.0.0.1 (0: off)"
    )
    return parser.parse_args(argv)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: types.FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()
    _stop_on_signals(stop)
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr="127.0.0.1")
    core = publisher.connect()  # the agent's identity, from $KUBECONFIG
    agent_api = podresources.KubePodApi(core)
    # Short socket paths: a unix socket path has at most 107 bytes.
    root = pathlib.Path(tempfile.mkdtemp(prefix="gfn-", dir="/tmp"))
    nodes: dict[str, GpuNode] = {}
    api = kube.Api(args.api_url)
    try:
        for index, spec in enumerate(args.node):
            nodes[spec.name] = GpuNode(
                root / str(index), spec=spec, api=agent_api, interval=args.reconcile_interval
            )
            nodes[spec.name].start()
        label_proxy_nodes(core, nodes)
        logger.info("%s: %d nodes (%s)", READY_LINE, len(nodes), ", ".join(nodes))
        kubelet = Kubelet(api, nodes)
        while not stop.is_set():
            try:
                kubelet.sync(api.items("/api/v1/pods"))
            except Exception:  # the API server is going away, or a bug: log and go on
                logger.exception("admitting pods")
            stop.wait(args.poll)
    finally:
        for node in nodes.values():
            node.stop()
        api.close()
        shutil.rmtree(root, ignore_errors=True)
    logger.info("gpunodes: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
