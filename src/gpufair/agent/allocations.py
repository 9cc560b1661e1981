"""Wires the device-plugin proxy and the PodResources reconciler for ``gpufair agent``.

Both need the node's device IDs (GPU index -> the ID NVIDIA's plugin gives kubelet: the GPU UUID
with its default ``DEVICE_ID_STRATEGY=uuid``, the index with ``index``) and the node's pods from
the API server; this module builds them once and starts both in background threads, beside the
label loop of :mod:`gpufair.agent.runner`. Called by :mod:`gpufair.cli.agent`.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import pathlib
import threading
from collections.abc import Mapping
from typing import Any

from gpufair.agent import deviceplugin, nvml_reader, podresources
from gpufair.api import names
from gpufair.core import allocation
from gpufair.k8s import pods

logger = logging.getLogger(__name__)


class DeviceIdStrategy(enum.StrEnum):
    """How NVIDIA's plugin names devices (its ``--device-id-strategy``)."""

    UUID = "uuid"
    INDEX = "index"


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    node: str
    resource: str
    proxy: bool
    kubelet_dir: pathlib.Path
    upstream_dir: pathlib.Path
    pod_resources_socket: str | None
    interval: float
    strategy: DeviceIdStrategy = DeviceIdStrategy.UUID


def device_ids(strategy: DeviceIdStrategy, nvml: Any = None) -> dict[int, str]:
    """GPU index -> device ID; raises ``nvml_reader.NvmlUnavailableError``/``NvmlQueryError``."""
    uuids = nvml_reader.read_uuids(nvml)
    if strategy is DeviceIdStrategy.INDEX:
        return {index: str(index) for index in uuids}
    return uuids


def is_confirmed(pod: Mapping[str, Any]) -> bool:
    return names.GPUS_CONFIRMED_ANNOTATION in pods.annotations_of(pod)


class Allocations:
    """The proxy and the reconciler of one node, started and stopped together."""

    def __init__(self, *, options: Options, api: podresources.PodApi, ids: Mapping[int, str]):
        self.options = options
        self.api = api
        self.ids = dict(ids)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.proxy: deviceplugin.Proxy | None = None

    def candidates(self) -> list[allocation.Candidate]:
        return deviceplugin.candidates_from_pods(
            self.api.node_pods(self.options.node),
            device_ids=self.ids,
            chosen=pods.chosen_gpus,
            confirmed=is_confirmed,
            shares=self.shares,
        )

    def shares(self, pod: Mapping[str, Any]) -> list[int]:
        """The pod's GPU amounts per app container, in kubelet's admission order; GPUs in
        init containers make them unknown (kubelet may hand those on to app containers)."""
        resource = self.options.resource
        if pods.container_requests(pod, resource, init=True):
            raise ValueError(f"{pods.ref(pod)} requests {resource} in an init container")
        return [amount for _, amount in pods.container_requests(pod, resource)]

    def start(self) -> None:
        if self.options.proxy:
            self.proxy = deviceplugin.Proxy(
                settings=deviceplugin.Settings(
                    resource=self.options.resource,
                    kubelet_dir=self.options.kubelet_dir,
                    upstream_dir=self.options.upstream_dir,
                ),
                candidates=self.candidates,
            )
            self.proxy.start()
            logger.info(
                "device-plugin proxy: NVIDIA's plugin registers on %s/kubelet.sock",
                self.options.upstream_dir,
            )
        if self.options.pod_resources_socket:
            reconciler = podresources.Reconciler(
                api=self.api,
                node=self.options.node,
                resource=self.options.resource,
                device_ids=self.ids,
                list_pod_resources=podresources.pod_resources_lister(
                    self.options.pod_resources_socket
                ),
            )
            thread = threading.Thread(
                target=podresources.run_forever,
                args=(reconciler,),
                kwargs={"interval": self.options.interval, "stop": self._stop},
                name="pod-resources",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self.proxy is not None:
            self.proxy.stop()
        for thread in self._threads:
            thread.join(5)
