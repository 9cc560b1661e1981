"""A minimal kopf admission webhook: proves the stand-in calls kopf-managed webhooks.

kopf serves the webhook over plain HTTP on ``127.0.0.1:$E2E_WEBHOOK_PORT`` (``insecure=True``,
fine on localhost) and manages the ``MutatingWebhookConfiguration`` named ``e2e.gpufair.dev``
itself, as gpufair's operator can. Pods labelled ``e2e-webhook: mutate`` get the label
``mutated-by: kopf``; pods labelled ``e2e-webhook: deny`` are refused. Run by
``e2e/test_standin.py``::

    E2E_WEBHOOK_PORT=8443 kopf run --standalone --all-namespaces e2e/operators/webhook_operator.py
"""

from __future__ import annotations

import os
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.admission.server = kopf.WebhookServer(
        insecure=True, host="127.0.0.1", port=int(os.environ["E2E_WEBHOOK_PORT"])
    )
    settings.admission.managed = "e2e.gpufair.dev"


@kopf.on.mutate(
    "",
    "v1",
    "pods",
    id="label",
    operation="CREATE",
    ignore_failures=True,
    labels={"e2e-webhook": "mutate"},
)
def label(patch: kopf.Patch, **_: Any) -> None:
    patch.metadata.setdefault("labels", {})["mutated-by"] = "kopf"


@kopf.on.validate(
    "",
    "v1",
    "pods",
    id="deny",
    operation="CREATE",
    ignore_failures=True,
    labels={"e2e-webhook": "deny"},
)
def deny(**_: Any) -> None:
    raise kopf.AdmissionError("pods labelled e2e-webhook=deny are refused", code=403)
