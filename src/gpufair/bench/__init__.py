"""Benchmarks behind ``gpufair bench``: commands that print figures, never timed assertions.

- :mod:`~gpufair.bench.extender`: ``gpufair bench extender``, the per-pod cost of the
  extender's verbs on a synthetic large cluster;
- :mod:`~gpufair.bench.operator`: ``gpufair bench operator``, p50/p99 of one operator planning
  pass on a synthetic large cluster.

Both build their nodes from the real captures read by :mod:`gpufair.captures`. The package sits
above the components it measures (``.importlinter``); nothing in the product imports it.
"""
