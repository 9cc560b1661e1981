"""Reading GPU facts from pods as the API server returns them."""

from __future__ import annotations

import fractions

import pytest
from tests.builders import kube

from gpufair.api import names
from gpufair.k8s import pods


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("4", 4, id="integer"),
        pytest.param("500m", fractions.Fraction(1, 2), id="milli"),
        pytest.param("1k", 1000, id="kilo"),
        pytest.param("1Ki", 1024, id="kibi"),
        pytest.param("2e3", 2000, id="exponent"),
        pytest.param("1E", 10**18, id="exa"),
        pytest.param("0.5", fractions.Fraction(1, 2), id="decimal"),
        pytest.param(3, 3, id="json-number"),
    ],
)
def test_quantities(text: str | int, value: fractions.Fraction | int) -> None:
    assert pods.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "four", "1.2.3", "1Xi", True])
def test_bad_quantities(text: object) -> None:
    with pytest.raises(pods.PodError):
        pods.parse_quantity(text)


@pytest.mark.parametrize(
    ("pod", "gpus"),
    [
        pytest.param(kube.pod(gpus=4), 4, id="requests"),
        pytest.param(kube.pod(gpus=None), 0, id="none"),
        pytest.param(
            kube.pod(containers=[kube.container(gpus=2, limits_only=True)]), 2, id="limits-only"
        ),
        pytest.param(
            kube.pod(containers=[kube.container("a", gpus=2), kube.container("b", gpus=1)]),
            3,
            id="containers-add-up",
        ),
        pytest.param(
            kube.pod(gpus=2, init_containers=[kube.container("init", gpus=4)]),
            4,
            id="big-init-container-wins",
        ),
        pytest.param(
            kube.pod(gpus=2, init_containers=[kube.container("init", gpus=1)]),
            2,
            id="small-init-container-overlaps",
        ),
        pytest.param(
            kube.pod(
                gpus=2,
                init_containers=[
                    kube.container("sidecar", gpus=1, restart_policy="Always"),
                    kube.container("init", gpus=2),
                ],
            ),
            3,
            id="sidecar-adds-to-everything-after-it",
        ),
    ],
)
def test_gpu_request(pod: dict[str, object], gpus: int) -> None:
    assert pods.gpu_request(pod) == gpus


def test_gpu_request_of_another_resource() -> None:
    pod = kube.pod(gpus=2, resource="nvidia.com/mig-1g.10gb")
    assert pods.gpu_request(pod) == 0
    assert pods.gpu_request(pod, "nvidia.com/mig-1g.10gb") == 2
    assert pods.extended_requests(pod) == {"nvidia.com/mig-1g.10gb": 2}


def test_fractional_gpus_are_refused_with_the_pod_named() -> None:
    with pytest.raises(pods.PodError, match=r"team-a/half.*not a whole number"):
        pods.gpu_request(kube.pod("half", gpus="500m"))


def test_bound_gpus_from_the_annotation() -> None:
    assert pods.bound_gpus(kube.pod(node="n1", bound=[3, 1, 2])) == frozenset({1, 2, 3})
    assert pods.bound_gpus(kube.pod()) is None
    assert pods.format_gpus([3, 1, 2]) == "1,2,3"


@pytest.mark.parametrize("value", ["0,,1", "a", "1,1", "-1"])
def test_malformed_gpu_annotation(value: str) -> None:
    pod = kube.pod(annotations={names.GPUS_ANNOTATION: value})
    with pytest.raises(pods.PodError, match=names.GPUS_ANNOTATION):
        pods.bound_gpus(pod)


def test_terminal_pods() -> None:
    assert pods.is_terminal(kube.pod(node="n1", phase="Succeeded"))
    assert not pods.is_terminal(kube.pod(node="n1"))
