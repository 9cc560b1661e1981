"""Pure scheduling decisions: topology, GPU-set choice, fair share, usage, admission, preemption.

Nothing here does I/O, reads a clock or imports Kubernetes or HTTP code; time is always an
argument. The operator, the extender and the simulator all call these same functions, so a
policy has exactly one implementation.
"""
