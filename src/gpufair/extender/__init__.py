"""The kube-scheduler HTTP extender: filter, prioritize, preempt and bind GPU pods."""
