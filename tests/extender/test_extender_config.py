"""The example KubeSchedulerConfiguration says what the issue and ARCHITECTURE.md §6 require."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

from gpufair.api import names
from gpufair.extender import app as extender_app
from gpufair.extender import settings

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "extender" / "scheduler-config.yaml"


def load() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return config


def test_profile_and_extender_entry() -> None:
    config = load()
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    (profile,) = config["profiles"]
    assert profile["schedulerName"] == names.SCHEDULER_NAME
    assert profile["percentageOfNodesToScore"] == 100
    (extender,) = config["extenders"]
    assert extender["nodeCacheCapable"] is True
    assert extender["managedResources"] == [
        {"name": names.DEFAULT_GPU_RESOURCE, "ignoredByScheduler": False}
    ]
    assert extender["weight"] > 0
    assert extender["httpTimeout"]
    assert extender["urlPrefix"].endswith(f":{settings.ExtenderSettings().extender_port}")


def test_every_configured_verb_is_a_route() -> None:
    extender = load()["extenders"][0]
    app = extender_app.create_app(settings.ExtenderSettings(watch=False))
    routes = set(app.openapi()["paths"])
    for key in ("filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb"):
        assert f"/{extender[key]}" in routes
