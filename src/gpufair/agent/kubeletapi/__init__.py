"""kubelet's gRPC APIs (device plugin ``v1beta1``, PodResources ``v1``) compiled for Python.

The ``.proto`` files are written from kubelet's upstream definitions (same packages, services,
messages and field numbers); the ``*_pb2*`` modules are generated from them by ``make protos``
(grpcio-tools) and committed. Used by the device-plugin proxy and the PodResources reconciler.
"""
