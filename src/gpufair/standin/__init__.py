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
- :mod:`~gpufair.standin.kube`: the few API calls a client of the stand-in makes as plain JSON;
- a GPU node's side, over real gRPC on unix sockets: :mod:`~gpufair.standin.devicemanager`
  (kubelet's device manager and its PodResources API), :mod:`~gpufair.standin.nvidia_plugin`
  (NVIDIA's device plugin) on :mod:`~gpufair.standin.fake_nvml` (NVML rebuilt from a real
  ``nvidia-smi topo -m`` capture), and :mod:`~gpufair.standin.gpunodes`, which runs them with
  the agent's own device-plugin proxy and PodResources reconciler for every node of the demo.

It is installed with the project through the ``demo`` extra (``pip install 'gpufair[demo]'``:
kmock, httpx), so the demo runs from an installed wheel. Test code, not product: the
operator, the extender and the agent never import it (``.importlinter``); it imports them
(the node side hosts the agent's proxy), so it sits above them in the layers.
"""
