"""Unit tests of the CRD generator, the committed CRD and API reference, and the examples."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import BaseModel, Field

from apiservice_operator.crd import CrdSchemaError, build_crd, model_schema
from apiservice_operator.model import ApiModel, ApiServiceSpec

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "apiservice.dev_apiservices.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
IMAGE = "ghcr.io/acme/orders-api:1.4.2"

Schema = dict[str, Any]

# Where each CEL rule belongs, as the schema path and a part of the rule.
EXPECTED_RULES = {
    "spec.env[]": ["!(has(self.value) && has(self.valueFrom))"],
    "spec.env[].valueFrom": ["has(self.secretKeyRef), has(self.configMapKeyRef)"],
    "spec.envFrom[]": ["has(self.configMapRef), has(self.secretRef)"],
    "spec.api.autoscaling": ["self.minReplicas <= self.maxReplicas"],
    "spec.postgres": ["has(self.managed) != has(self.external)"],
    "spec.redis": ["has(self.managed) != has(self.external)"],
    "spec.ingress": [
        "!has(self.tlsSecretName) || has(self.host)",
        "!has(self.className) || has(self.host)",
    ],
    "spec.ingress.edge.metricsAllowList": ["self.all(c, isCIDR(c))"],
}


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return build_crd()


@pytest.fixture(scope="module")
def root_schema(crd: dict[str, Any]) -> Schema:
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(schema: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Yield every schema node under `schema` with its path, such as spec.env[].name."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}[*]")


def properties(schema: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Yield every named field under `schema`, without list items and map values."""
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        yield child_path, child
        yield from properties(child, child_path)
    if "items" in schema:
        yield from properties(schema["items"], f"{path}[]")


def apply_defaults(value: Any, schema: Schema) -> None:
    """Fill defaults into `value` in place, in the order the API server applies them.

    A missing field gets a copy of its default, and the walk then continues into every field,
    including the one just defaulted, so nested defaults fill a defaulted sub-object.
    """
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
        for name, child_value in value.items():
            if name in schema.get("properties", {}):
                apply_defaults(child_value, schema["properties"][name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(item, schema["items"])


def drop_empty_lists(value: Any) -> Any:
    """Remove empty lists, which the CRD leaves unset and the models default to []."""
    if isinstance(value, dict):
        return {key: drop_empty_lists(item) for key, item in value.items() if item != []}
    if isinstance(value, list):
        return [drop_empty_lists(item) for item in value]
    return value


def api_services(path: Path) -> list[dict[str, Any]]:
    documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [doc for doc in documents if doc and doc.get("kind") == "ApiService"]


def test_crd_names(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "apiservices.apiservice.dev"
    assert crd["spec"]["group"] == "apiservice.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "ApiService",
        "listKind": "ApiServiceList",
        "plural": "apiservices",
        "singular": "apiservice",
        "shortNames": ["apisvc", "apisvcs"],
        "categories": ["apiservice-dev", "all"],
    }


def test_crd_version_and_subresources(crd: dict[str, Any]) -> None:
    versions = crd["spec"]["versions"]
    assert len(versions) == 1
    assert versions[0]["name"] == "v1alpha1"
    assert versions[0]["served"] is True
    assert versions[0]["storage"] is True
    assert versions[0]["subresources"] == {"status": {}}


def test_crd_printer_columns(crd: dict[str, Any]) -> None:
    columns = {
        column["name"]: (column["type"], column["jsonPath"])
        for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns == {
        "Ready": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "Reason": ("string", '.status.conditions[?(@.type=="Ready")].reason'),
        "URL": ("string", ".status.url"),
        "Age": ("date", ".metadata.creationTimestamp"),
    }


def test_root_schema_shape(root_schema: Schema) -> None:
    assert root_schema["type"] == "object"
    assert root_schema["required"] == ["spec"]
    assert list(root_schema["properties"]) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert root_schema["properties"]["metadata"] == {"type": "object"}


def test_every_property_has_description_and_type(root_schema: Schema) -> None:
    for path, node in properties(root_schema, ""):
        if path == "metadata":
            continue
        assert node.get("description"), f"{path} has no description"
        has_type = "type" in node or node.get("x-kubernetes-int-or-string") is True
        assert has_type, f"{path} has no type"


def test_no_pydantic_only_keywords(root_schema: Schema) -> None:
    text = json.dumps(root_schema)
    assert "$ref" not in text
    assert "$defs" not in text
    assert '"title"' not in text
    assert '"const"' not in text


def test_any_of_only_for_int_or_string(root_schema: Schema) -> None:
    for path, node in walk(root_schema, ""):
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            assert "type" not in node, path


def test_no_closed_objects(root_schema: Schema) -> None:
    for path, node in walk(root_schema, ""):
        assert node.get("additionalProperties") is not False, path


def test_every_string_has_max_length(root_schema: Schema) -> None:
    for path, node in walk(root_schema.get("properties", {})["spec"], "spec"):
        if node.get("type") == "string" or node.get("x-kubernetes-int-or-string"):
            assert "maxLength" in node, f"{path} has no maxLength"
    for path, node in walk(root_schema.get("properties", {})["status"], "status"):
        if node.get("type") == "string":
            assert "maxLength" in node, f"{path} has no maxLength"


def test_every_list_and_map_is_bounded(root_schema: Schema) -> None:
    for path, node in walk(root_schema, ""):
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} has no maxItems"
        if isinstance(node.get("additionalProperties"), dict):
            assert "maxProperties" in node, f"{path} has no maxProperties"


def test_cel_rules_placement(root_schema: Schema) -> None:
    found = {
        path: [rule["rule"] for rule in node["x-kubernetes-validations"]]
        for path, node in walk(root_schema, "")
        if "x-kubernetes-validations" in node
    }
    assert set(found) == set(EXPECTED_RULES)
    for path, expected_rules in EXPECTED_RULES.items():
        assert len(found[path]) == len(expected_rules), path
        for rule, expected in zip(found[path], expected_rules, strict=True):
            assert expected in rule, path


def test_cel_messages_name_field(root_schema: Schema) -> None:
    for path, node in walk(root_schema, ""):
        for rule in node.get("x-kubernetes-validations", []):
            field = path.split("[")[0]
            assert rule["message"].startswith(field), f"{path}: {rule['message']}"


def test_cel_field_paths(root_schema: Schema) -> None:
    spec = root_schema["properties"]["spec"]["properties"]
    autoscaling_rules = spec["api"]["properties"]["autoscaling"]["x-kubernetes-validations"]
    ingress_rules = spec["ingress"]["x-kubernetes-validations"]
    assert [rule.get("fieldPath") for rule in autoscaling_rules] == [".minReplicas"]
    assert [rule.get("fieldPath") for rule in ingress_rules] == [".tlsSecretName", ".className"]


def test_sub_object_defaults(root_schema: Schema) -> None:
    spec = root_schema["properties"]["spec"]["properties"]
    assert spec["api"]["default"] == {}
    assert spec["worker"]["default"] == {}
    assert spec["postgres"]["default"] == {"managed": {}}
    assert spec["redis"]["default"] == {"managed": {}}
    assert spec["ingress"]["default"] == {}
    assert spec["ingress"]["properties"]["edge"]["default"] == {}
    managed = spec["postgres"]["properties"]["managed"]
    assert "default" not in managed
    assert managed["properties"]["storage"]["default"] == {}
    assert "default" not in spec["supabase"]
    assert "default" not in spec["env"]


def test_status_defaults_and_conditions(root_schema: Schema) -> None:
    status = root_schema["properties"]["status"]["properties"]
    assert status["observedGeneration"]["default"] == -1
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_env_is_list_map_by_name(root_schema: Schema) -> None:
    env = root_schema["properties"]["spec"]["properties"]["env"]
    assert env["x-kubernetes-list-type"] == "map"
    assert env["x-kubernetes-list-map-keys"] == ["name"]


def test_quantity_is_int_or_string(root_schema: Schema) -> None:
    spec = root_schema["properties"]["spec"]["properties"]
    cpu = spec["api"]["properties"]["resources"]["properties"]["requests"]["properties"]["cpu"]
    assert cpu["x-kubernetes-int-or-string"] is True
    assert cpu["minimum"] == 0
    assert cpu["pattern"].startswith("^")


def test_enum_strings(root_schema: Schema) -> None:
    spec = root_schema["properties"]["spec"]["properties"]
    assert spec["environment"]["type"] == "string"
    assert spec["environment"]["enum"] == ["dev", "staging", "prod"]
    assert spec["environment"]["default"] == "dev"
    assert spec["logLevel"]["enum"] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def test_schema_defaults_match_models(root_schema: Schema) -> None:
    spec: dict[str, Any] = {"image": IMAGE}
    apply_defaults(spec, root_schema["properties"]["spec"])
    expected = drop_empty_lists(ApiServiceSpec.model_validate({"image": IMAGE}).to_api())
    assert spec == expected


def test_schema_defaults_keep_external_database(root_schema: Schema) -> None:
    reference = {"urlSecretRef": {"name": "orders-postgres", "key": "url"}}
    spec: dict[str, Any] = {"image": IMAGE, "postgres": {"external": reference}}
    apply_defaults(spec, root_schema["properties"]["spec"])
    assert spec["postgres"] == {"external": reference}
    assert "managed" in spec["redis"]


def test_committed_crd_matches_generator(crd: dict[str, Any]) -> None:
    committed = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    assert committed == crd


@pytest.mark.parametrize("script", ["hack/gen_crd.py", "hack/gen_api_reference.py"])
def test_generated_files_up_to_date(script: str) -> None:
    result = subprocess.run(
        [sys.executable, script, "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_crd_has_generated_header() -> None:
    first_line = CRD_PATH.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# Code generated by hack/gen_crd.py")
    assert first_line.endswith("DO NOT EDIT.")


class _Undescribed(ApiModel):
    """A model with a field that has no description."""

    size: int = Field(default=1, ge=0)


class _Unbounded(ApiModel):
    """A model with a string that has no maxLength."""

    name: str = Field(description="Name.")


class _UnboundedList(ApiModel):
    """A model with a list that has no maxItems."""

    names: list[Annotated[str, Field(max_length=10)]] = Field(
        default_factory=list, description="Names."
    )


class _Union(ApiModel):
    """A model with a union that a structural schema cannot express."""

    value: int | str = Field(description="Value.")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Undescribed, "spec.size: field has no description"),
        (_Unbounded, "spec.name: string has no maxLength"),
        (_UnboundedList, "spec.names: list has no maxItems"),
        (_Union, "spec.value: a union other than Optional[X]"),
    ],
)
def test_generator_rejects_invalid_model(model: type[BaseModel], message: str) -> None:
    with pytest.raises(CrdSchemaError, match=re.escape(message)):
        model_schema(model, "spec", "Test object.")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_parses(example: Path) -> None:
    objects = api_services(example)
    assert len(objects) == 1
    assert objects[0]["apiVersion"] == "apiservice.dev/v1alpha1"
    assert objects[0]["metadata"]["name"] == "orders"
    ApiServiceSpec.model_validate(objects[0]["spec"])


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_starts_with_comment(example: Path) -> None:
    first_line = example.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# ")


def test_examples_present() -> None:
    names = {path.name for path in EXAMPLES}
    expected = {"minimal.yaml", "full.yaml", "external-databases.yaml", "ingress-tls.yaml"}
    assert expected <= names


def test_full_example_sets_every_section() -> None:
    spec = api_services(ROOT / "examples" / "full.yaml")[0]["spec"]
    model_fields = {field.alias for field in ApiServiceSpec.model_fields.values()}
    assert set(spec) == model_fields
