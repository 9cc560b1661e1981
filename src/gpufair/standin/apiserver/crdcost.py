"""The stand-in refuses a CRD a real API server refuses for its CEL cost.

kube-apiserver estimates the worst-case cost of every ``x-kubernetes-validations`` rule and
``messageExpression`` when a CustomResourceDefinition is created or updated, and answers 422
Invalid when one is over ``StaticEstimatedCostLimit`` or their total is over
``StaticEstimatedCRDCostLimit``. The stand-in used to accept any CRD, so a CRD no real cluster
installs passed every e2e test. :func:`refuse_over_budget` applies the same estimate
(:mod:`gpufair.api.celcost`, which follows the API server's) and answers the same ``Status``:
message and ``details.causes`` (kubectl prints the causes, one ``* field: message`` a line).
:meth:`gpufair.standin.apiserver.registry.Registry.register_crd` calls it before serving a CRD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpufair.api import celcost
from gpufair.standin.apiserver import errors

_GROUP = "apiextensions.k8s.io"
_KIND = "CustomResourceDefinition"


def refuse_over_budget(crd: Mapping[str, Any]) -> None:
    """Raise a 422 ``Invalid`` when a real API server would refuse ``crd``'s CEL rules."""
    try:
        refused = celcost.crd_errors(crd)
    except celcost.UnsupportedExpressionError:
        # CEL the estimator does not know (a third-party CRD): the stand-in cannot tell, so it
        # stays lenient there; the gpufair CRDs only use CEL it knows (tests/api).
        return
    if not refused:
        return
    name = str((crd.get("metadata") or {}).get("name", ""))
    causes = [
        {"reason": "FieldValueForbidden", "message": f"Forbidden: {e.detail}", "field": e.field}
        for e in refused
    ]
    raise errors.StatusError(
        422,
        errors.Reason.INVALID,
        celcost.invalid_message(crd, refused),
        {"name": name, "group": _GROUP, "kind": _KIND, "causes": causes},
    )
