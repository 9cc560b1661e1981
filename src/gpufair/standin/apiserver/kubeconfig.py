"""Kubeconfigs that point kubectl, kopf and the official client at the stand-in, one per identity.

``PATH`` (the one ``--kubeconfig PATH`` names) is the cluster admin's; beside it,
``PATH.<identity>`` for each gpufair component (``PATH.operator``, ``PATH.extender``,
``PATH.agent``, ``PATH.scheduler``), each with that identity's bearer token, so the stand-in
knows who calls (:mod:`gpufair.standin.apiserver.identity`) as a real API server does.
"""

from __future__ import annotations

import pathlib

import yaml

from gpufair.standin.apiserver import identity

CONTEXT = "gpufair-standin"


def render(server_url: str, *, namespace: str = "default", user: str = identity.ADMIN) -> str:
    token = identity.IDENTITIES[user].token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": user, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def path_of(admin_path: pathlib.Path, user: str) -> pathlib.Path:
    """Where the kubeconfig of ``user`` is, beside the admin's (``admin_path`` itself)."""
    return (
        admin_path if user == identity.ADMIN else admin_path.with_name(f"{admin_path.name}.{user}")
    )


def write(path: pathlib.Path, server_url: str) -> pathlib.Path:
    """Write every identity's kubeconfig atomically (readers polling for the admin's file,
    written last, never see half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    users = sorted(identity.IDENTITIES, key=lambda name: name == identity.ADMIN)
    for user in users:
        target = path_of(path, user)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(render(server_url, user=user))
        partial.replace(target)
    return path
