"""The stand-in cluster: what ``gpufair demo`` and the end-to-end suite (``e2e/``) run the real
operator, extender and agent against, on one machine with no Kubernetes.

- :mod:`~gpufair.standin.apiserver`: the stand-in API server (kmock's emulator plus the
  semantics, identities, audit, RBAC and CRD cost checks a real kube-apiserver v1.36 has) and
  its minimal kubelet; run as ``python -m gpufair.standin.apiserver``;
- :mod:`~gpufair.standin.launch`: start that server as a process and reach it (kubeconfigs);
- :mod:`~gpufair.standin.processes`: components as subprocesses (readiness, logs, SIGTERM);
- :mod:`~gpufair.standin.scheduler`: play kube-scheduler against the gpufair extender;
- :mod:`~gpufair.standin.webhook`: the operator's admission webhook over HTTPS with a
  self-signed certificate;
- :mod:`~gpufair.standin.nodes`: GPU Node objects as the kubelet, GPU Feature Discovery and the
  gpufair agent leave them;
- :mod:`~gpufair.standin.kube`: the few API calls a client of the stand-in makes as plain JSON.

It is installed with the project through the ``demo`` extra (``pip install 'gpufair[demo]'``:
kmock, httpx), so the demo runs from an installed wheel. Test code, not product: the
operator, the extender and the agent never import it (``.importlinter``).
"""
