"""Applies the agent's labels to its Node with the official ``kubernetes`` client.

Called by :mod:`gpufair.agent.runner`: read the Node, let :func:`gpufair.agent.label_patch.
compute` decide, and send a strategic-merge patch only when something changed. The agent needs
``get`` and ``patch`` on ``nodes`` and nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import urllib3

from gpufair.agent import label_patch

logger = logging.getLogger(__name__)


class PublishError(Exception):
    """The Node could not be read or patched."""


@dataclasses.dataclass(frozen=True, slots=True)
class NodeLabelPublisher:
    """Publishes label sets on one Node through a ``kubernetes.client.CoreV1Api``."""

    api: Any
    node_name: str

    def publish(self, desired: Mapping[str, str]) -> dict[str, str | None]:
        """Bring the Node's own labels to ``desired``; returns the patch that was applied."""
        from kubernetes.client import exceptions

        try:
            node = self.api.read_node(self.node_name)
        except (exceptions.ApiException, urllib3.exceptions.HTTPError) as error:
            if getattr(error, "status", None) == 404:
                raise PublishError(
                    f"node {self.node_name!r} does not exist (check --node-name / NODE_NAME)"
                ) from error
            raise PublishError(f"cannot read node {self.node_name!r}: {_reason(error)}") from error
        current = dict(node.metadata.labels or {})
        patch = label_patch.compute(current=current, desired=desired)
        if not patch:
            logger.debug("node %s labels are up to date", self.node_name)
            return patch
        try:
            self.api.patch_node(
                self.node_name,
                label_patch.body(patch),
                _content_type=label_patch.STRATEGIC_MERGE_PATCH,
            )
        except (exceptions.ApiException, urllib3.exceptions.HTTPError) as error:
            raise PublishError(f"cannot patch node {self.node_name!r}: {_reason(error)}") from error
        return patch


def connect() -> Any:
    """A ``CoreV1Api`` from the credentials :mod:`gpufair.state.kubeconfig` chooses."""
    from kubernetes import client

    from gpufair.state import kubeconfig

    try:
        configuration = kubeconfig.client_configuration()
    except kubeconfig.KubeconfigError as error:
        raise PublishError(f"no Kubernetes credentials: {error}") from error
    return client.CoreV1Api(client.ApiClient(configuration))


def _reason(error: Exception) -> str:
    status = getattr(error, "status", None)
    if status is None:
        return str(error)
    return f"HTTP {status} {getattr(error, 'reason', '')}".strip()
