"""The agent DaemonSet's GPU-allocation settings: kubelet's directories, never its sockets."""

from __future__ import annotations

from typing import Any

import pytest
from tests.helm import chart_files, render, validation

from gpufair.agent import deviceplugin, podresources


def test_agent_mounts_kubelet_directories_not_sockets() -> None:
    (daemonset,) = chart_files.find("DaemonSet", file="agent-daemonset.yaml")
    volumes = {v["name"]: v["hostPath"] for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["device-plugins"]["type"] == "Directory"
    assert volumes["pod-resources"]["type"] == "Directory"
    mounts = {
        m["name"]: m["mountPath"] for m in chart_files.container(daemonset, "agent")["volumeMounts"]
    }
    assert mounts["device-plugins"] == str(deviceplugin.DEFAULT_KUBELET_DIR)
    assert mounts["nvidia-device-plugins"] == str(deviceplugin.DEFAULT_UPSTREAM_DIR)
    assert f"{mounts['pod-resources']}/kubelet.sock" == podresources.DEFAULT_SOCKET


def test_allocation_is_off_by_default() -> None:
    allocation = chart_files.values()["agent"]["allocation"]
    assert allocation["proxy"] is False
    assert allocation["confirm"] is False


ALLOCATION_WITH_MONITORING = {
    "agent": {"allocation": {"proxy": True}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
}


def _agent_objects(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        obj
        for obj in render.find(objects, kind)
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "agent"
    ]


def test_with_allocation_on_the_agent_serves_metrics_that_a_service_monitor_scrapes() -> None:
    objects = render.render_chart(ALLOCATION_WITH_MONITORING)
    (daemonset,) = render.find(objects, "DaemonSet")
    agent = next(c for c in daemonset["spec"]["template"]["spec"]["containers"])
    (port,) = agent["ports"]
    assert port["name"] == "metrics"
    assert f"--metrics-port={port['containerPort']}" in agent["args"]
    (service,) = _agent_objects(objects, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {
        key: value
        for key, value in daemonset["spec"]["template"]["metadata"]["labels"].items()
        if key in service["spec"]["selector"]
    }
    assert service["spec"]["ports"] == [
        {
            "name": "metrics",
            "port": port["containerPort"],
            "targetPort": "metrics",
            "protocol": "TCP",
        }
    ]
    (monitor,) = _agent_objects(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for obj in (service, monitor):
        assert not validation.problems(obj), obj


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"serviceMonitor": {"enabled": True}},
        {"agent": {"allocation": {"confirm": True}}},
    ],
    ids=["defaults", "monitoring-only", "confirm-without-monitoring"],
)
def test_agent_metrics_objects_only_where_they_have_something_to_scrape(
    values: dict[str, Any],
) -> None:
    objects = render.render_chart(values)
    allocation = values.get("agent", {}).get("allocation", {})
    monitoring = values.get("serviceMonitor", {}).get("enabled", False)
    (daemonset,) = render.find(objects, "DaemonSet")
    agent = daemonset["spec"]["template"]["spec"]["containers"][0]
    assert bool(agent.get("ports")) == bool(allocation)
    assert bool(_agent_objects(objects, "Service")) == bool(allocation)
    assert bool(_agent_objects(objects, "ServiceMonitor")) == bool(allocation and monitoring)
