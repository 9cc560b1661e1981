"""A kubeconfig that points kubectl, kopf and the official client at the stand-in.

The stand-in does no authentication; the token is there because some clients refuse a kubeconfig
whose user has no credentials at all.
"""

from __future__ import annotations

import pathlib

import yaml

CONTEXT = "gpufair-standin"


def render(server_url: str, *, namespace: str = "default") -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {"token": "standin"}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(path: pathlib.Path, server_url: str) -> pathlib.Path:
    """Write atomically (readers polling for the file never see half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(render(server_url))
    partial.replace(path)
    return path
