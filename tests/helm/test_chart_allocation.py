"""The agent DaemonSet's GPU-allocation settings: kubelet's directories, never its sockets."""

from __future__ import annotations

from tests.helm import chart_files

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
