"""A minimal kopf operator: proves kopf 1.45 runs against the stand-in API server.

For every ``Widget`` (``e2e.gpufair.dev/v1``, cluster-scoped, status subresource) it writes
``status.phase: Ready``, ``status.size`` (a copy of ``spec.size``) and
``status.observedGeneration`` and posts a ``Reconciled`` event; a delete handler makes kopf
add and later remove its finalizer, so the test also covers deletion with finalizers.
Run by ``e2e/test_standin.py``::

    kopf run --standalone --all-namespaces e2e/operators/widget_operator.py
"""

from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION, PLURAL = "e2e.gpufair.dev", "v1", "widgets"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 30
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    patch: kopf.Patch,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    patch.status["phase"] = "Ready"
    patch.status["size"] = spec.get("size")
    patch.status["observedGeneration"] = meta.get("generation")
    message = f"widget {meta['name']} reconciled at generation {meta.get('generation')}"
    logger.info(message)
    kopf.info(body, reason="Reconciled", message=message)  # a k8s Event, posted by kopf


@kopf.on.delete(GROUP, VERSION, PLURAL)
def cleanup(meta: kopf.Meta, logger: kopf.Logger, **_: Any) -> None:
    logger.info(f"widget {meta['name']} cleaned up")
