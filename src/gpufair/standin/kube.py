"""The few Kubernetes API calls a client of the stand-in (the demo) makes, as plain JSON over HTTP.

The demo is an admin and a workload at once: it applies CRDs, namespaces, nodes, the pool and
the quotas, submits pods, and plays the kubelet's last step (a job finishing). Everything else
is done by the real operator and extender processes and the scheduler driver. The stand-in API
server needs no credentials, so plain ``httpx`` against its URL is all it takes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from gpufair.api import names

Json = dict[str, Any]

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
QUOTAS_PATH = f"/apis/{names.GROUP}/{names.VERSION}/{names.TENANT_QUOTA_PLURAL}"
POOLS_PATH = f"/apis/{names.GROUP}/{names.VERSION}/{names.GPU_POOL_PLURAL}"


class ApiError(RuntimeError):
    """The API server refused a request; the message has the verb, path and its answer."""


class Api:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Json:
        return self._check("GET", path, self._http.get(path, params=params))

    def items(self, path: str, *, params: Mapping[str, str] | None = None) -> list[Json]:
        items: list[Json] = self.get(path, params=params).get("items") or []
        return items

    def create(self, path: str, body: Json) -> Json:
        return self._check("POST", path, self._http.post(path, json=body))

    def merge_patch(self, path: str, patch: Json) -> Json:
        answer = self._http.patch(
            path, json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        return self._check("PATCH", path, answer)

    def delete(self, path: str) -> None:
        answer = self._http.delete(path)
        if answer.status_code != 404:
            self._check("DELETE", path, answer)

    def create_crds(self, definitions: Iterable[Json]) -> list[str]:
        """Create every CRD of ``definitions`` (``gpufair.api.crdgen.definitions()``: the same
        objects ``crds/`` holds, so no checkout is needed); returns their names."""
        created = []
        for crd in definitions:
            self.create(CRD_PATH, crd)
            created.append(str(crd["metadata"]["name"]))
        return created

    def wait_served(self, path: str, *, timeout: float = 20.0) -> None:
        """Wait until ``path`` (e.g. a CRD's list URL) answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self._http.get(path)
            if answer.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise ApiError(f"GET {path} still answers {answer.status_code} after {timeout} s")
            time.sleep(0.1)

    def _check(self, verb: str, path: str, answer: httpx.Response) -> Json:
        if not answer.is_success:
            raise ApiError(f"{verb} {path} -> {answer.status_code}: {answer.text[:500]}")
        body: Json = answer.json() if answer.content else {}
        return body


def pod_object(
    *,
    name: str,
    namespace: str,
    gpus: int,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    pregated: bool = False,
) -> Json:
    """A GPU pod as a user writes it (the operator's webhook sets gpufair's scheduler and adds
    the admission gate); ``pregated``: as the webhook would leave it, for a run without one."""
    resources = {names.DEFAULT_GPU_RESOURCE: str(gpus)}
    pod: Json = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "train",
                    "image": "registry.example.com/demo/train:latest",
                    "resources": {"requests": resources, "limits": resources},
                }
            ],
        },
    }
    if pregated:
        pod["spec"]["schedulerName"] = names.SCHEDULER_NAME
        pod["spec"]["schedulingGates"] = [{"name": names.ADMISSION_GATE}]
    return pod


def gated(pod: Mapping[str, Any]) -> bool:
    """The pod goes to gpufair's scheduler behind the admission gate (as the webhook sets)."""
    spec = pod.get("spec") or {}
    gates = spec.get("schedulingGates") or []
    return spec.get("schedulerName") == names.SCHEDULER_NAME and any(
        gate.get("name") == names.ADMISSION_GATE for gate in gates
    )


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"
