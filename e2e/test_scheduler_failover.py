"""Killing the leading scheduler pod hands binding to the other, with no GPU handed out twice.

The chart runs two gpufair-scheduler pods, each kube-scheduler with its extender beside it on
loopback; kube-scheduler's leader election (a coordination.k8s.io Lease) decides which one
schedules, and the standby's extender keeps its cache warm from its own watches. Here each
"scheduler pod" is a real ``gpufair extender`` process and a scheduler driver that schedules
only while it holds the Lease (renewed every 0.3 s, taken over 1.5 s after the last renewal,
as kube-scheduler's leaseDuration/renewDeadline/retryPeriod do at a smaller scale). The leader
binds the first pods; its extender is killed (SIGKILL) and its driver stops renewing; the
standby takes the Lease and binds the rest on the same node, and every GPU index is held by one
pod only.
"""

from __future__ import annotations

import datetime
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from e2e.harness import processes, scenario
from gpufair.api import names
from gpufair.standin.apiserver import identity as standin_identity

DGX1 = "dgx1-v100-8gpu-mlx5.txt"
LEASE_SECONDS = 1.5
RENEW_EVERY = 0.3


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class SchedulerPod:
    """One gpufair-scheduler pod: an extender process and a driver behind leader election."""

    def __init__(self, name: str, *, stack: scenario.Stack, extender: Any, url: str,
                 namespace: str, k8s: Any) -> None:  # fmt: skip
        import kubernetes

        self.name = name
        self.extender = extender
        self.driver = scenario.scheduler.SchedulerDriver(
            api_url=stack.api_url,
            extender_url=url,
            namespaces=[namespace],
            api_headers=standin_identity.bearer("scheduler"),
        )
        self.leases = kubernetes.client.CoordinationV1Api(k8s.api_client)
        self.namespace = namespace
        self.stop = threading.Event()
        self.led = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _holds_lease(self) -> bool:
        import kubernetes

        body = {
            "metadata": {"name": "gpufair-scheduler"},
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": 2,
                "renewTime": _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        }
        try:
            lease = self.leases.read_namespaced_lease("gpufair-scheduler", self.namespace)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            self.leases.create_namespaced_lease(self.namespace, body)
            return True
        renewed = lease.spec.renew_time
        expired = renewed is None or (_now() - renewed).total_seconds() > LEASE_SECONDS
        if lease.spec.holder_identity != self.name and not expired:
            return False
        body["metadata"]["resourceVersion"] = lease.metadata.resource_version
        try:  # an update with the read resourceVersion: two candidates cannot both win
            self.leases.replace_namespaced_lease("gpufair-scheduler", self.namespace, body)
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def _run(self) -> None:
        while not self.stop.is_set():
            if self._holds_lease():
                self.led.set()
                self.driver.schedule_pending()
            self.stop.wait(RENEW_EVERY)

    def kill(self) -> None:
        """The pod dies: its extender is killed and its kube-scheduler stops renewing."""
        os.kill(self.extender.process.pid, signal.SIGKILL)
        self.stop.set()
        self.thread.join(timeout=10)
        self.driver.close()


def _bound(k8s: Any, namespace: str) -> dict[str, frozenset[int]]:
    held = {}
    for pod in scenario.pods(k8s, namespace):
        notes = pod["metadata"].get("annotations") or {}
        if pod["spec"].get("nodeName") and names.GPUS_ANNOTATION in notes:
            held[pod["metadata"]["name"]] = frozenset(
                int(i) for i in notes[names.GPUS_ANNOTATION].split(",")
            )
    return held


def test_killing_the_leader_hands_binding_to_the_standby(
    stack: scenario.Stack,
    k8s: Any,
    namespace: str,
    cleanup: scenario.Cleanup,
    make_gpu_node: Callable[..., dict[str, Any]],
    run_component: Callable[..., Any],
) -> None:
    pool, tenant, node = scenario.unique("fo"), scenario.unique("tenant"), scenario.unique("n")
    make_gpu_node(node, DGX1, labels={scenario.POOL_LABEL: pool})
    cleanup.apply(scenario.pool_manifest(pool))
    cleanup.apply(scenario.quota_manifest(tenant, namespaces=[namespace], pools=[{"name": pool}]))
    scenario.wait_known(k8s, tenant)

    pods = []
    for name in ("a", "b"):
        port = processes.free_port()
        url = f"http://127.0.0.1:{port}"
        extender = run_component(
            ["extender", "--host", "127.0.0.1", "--port", str(port)],
            name=f"gpufair-extender-{name}",
            ready_url=f"{url}/readyz",
        )
        pods.append(SchedulerPod(name, stack=stack, extender=extender, url=url,
                                namespace=namespace, k8s=k8s))  # fmt: skip
    leader, standby = pods
    leader.thread.start()
    leader.led.wait(timeout=10)
    standby.thread.start()
    try:
        for i in range(3):
            scenario.submit(k8s, namespace, f"first-{i}", 2)
        scenario.settle(lambda: len(_bound(k8s, namespace)) == 3, timeout=30,
                        what="the leader binds the first pods")  # fmt: skip
        assert not standby.led.is_set(), "the standby scheduled while the leader was alive"
        leader.kill()
        scenario.submit(k8s, namespace, "after-0", 2)
        scenario.settle(lambda: len(_bound(k8s, namespace)) == 4, timeout=30,
                        what="the standby takes the Lease and binds the next pod")  # fmt: skip
    finally:
        for pod in pods:
            pod.stop.set()
            pod.thread.join(timeout=10)
            pod.driver.close()
    assert standby.led.is_set()
    held = _bound(k8s, namespace)
    taken = [gpu for gpus in held.values() for gpu in gpus]
    assert len(taken) == len(set(taken)) == 8, f"a GPU was handed out twice: {held}"
