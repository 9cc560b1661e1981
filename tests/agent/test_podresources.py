"""The PodResources reconciler against the kubelet stand-in's PodResources v1 over real gRPC."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from gpufair.agent import podresources
from gpufair.api import names
from gpufair.core import allocation
from gpufair.k8s import pods
from gpufair.standin import devicemanager

RESOURCE = "nvidia.com/gpu"
UUIDS = {index: f"GPU-{index:04d}" for index in range(8)}


class FakePodApi:
    def __init__(self, pods_on_node: list[dict[str, Any]]) -> None:
        self.pods = pods_on_node
        self.events: list[tuple[str, str, str]] = []

    def node_pods(self, node: str) -> Sequence[Mapping[str, Any]]:
        return [pod for pod in self.pods if pod["spec"]["nodeName"] == node]

    def annotate(self, pod: Mapping[str, Any], annotations: Mapping[str, str]) -> None:
        pod["metadata"].setdefault("annotations", {}).update(annotations)  # type: ignore[index]

    def warn(self, pod: Mapping[str, Any], *, reason: str, message: str) -> None:
        self.events.append((pods.ref(pod), reason, message))


def pod(name: str, *, chosen: str | None, confirmed: str | None = None) -> dict[str, Any]:
    notes = {}
    if chosen is not None:
        notes[names.GPUS_ANNOTATION] = chosen
    if confirmed is not None:
        notes[names.GPUS_CONFIRMED_ANNOTATION] = confirmed
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": f"uid-{name}",
            "annotations": notes,
        },
        "spec": {"nodeName": "gpu-1"},
    }


@pytest.fixture
def kubelet() -> Iterator[tuple[devicemanager.DeviceManager, pathlib.Path]]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="gf15-", dir="/tmp"))
    manager = devicemanager.DeviceManager(root / "device-plugins")
    manager.serve_pod_resources(root / "pod-resources.sock")
    yield manager, root / "pod-resources.sock"
    manager.stop()
    shutil.rmtree(root, ignore_errors=True)


def hold(manager: devicemanager.DeviceManager, name: str, indices: set[int]) -> None:
    container = devicemanager.Container("team-a", name, f"uid-{name}", "main")
    manager.checkpoint[container] = (RESOURCE, frozenset(UUIDS[i] for i in indices))


@pytest.mark.parametrize(
    ("chosen", "confirmed", "held", "verdict", "written", "events"),
    [
        pytest.param("4,5", None, {4, 5}, allocation.Verdict.CONFIRMED, True, 0, id="as-chosen"),
        pytest.param("4,5", None, {0, 1}, allocation.Verdict.MISMATCH, True, 1, id="corrected"),
        pytest.param(None, None, {3}, allocation.Verdict.UNRECORDED, True, 0, id="not-by-bind"),
        pytest.param("4,5", "4,5", {4, 5}, allocation.Verdict.CONFIRMED, False, 0, id="settled"),
        pytest.param("x", None, {2}, allocation.Verdict.UNRECORDED, True, 0, id="bad-annotation"),
    ],
)
def test_reconcile_writes_what_kubelet_allocated(
    kubelet: tuple[devicemanager.DeviceManager, pathlib.Path],
    chosen: str | None,
    confirmed: str | None,
    held: set[int],
    verdict: allocation.Verdict,
    written: bool,
    events: int,
) -> None:
    manager, socket = kubelet
    hold(manager, "train", held)
    api = FakePodApi([pod("train", chosen=chosen, confirmed=confirmed), pod("idle", chosen="7")])
    before = podresources.MISMATCHES.labels(node="gpu-1")._value.get()
    reconciler = podresources.Reconciler(
        api=api,
        node="gpu-1",
        resource=RESOURCE,
        device_ids=UUIDS,
        list_pod_resources=podresources.pod_resources_lister(str(socket)),
    )
    [outcome] = reconciler.reconcile_once()
    assert (outcome.pod, outcome.check.verdict, outcome.written) == (
        "team-a/train",
        verdict,
        written,
    )
    assert pods.bound_gpus(api.pods[0]) == frozenset(held)
    if written:
        uuids = api.pods[0]["metadata"]["annotations"][names.GPU_UUIDS_ANNOTATION]
        assert uuids == ",".join(UUIDS[i] for i in sorted(held))
    assert len(api.events) == events
    assert podresources.MISMATCHES.labels(node="gpu-1")._value.get() == before + events
    assert names.GPUS_CONFIRMED_ANNOTATION not in api.pods[1]["metadata"]["annotations"]
    assert reconciler.reconcile_once()[0].written is False, "a second pass changes nothing"


def test_a_pod_whose_containers_share_its_gpus_is_confirmed_with_their_union(
    kubelet: tuple[devicemanager.DeviceManager, pathlib.Path],
) -> None:
    manager, socket = kubelet
    for container, indices in (("learner", {4, 5}), ("actor", {6}), ("logger", set())):
        manager.checkpoint[devicemanager.Container("team-a", "split", "uid-split", container)] = (
            RESOURCE,
            frozenset(UUIDS[i] for i in indices),
        )
    api = FakePodApi([pod("split", chosen="4,5,6")])
    reconciler = podresources.Reconciler(
        api=api,
        node="gpu-1",
        resource=RESOURCE,
        device_ids=UUIDS,
        list_pod_resources=podresources.pod_resources_lister(str(socket)),
    )
    [outcome] = reconciler.reconcile_once()
    assert outcome.check.verdict is allocation.Verdict.CONFIRMED
    assert pods.confirmed_gpus(api.pods[0]) == {4, 5, 6}
    assert api.events == []
