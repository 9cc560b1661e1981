"""gpufair: fair, topology-aware sharing of a Kubernetes GPU fleet.

The package is layered (enforced by import-linter, see ``.importlinter``)::

    cli  ->  operator | extender | agent | sim | demo  ->  state | k8s  ->  api  ->  core

``core`` holds every scheduling decision as pure functions; everything above it only
translates between the outside world (Kubernetes, HTTP, files, clocks) and core.
"""

__version__ = "0.1.0"
