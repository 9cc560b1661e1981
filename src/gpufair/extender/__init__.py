"""The kube-scheduler HTTP extender: filter, prioritize, preempt and bind GPU pods.

- :mod:`~gpufair.extender.app`: the app factory (``create_app``), watches started on startup;
- :mod:`~gpufair.extender.routes`: one APIRouter per verb, thin: decode, handler, encode;
- :mod:`~gpufair.extender.handlers`: each verb from decoded request to answer;
- :mod:`~gpufair.extender.verbs`: the decisions on a cache snapshot, asking ``gpufair.core``;
- :mod:`~gpufair.extender.binder`: bind's choose-and-assume under a node lock, then API writes;
- :mod:`~gpufair.extender.runtime`, :mod:`~gpufair.extender.settings`,
  :mod:`~gpufair.extender.metrics`: what routes share, ``GPUFAIR_*`` settings, Prometheus.

``docs/extender.md`` describes the behaviour, the reasons users read and the measured cost.
"""
