"""Start the stand-in API server as a process (:mod:`gpufair.standin.launch`, shared with
``gpufair demo``) the way the e2e suite needs it: auditing every call and enforcing the chart's
RBAC."""

from __future__ import annotations

import pathlib

import yaml

from e2e.harness import chart
from gpufair.standin import launch
from gpufair.standin.launch import StandInServer

__all__ = ["StandInServer", "start"]


AUDIT_LOG = "audit.jsonl"
"""The file in the stand-in's workdir where it records who made which call."""
RBAC = "rbac.yaml"
"""The chart's rendered roles and bindings, which the stand-in enforces."""
_RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def start(*, workdir: pathlib.Path, kubelet: bool = True, timeout: float = 20.0) -> StandInServer:
    """Start ``python -m gpufair.standin.apiserver`` on a free port; returns once ``/readyz``
    answers.

    It records every distinct call per identity in ``workdir/audit.jsonl`` (``server.audit_log``):
    the evidence ``e2e/test_rbac_least_privilege.py`` checks the chart's RBAC against. And it
    enforces the chart's RBAC (rendered by Helm's engine) on the components' calls, as a real
    API server would: a missing permission fails the e2e test that needs it, with a 403."""
    return launch.start(
        workdir=workdir,
        kubelet=kubelet,
        timeout=timeout,
        audit_log=workdir / AUDIT_LOG,
        rbac=_chart_rbac(workdir / RBAC),
    )


def _chart_rbac(path: pathlib.Path) -> pathlib.Path | None:
    """The chart's roles and bindings in ``path``; ``None`` (nothing enforced) without
    ``helm-python-sdk``, whose absence the RBAC proof reports as a skip."""
    try:
        objects = chart.render(chart.E2E_VALUES)
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all([o for o in objects if o.get("kind") in _RBAC_KINDS]))
    return path
