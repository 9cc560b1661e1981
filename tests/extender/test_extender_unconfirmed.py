"""Filter keeps at most one unconfirmed gpufair pod per request size on a node with the proxy.

The device-plugin proxy tells pods apart only by request size (``core.allocation``), so a node
whose agent runs it (label ``gpufair.dev/device-plugin-proxy=true``) is refused to a pod while a
pod of the same size bound there waits for the agent's confirmation from PodResources.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import testclient
from tests.builders import cluster, kube

from gpufair.api import names
from gpufair.core import labels
from gpufair.extender import app as extender_app
from gpufair.extender import settings, verbs
from gpufair.state import cache

PROXY = {labels.PROXY_LABEL: "true"}


def filter_on(state: cache.ClusterCache, pod: dict[str, Any]) -> dict[str, Any]:
    app = extender_app.create_app(
        settings.ExtenderSettings(watch=False), state=state, writer=cluster.FakeWriter(state)
    )
    client = testclient.TestClient(app)
    response = client.post("/filter", json={"Pod": pod, "Nodes": None, "NodeNames": ["gpu"]})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize(
    ("node_labels", "waiting", "size", "passes"),
    [
        pytest.param(PROXY, {}, 2, False, id="same-size-unconfirmed-waits"),
        pytest.param(PROXY, {}, 1, True, id="other-size-passes"),
        pytest.param(
            PROXY, {names.GPUS_CONFIRMED_ANNOTATION: "0,1"}, 2, True, id="confirmed-frees-it"
        ),
        pytest.param({}, {}, 2, True, id="no-proxy-no-rule"),
    ],
)
def test_one_unconfirmed_pod_per_size(
    node_labels: dict[str, str], waiting: dict[str, str], size: int, passes: bool
) -> None:
    state = cluster.cluster(
        pools=[kube.pool("h100")],
        quotas=[kube.quota("team-a", pools={"h100": (8, 16)})],
        nodes=[kube.node("gpu", kube.dgx1(), extra_labels=node_labels)],
        pods=[kube.pod("first", gpus=2, node="gpu", bound=[0, 1], annotations=waiting)],
    )
    result = filter_on(state, kube.pod("second", gpus=size))
    if passes:
        assert result["NodeNames"] == ["gpu"]
    else:
        assert result["NodeNames"] == []
        assert result["FailedNodes"] == {"gpu": verbs.waiting_reason(size)}


def gpu_containers(*shares: int) -> list[dict[str, Any]]:
    return [kube.container(f"c{i}", gpus=share) for i, share in enumerate(shares)]


@pytest.mark.parametrize(
    ("first", "second", "passes"),
    [
        pytest.param((2, 2), (2,), False, id="a-share-the-size-of-the-new-pod"),
        pytest.param((2,), (2, 2), False, id="a-new-share-the-size-of-a-waiting-pod"),
        pytest.param((1, 3), (4,), True, id="a-split-pod-is-never-asked-whole"),
        pytest.param((4,), (1, 3), True, id="shares-of-other-sizes"),
        pytest.param((2, 2), (2, 2), False, id="two-split-pods-of-one-share-size"),
    ],
)
def test_multi_container_pods_count_by_their_containers_requests(
    first: tuple[int, ...], second: tuple[int, ...], passes: bool
) -> None:
    """kubelet asks the proxy once per GPU container, so the sizes that must not collide are
    the containers' requests."""
    state = cluster.cluster(
        pools=[kube.pool("h100")],
        quotas=[kube.quota("team-a", pools={"h100": (8, 16)})],
        nodes=[kube.node("gpu", kube.dgx1(), extra_labels=PROXY)],
        pods=[
            kube.pod(
                "first",
                gpus=sum(first),
                node="gpu",
                bound=list(range(sum(first))),
                containers=gpu_containers(*first),
            )
        ],
    )
    result = filter_on(
        state, kube.pod("second", gpus=sum(second), containers=gpu_containers(*second))
    )
    assert (result["NodeNames"] == ["gpu"]) is passes, result
    if not passes:
        assert result["FailedNodes"] == {"gpu": verbs.waiting_reason(sum(second), second)}
