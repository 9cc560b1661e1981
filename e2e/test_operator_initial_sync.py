"""The operator releases no gated pod of a tenant when the TenantQuota listing comes in late.

At startup a pass releases gated pods of namespaces that belong to no tenant. Here the
stand-in answers every LIST of TenantQuotas 4 s late (``--slow-list``), longer than any startup
delay: the pods and namespaces are in the operator's view well before its quota. The pod of
the namespace of no tenant must be released; the tenant's pod must stay gated (its pool has no
node, so admission holds it), never released as a pod of no tenant.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import kubernetes
import pytest

from e2e.harness import processes
from e2e.harness.waiting import wait_for

pytestmark = pytest.mark.e2e

GATE = "gpufair.dev/admission"
QUOTA_LIST_DELAY = "4"


def gated_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": "gpufair-scheduler",
            "schedulingGates": [{"name": GATE}],
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
    }


def gates(core: Any, namespace: str) -> list[str]:
    pod = core.read_namespaced_pod("p", namespace)
    return [gate.name for gate in pod.spec.scheduling_gates or []]


def test_a_late_quota_listing_releases_no_pod_of_its_tenant(
    run_process: Any, run_component: Any, tmp_path: pathlib.Path
) -> None:
    config = tmp_path / "kubeconfig"
    run_process(
        [
            sys.executable,
            "-m",
            "gpufair.standin.apiserver",
            "--kubeconfig",
            str(config),
            "--slow-list",
            f"tenantquotas={QUOTA_LIST_DELAY}",
        ],
        name="standin-slow-quotas",
        ready_log=r"standin: serving on",
    )
    subprocess.run(
        ["kubectl", "--kubeconfig", str(config), "apply", "-f", str(processes.REPO_ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    new_client: Any = kubernetes.config.new_client_from_config
    client = new_client(config_file=str(config))
    core: Any = kubernetes.client.CoreV1Api(client)  # plain dicts as bodies
    custom: Any = kubernetes.client.CustomObjectsApi(client)
    for namespace in ("team", "nobody"):
        core.create_namespace({"metadata": {"name": namespace}})
        core.create_namespaced_pod(namespace, gated_pod("p"))
    custom.create_cluster_custom_object(
        "gpufair.dev",
        "v1alpha1",
        "gpupools",
        {
            "apiVersion": "gpufair.dev/v1alpha1",
            "kind": "GPUPool",
            "metadata": {"name": "empty"},
            "spec": {"nodeSelector": {"matchLabels": {"gpufair.e2e/none": "x"}}},
        },
    )
    custom.create_cluster_custom_object(
        "gpufair.dev",
        "v1alpha1",
        "tenantquotas",
        {
            "apiVersion": "gpufair.dev/v1alpha1",
            "kind": "TenantQuota",
            "metadata": {"name": "team"},
            "spec": {"namespaces": ["team"], "pools": [{"name": "empty"}]},
        },
    )

    operator = run_component(
        ["operator", "--dev", "--metrics-port", "0", "--tick", "1"],
        env={"KUBECONFIG": str(config)},
        ready_log=r"Initial authentication has finished",
    )

    wait_for(
        lambda: not gates(core, "nobody"),
        timeout=30,
        what="the operator released the pod of the namespace of no tenant",
    )
    assert gates(core, "team") == [GATE], operator.logs()[-3000:]
    assert "released team/p" not in operator.logs()
