"""Helpers of the end-to-end suite, importable from tests, fixtures and the demo.

- :mod:`e2e.harness.apiserver`: start the stand-in API server as a process;
- :mod:`e2e.harness.processes`: run components as subprocesses (readiness, logs, SIGTERM);
- :mod:`e2e.harness.kubectl`: kubectl against the stand-in;
- :mod:`e2e.harness.nodes`: GPU Node objects from real topology captures;
- :mod:`e2e.harness.scheduler`: play kube-scheduler against the gpufair extender;
- :mod:`e2e.harness.waiting`: poll with a deadline.
"""
