"""The stand-in Kubernetes API server of the end-to-end suite and the demo.

A thin subclass of kmock's ``KubernetesEmulator`` (:class:`.server.StandIn`) that fills the
gaps kmock 0.8 leaves for kopf 1.45, kubectl and the official client; see ``docs/e2e.md`` for
each gap and why it matters. It ships with the package (``pip install 'gpufair[demo]'``) and runs
as its own process, from a checkout or an installed wheel alike::

    python -m gpufair.standin.apiserver --port 0 --kubeconfig /tmp/standin.kubeconfig
"""

from __future__ import annotations

from gpufair.standin.apiserver.server import StandIn

__all__ = ["StandIn"]
