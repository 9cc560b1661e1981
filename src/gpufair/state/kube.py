"""The Kubernetes API calls of the extender, through the official ``kubernetes`` client.

Objects are handled as plain JSON dicts (``_preload_content=False``), exactly as the API
server sends them, so the :mod:`gpufair.k8s` adapters read the same shape from a watch, a list
or a kube-scheduler request. :class:`KubeClient` lists and watches for
:mod:`gpufair.state.watch` and writes pods for the extender's bind.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes

from gpufair.api import names
from gpufair.state import kubeconfig as gpufair_kubeconfig
from gpufair.state import watch
from gpufair.state.cache import Kind

log = logging.getLogger(__name__)


def load_config(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """An API client from the credentials :mod:`gpufair.state.kubeconfig` chooses
    (``kubeconfig`` is the ``--kubeconfig`` flag)."""
    return kubernetes.client.ApiClient(gpufair_kubeconfig.client_configuration(kubeconfig))


class KubeClient:
    """List, watch and pod writes against one API server."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)

    # -- list and watch ------------------------------------------------------------------------

    def _call(self, kind: Kind, **kwargs: Any) -> Any:
        if kind is Kind.NODE:
            return self.core.list_node(**kwargs)
        if kind is Kind.POD:
            return self.core.list_pod_for_all_namespaces(**kwargs)
        if kind is Kind.NAMESPACE:
            return self.core.list_namespace(**kwargs)
        plural = names.TENANT_QUOTA_PLURAL if kind is Kind.TENANT_QUOTA else names.GPU_POOL_PLURAL
        return self.custom.list_cluster_custom_object(names.GROUP, names.VERSION, plural, **kwargs)

    def list(self, kind: Kind) -> tuple[list[dict[str, Any]], str]:
        """Every object of ``kind`` and the list's resourceVersion."""
        response = self._call(kind, _preload_content=False)
        body = json.loads(response.data)
        return list(body.get("items") or []), str(
            (body.get("metadata") or {}).get("resourceVersion") or ""
        )

    def watch(
        self, kind: Kind, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(type, object)`` events after ``resource_version`` until the server ends the watch.

        Raises :class:`gpufair.state.watch.GoneError` when the version expired (HTTP 410),
        whether as an ``ERROR`` event or as an HTTP error.
        """
        try:
            response = self._call(
                kind,
                watch=True,
                resource_version=resource_version or None,
                timeout_seconds=timeout_seconds,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=(10, timeout_seconds + 30),
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 410:
                raise watch.GoneError(str(exc.reason)) from None
            raise
        try:
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield _event(line)
            if buffer.strip():
                yield _event(buffer)
        finally:
            response.release_conn()

    # -- pod writes (bind) ---------------------------------------------------------------------

    def read_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            response: Any = self.core.read_namespaced_pod(name, namespace, _preload_content=False)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        pod: dict[str, Any] = json.loads(response.data)
        return pod

    def bind_pod(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        node: str,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Bind the pod; the API server copies the Binding's annotations onto the pod."""
        body = kubernetes.client.V1Binding(
            api_version="v1",
            kind="Binding",
            metadata=kubernetes.client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                uid=uid or None,
                annotations=dict(annotations or {}) or None,
            ),
            target=kubernetes.client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        # The answer is a Status, not a Binding: do not let the client deserialize it.
        self.core.create_namespaced_pod_binding(name, namespace, body, _preload_content=False)


def _event(line: bytes) -> tuple[str, dict[str, Any]]:
    event = json.loads(line)
    kind = str(event.get("type", ""))
    obj: dict[str, Any] = event.get("object") or {}
    if kind == "ERROR":
        if obj.get("code") == 410:
            raise watch.GoneError(str(obj.get("message", "resource version too old")))
        raise RuntimeError(f"watch error: {obj.get('message', obj)}")
    return kind, obj
