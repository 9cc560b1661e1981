"""The generated CRDs: committed and current, structural, and accepting exactly the examples.

The CEL rules are evaluated with the ``celpy`` interpreter where it is installed (``pip install
cel-python``); everything else runs everywhere.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from tests.api import structural
from tests.builders.manifests import gpu_pool, pool_entry, tenant_quota

from gpufair.api import crdgen, docgen, manifests, names, pool, quota
from gpufair.cli import crds as crds_cli

REPO = pathlib.Path(__file__).resolve().parents[2]
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in crdgen.definitions()}
EXAMPLES = sorted((REPO / "crds" / "examples").glob("*.yaml"))
FORBIDDEN = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "title", "const", "nullable"}


def schema_of(kind: str) -> dict[str, Any]:
    (version,) = CRDS[kind]["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from nodes(schema[key], f"{path}[]")


def example_objects() -> list[Any]:
    return [
        pytest.param(body, id=f"{path.name}:{body['metadata']['name']}")
        for path in EXAMPLES
        for body in yaml.safe_load_all(path.read_text())
        if body is not None
    ]


@pytest.mark.parametrize("crd", crdgen.definitions(), ids=crdgen.file_name)
def test_committed_crd_is_what_the_generator_writes(crd: dict[str, Any]) -> None:
    committed = REPO / "crds" / crdgen.file_name(crd)
    assert committed.is_file(), f"{committed} is missing: run `make crds`"
    assert committed.read_text() == crds_cli.render(crd), f"{committed} is stale: run `make crds`"


def test_api_reference_in_docs_is_current() -> None:
    doc = (REPO / "docs" / "api.md").read_text()
    expected = docgen.splice(doc, docgen.reference(crdgen.definitions()))
    assert doc == expected, "docs/api.md is stale: run `make crds`"


@pytest.mark.parametrize(
    ("kind", "plural", "short"),
    [
        pytest.param(names.GPU_POOL_KIND, names.GPU_POOL_PLURAL, "gpool", id="gpupool"),
        pytest.param(names.TENANT_QUOTA_KIND, names.TENANT_QUOTA_PLURAL, "tq", id="tenantquota"),
    ],
)
def test_crd_coordinates(kind: str, plural: str, short: str) -> None:
    spec = CRDS[kind]["spec"]
    assert CRDS[kind]["metadata"]["name"] == f"{plural}.{names.GROUP}"
    assert spec["group"] == names.GROUP
    assert spec["scope"] == "Cluster"
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["plural"] == plural
    (version,) = spec["versions"]
    assert version["name"] == names.VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schema_is_structural(kind: str) -> None:
    for path, node in nodes(schema_of(kind)):
        assert "type" in node, f"{path}: no type"
        assert not FORBIDDEN & node.keys(), f"{path}: {FORBIDDEN & node.keys()}"
        assert node.get("additionalProperties", {}) is not False, f"{path}: closed object"
        assert not ("properties" in node and "additionalProperties" in node), path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, False), bool), f"{path}: {bound} must be a flag"
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", ())), f"{path}: map keys"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_field_is_described(kind: str) -> None:
    for part in ("spec", "status"):
        for path, node in nodes(schema_of(kind)["properties"][part], part):
            if path.endswith("[]") and node["type"] != "object":
                continue  # items of scalar lists and maps are described by their parent
            assert node.get("description"), f"{path}: no description"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_defaults_are_valid_values(kind: str) -> None:
    for path, node in nodes(schema_of(kind)):
        if "default" in node:
            assert list(structural.errors(node["default"], node, path)) == []


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_printer_columns_point_at_fields_of_their_type(kind: str) -> None:
    schema = schema_of(kind)
    (version,) = CRDS[kind]["spec"]["versions"]
    for column in version["additionalPrinterColumns"]:
        json_path = column["jsonPath"]
        if json_path == ".metadata.creationTimestamp":
            continue
        node = schema
        for step in re.sub(r"\[[^\]]*\]", "[]", json_path).lstrip(".").split("."):
            name, _, selector = step.partition("[")
            node = node["properties"][name]
            if selector:
                node = node["items"]
        assert node["type"] == column["type"], json_path


def test_quota_columns_show_what_kubectl_get_tq_needs() -> None:
    (version,) = CRDS[names.TENANT_QUOTA_KIND]["spec"]["versions"]
    shown = {c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")}
    assert {"Used", "Guaranteed", "Fair Share", "Borrowed", "Waiting"} <= shown


def test_pool_columns_show_capacity_and_islands() -> None:
    (version,) = CRDS[names.GPU_POOL_KIND]["spec"]["versions"]
    shown = {c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")}
    assert {"Capacity", "Free", "Largest Island", "Nodes"} <= shown


def test_cel_rules_point_at_existing_fields() -> None:
    for kind in CRDS:
        for path, node in nodes(schema_of(kind)):
            for rule in node.get("x-kubernetes-validations", ()):
                if "fieldPath" in rule:
                    field = rule["fieldPath"].lstrip(".")
                    assert field in node["properties"], f"{path}: {rule['fieldPath']}"


def test_examples_are_a_realistic_set() -> None:
    loaded = manifests.load(
        manifests.Document(str(path), index, body)
        for path in EXAMPLES
        for index, body in enumerate(yaml.safe_load_all(path.read_text()), 1)
    )
    assert set(loaded.pools) == {"h100", "a100", "v100", "l40s"}
    assert 3 <= len(loaded.quotas) <= 4
    assert len({q.spec.weight for q in loaded.quotas.values()}) >= 3
    assert any(q.spec.budget is not None for q in loaded.quotas.values())
    for tenant in loaded.quotas.values():
        assert all(entry.name in loaded.pools for entry in tenant.spec.pools), tenant.name


@pytest.mark.parametrize("body", example_objects())
def test_examples_are_valid_against_the_generated_schema(body: dict[str, Any]) -> None:
    schema = schema_of(body["kind"])
    defaulted = structural.with_defaults(body, schema)
    assert list(structural.errors(defaulted, schema)) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(tenant_quota(pools=[pool_entry(guaranteed=-1)]), id="negative"),
        pytest.param(tenant_quota(weight=0), id="zero-weight"),
        pytest.param(tenant_quota(pools=[pool_entry(gurantee=1)]), id="unknown-field"),
        pytest.param(tenant_quota(namespaces=["a", "a"]), id="duplicate-namespace"),
        pytest.param(tenant_quota(pools=[pool_entry(), pool_entry()]), id="duplicate-pool"),
        pytest.param(gpu_pool(placement={"mode": "Packed"}), id="unknown-enum"),
        pytest.param(gpu_pool(costPerGPUHour="2,50"), id="bad-decimal"),
        pytest.param(
            tenant_quota(budget={"gpuHours": 1, "period": "30d", "enforcement": "Hard"}),
            id="bad-duration",
        ),
    ],
)
def test_schema_and_models_both_reject(body: dict[str, Any]) -> None:
    schema = schema_of(body["kind"])
    assert list(structural.errors(structural.with_defaults(body, schema), schema))
    with pytest.raises(manifests.InvalidManifestsError):
        manifests.parse(body, origin="test")


@pytest.mark.parametrize("body", example_objects())
def test_examples_pass_an_independent_openapi_validator(body: dict[str, Any]) -> None:
    # Draft 4 is the JSON Schema dialect of OpenAPI 3.0 (boolean exclusiveMinimum); it checks
    # what the small validator above checks, except unknown fields and list uniqueness.
    schema = schema_of(body["kind"])
    jsonschema.Draft4Validator(schema).validate(structural.with_defaults(body, schema))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(tenant_quota(pools=[pool_entry(limit=-1)]), id="negative"),
        pytest.param(tenant_quota(weight=0), id="zero-weight"),
        pytest.param(gpu_pool(placement={"topology": "Strict"}), id="unknown-enum"),
        pytest.param(gpu_pool(placement={"groupDomain": "One"}), id="unknown-group-domain"),
        pytest.param(gpu_pool(costPerGPUHour="two"), id="bad-decimal"),
    ],
)
def test_independent_validator_rejects_what_the_models_reject(body: dict[str, Any]) -> None:
    schema = schema_of(body["kind"])
    assert not jsonschema.Draft4Validator(schema).is_valid(structural.with_defaults(body, schema))
    with pytest.raises(manifests.InvalidManifestsError):
        manifests.parse(body, origin="test")


# CEL: the server-side rules say what the Python validators say.


def cel_failures(instance: Any, schema: dict[str, Any], path: str = "") -> list[tuple[str, str]]:
    """``(path, message)`` of every CEL rule ``instance`` breaks, evaluated as the server does
    (an evaluation error counts as a broken rule)."""
    env = celpy.Environment()

    def evaluate(expression: str) -> Any:
        try:
            return env.program(env.compile(expression)).evaluate(
                {"self": celpy.json_to_cel(instance)}
            )
        except celpy.CELEvalError as error:
            return error

    failures = []
    for rule in schema.get("x-kubernetes-validations", ()):
        if evaluate(rule["rule"]) is True or evaluate(rule["rule"]) == celpy.celtypes.BoolType(1):
            continue
        message = rule["message"]
        if "messageExpression" in rule:
            message = str(evaluate(rule["messageExpression"]))
        failures.append((path + rule.get("fieldPath", ""), message))
    if isinstance(instance, dict):
        for name, child in schema.get("properties", {}).items():
            if name in instance:
                failures += cel_failures(instance[name], child, f"{path}.{name}")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            failures += cel_failures(item, schema["items"], f"{path}[{index}]")
    return failures


@pytest.mark.parametrize("body", example_objects())
def test_examples_pass_the_cel_rules(body: dict[str, Any]) -> None:
    schema = schema_of(body["kind"])
    assert cel_failures(structural.with_defaults(body, schema), schema) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(tenant_quota(pools=[pool_entry(guaranteed=40, limit=32)]), id="limit"),
        pytest.param(tenant_quota(pools=[pool_entry(guaranteed=8, lendable=9)]), id="lendable"),
        pytest.param(tenant_quota(pools=[pool_entry(lendable=1)]), id="lendable-default-0"),
        pytest.param(
            tenant_quota(budget={"gpuHours": 1, "period": "0s", "enforcement": "Hard"}),
            id="zero-period",
        ),
        pytest.param(
            gpu_pool(nodeSelector={"matchExpressions": [{"key": "k", "operator": "In"}]}),
            id="in-without-values",
        ),
    ],
)
def test_cel_and_python_report_the_same_field(body: dict[str, Any]) -> None:
    schema = schema_of(body["kind"])
    failures = cel_failures(structural.with_defaults(body, schema), schema)
    with pytest.raises(manifests.InvalidManifestsError) as invalid:
        manifests.parse(body, origin="test")
    (problem,) = invalid.value.problems
    ((path, message),) = failures
    assert path.lstrip(".") == problem.path
    # The CEL messages are static where the figure would make them too costly (celcost); the
    # Python validator says the same and adds the figure: "must be <= limit (32)".
    assert problem.message.startswith(message)


def test_cel_requires_namespaces_or_a_selector() -> None:
    schema = schema_of(quota.TenantQuota.KIND)
    body = structural.with_defaults(tenant_quota(namespaces=[]), schema)
    del body["spec"]["namespaces"]
    assert cel_failures(body, schema) == [(".spec", "set namespaces, namespaceSelector or both")]
    selected = tenant_quota(namespaceSelector={"matchLabels": {"team": "a"}})
    del selected["spec"]["namespaces"]
    assert cel_failures(structural.with_defaults(selected, schema), schema) == []


def test_pool_model_is_in_the_generated_kinds() -> None:
    assert {resource for resource, _ in crdgen.KINDS} == {pool.GPUPool, quota.TenantQuota}
