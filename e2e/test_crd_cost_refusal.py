"""The stand-in refuses a CRD whose CEL rules a real API server refuses for their cost.

kube-apiserver v1.36 refused ``tenantquotas.gpufair.dev`` (issue 11) because two
``messageExpression``s built text with ``string(self.limit)``, whose cost it estimates as
unbounded; the stand-in accepted it. Now the stand-in answers the same 422, so a CRD that a
real cluster would not install fails here too, while the generated CRDs are accepted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.harness import kubectl as kubectl_mod
from gpufair.api import crdgen, names

GROUP = "cost.e2e.gpufair.dev"
BUDGET_HINT = (
    "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays,"
    " maps, and strings are declared)"
)


def quota_crd_with_the_old_rules() -> dict[str, Any]:
    """The generated TenantQuota CRD moved to a test group, with the two messageExpressions
    the real API server refused put back on ``spec.pools.items``."""
    crd = copy.deepcopy(crdgen.definition(*crdgen.KINDS[1]))
    assert crd["spec"]["names"]["kind"] == names.TENANT_QUOTA_KIND
    crd["metadata"]["name"] = f"{names.TENANT_QUOTA_PLURAL}.{GROUP}"
    crd["spec"]["group"] = GROUP
    (version,) = crd["spec"]["versions"]
    pools = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["pools"]
    limit_rule, lendable_rule = pools["items"]["x-kubernetes-validations"]
    limit_rule["messageExpression"] = "'must be <= limit (' + string(self.limit) + ')'"
    lendable_rule["messageExpression"] = "'must be <= guaranteed (' + string(self.guaranteed) + ')'"
    return crd


@pytest.fixture
def no_test_crd(kubectl: kubectl_mod.Kubectl) -> Iterator[str]:
    name = f"{names.TENANT_QUOTA_PLURAL}.{GROUP}"
    yield name
    kubectl("delete", "crd", name, "--ignore-not-found", check=False)


def test_over_budget_crd_is_refused_as_the_api_server_does(
    kubectl: kubectl_mod.Kubectl, no_test_crd: str
) -> None:
    result = kubectl(
        "apply", "-f", "-", input=yaml.safe_dump(quota_crd_with_the_old_rules()), check=False
    )
    assert result.returncode != 0
    error = result.stderr.strip()
    # kubectl prints a 422 Invalid Status from its causes, one "* field: message" a line.
    assert error.startswith(f'The CustomResourceDefinition "{no_test_crd}" is invalid: \n* '), error
    pools = "spec.validation.openAPIV3Schema.properties[spec].properties[pools].items"
    for index in (0, 1):
        assert (
            f"\n* {pools}.x-kubernetes-validations[{index}].messageExpression: Forbidden: estimated"
            f" messageExpression cost exceeds budget by factor of more than 100x {BUDGET_HINT}"
        ) in error
    assert (
        "\n* spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule &"
        " messageExpression cost total for entire OpenAPIv3 schema exceeds budget by factor of"
        f" more than 100x {BUDGET_HINT}"
    ) in error
    missing = kubectl("get", "crd", no_test_crd, check=False)
    assert missing.returncode != 0, "a refused CRD must not be stored"


def test_refusal_is_a_422_invalid_status_with_the_causes(k8s: Any, no_test_crd: str) -> None:
    import kubernetes

    with pytest.raises(kubernetes.client.ApiException) as refused:
        k8s.apiextensions.create_custom_resource_definition(quota_crd_with_the_old_rules())
    assert refused.value.status == 422
    status = json.loads(refused.value.body or "{}")
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(
        f'CustomResourceDefinition.apiextensions.k8s.io "{no_test_crd}" is invalid: ['
    )
    assert status["details"]["name"] == no_test_crd
    assert status["details"]["group"] == "apiextensions.k8s.io"
    causes = status["details"]["causes"]
    assert {c["reason"] for c in causes} == {"FieldValueForbidden"}
    assert causes[-1]["field"] == "spec.validation.openAPIV3Schema"
    assert causes[-1]["message"].startswith(
        "Forbidden: x-kubernetes-validations estimated rule & messageExpression cost total"
    )


def test_server_side_dry_run_refuses_it_too(kubectl: kubectl_mod.Kubectl, no_test_crd: str) -> None:
    result = kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump(quota_crd_with_the_old_rules()),
        check=False,
    )
    assert result.returncode != 0
    assert "estimated messageExpression cost exceeds budget" in result.stderr


def test_the_generated_crds_are_accepted(apply_crds: Any, kubectl: kubectl_mod.Kubectl) -> None:
    applied = apply_crds()
    assert {
        f"{names.TENANT_QUOTA_PLURAL}.{names.GROUP}",
        f"{names.GPU_POOL_PLURAL}.{names.GROUP}",
    } <= set(applied)
    for name in applied:
        crd = kubectl.json("get", "crd", name)
        established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert established.get("Established") == "True", name
