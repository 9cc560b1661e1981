"""Helpers of the end-to-end suite, over the stand-in cluster package (:mod:`gpufair.standin`:
the API server, processes, the kube-scheduler driver, certificates), which ``gpufair demo``
shares.

- :mod:`e2e.harness.apiserver`: start the stand-in API server as a process;
- :mod:`e2e.harness.processes`: run components as subprocesses (readiness, logs, SIGTERM);
- :mod:`e2e.harness.kubectl`: kubectl against the stand-in;
- :mod:`e2e.harness.nodes`: GPU Node objects from real topology captures;
- :mod:`e2e.harness.waiting`: poll with a deadline.
"""
