"""The publisher reads the Node and sends a strategic-merge patch of the agent's labels only.

The official client runs for real down to its HTTP layer, which is replaced by a small
in-memory Node store that applies patches as the API server does for ``metadata.labels``
(strategic-merge and JSON-merge patches merge the map, ``null`` deletes) and refuses a JSON
Patch, as the API server does for a document that is not a list of operations.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import rest

from gpufair.agent import publisher

MERGE_TYPES = ("application/strategic-merge-patch+json", "application/merge-patch+json")


@dataclasses.dataclass
class _Response:
    status: int
    reason: str
    data: bytes
    headers: dict[str, str]


@dataclasses.dataclass
class NodeStore:
    """Nodes by name; records every request as ``(method, path, content type)``."""

    labels: dict[str, dict[str, str]]
    requests: list[tuple[str, str, str | None]] = dataclasses.field(default_factory=list)

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
        **_: Any,
    ) -> rest.RESTResponse:
        headers = headers or {}
        content_type = headers.get("Content-Type")
        path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
        self.requests.append((method, path, content_type))
        match = re.fullmatch(r"/api/v1/nodes/([^/]+)", path)
        if match is None or match.group(1) not in self.labels:
            return self._status(404, "NotFound")
        name = match.group(1)
        if method == "PATCH":
            document = json.loads(body) if isinstance(body, (str, bytes)) else body
            if content_type not in MERGE_TYPES or not isinstance(document, dict):
                return self._status(415, "UnsupportedMediaType")
            for key, value in document.get("metadata", {}).get("labels", {}).items():
                if value is None:
                    self.labels[name].pop(key, None)
                else:
                    self.labels[name][key] = value
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": dict(self.labels[name])},
        }
        return self._reply(200, "OK", node)

    def _status(self, code: int, reason: str) -> rest.RESTResponse:
        return self._reply(code, reason, {"kind": "Status", "code": code, "reason": reason})

    def _reply(self, code: int, reason: str, document: dict[str, Any]) -> rest.RESTResponse:
        return rest.RESTResponse(
            _Response(
                status=code,
                reason=reason,
                data=json.dumps(document).encode(),
                headers={"content-type": "application/json"},
            )
        )


def _publisher(store: NodeStore, node_name: str = "n1") -> publisher.NodeLabelPublisher:
    api_client = client.ApiClient(client.Configuration(host="http://apiserver.test"))
    api_client.rest_client.request = store.request
    return publisher.NodeLabelPublisher(api=client.CoreV1Api(api_client), node_name=node_name)


FOREIGN = {"kubernetes.io/hostname": "n1", "nvidia.com/gpu.product": "NVIDIA-H100"}


def test_first_publish_sets_labels_with_a_strategic_merge_patch() -> None:
    store = NodeStore(labels={"n1": dict(FOREIGN)})
    desired = {"gpufair.dev/topology-schema": "v1", "gpufair.dev/gpu-count": "1"}

    applied = _publisher(store).publish(desired)

    assert applied == desired
    assert store.labels["n1"] == {**FOREIGN, **desired}
    assert store.requests[-1] == (
        "PATCH",
        "/api/v1/nodes/n1",
        "application/strategic-merge-patch+json",
    )


def test_stale_keys_are_removed_and_foreign_labels_kept() -> None:
    store = NodeStore(
        labels={
            "n1": {
                **FOREIGN,
                "gpufair.dev/topology-schema": "v1",
                "gpufair.dev/gpu-count": "2",
                "gpufair.dev/gpu-1.nvlink": "0",
            }
        }
    )
    desired = {"gpufair.dev/topology-schema": "v1", "gpufair.dev/gpu-count": "1"}

    applied = _publisher(store).publish(desired)

    assert applied == {"gpufair.dev/gpu-count": "1", "gpufair.dev/gpu-1.nvlink": None}
    assert store.labels["n1"] == {**FOREIGN, **desired}


def test_up_to_date_node_is_not_patched() -> None:
    desired = {"gpufair.dev/topology-schema": "v1", "gpufair.dev/gpu-count": "1"}
    store = NodeStore(labels={"n1": {**FOREIGN, **desired}})

    assert _publisher(store).publish(desired) == {}
    assert [method for method, _, _ in store.requests] == ["GET"]


def test_missing_node_names_the_node_and_the_setting() -> None:
    store = NodeStore(labels={})
    with pytest.raises(publisher.PublishError, match=r"'n9' does not exist.*NODE_NAME"):
        _publisher(store, node_name="n9").publish({"gpufair.dev/gpu-count": "1"})


def test_connect_without_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(publisher.PublishError, match="no Kubernetes credentials"):
        publisher.connect()
