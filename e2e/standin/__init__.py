"""The stand-in Kubernetes API server of the end-to-end suite and the demo.

A thin subclass of kmock's ``KubernetesEmulator`` (:class:`~e2e.standin.server.StandIn`) that
fills the gaps kmock 0.8 leaves for kopf 1.45, kubectl and the official client; see
``docs/e2e.md`` for each gap and why it matters. Run it as its own process::

    python -m e2e.standin --port 0 --kubeconfig /tmp/standin.kubeconfig

(from the repository root), or ``python e2e/standin`` from anywhere.
"""

from __future__ import annotations

from e2e.standin.server import StandIn

__all__ = ["StandIn"]
