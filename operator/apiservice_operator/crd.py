"""Generation of the ApiService CustomResourceDefinition from the pydantic models.

The API server accepts only a structural OpenAPI v3 schema: every node has a type, and there are
no `$ref`, no unions and no `additionalProperties: false`. Pydantic's JSON schema uses all three,
so `build_crd` inlines `$defs`, reduces `Optional[X]` to `X` and drops what Kubernetes does not
need. The API server prunes unknown fields from a structural schema, but kubectl requests strict
field validation by default, so `kubectl create` and `kubectl apply` still reject unknown fields.

The generator raises `CrdSchemaError` when a model cannot be expressed in a CRD, when a field
has no description, or when a string, list or map has no size bound. The API server estimates the
cost of CEL rules from those bounds and rejects a CRD whose rules could cost too much.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from apiservice_operator.model import (
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ApiService,
    ApiServiceSpec,
    ApiServiceStatus,
)

Schema = dict[str, Any]

CRD_NAME = f"{PLURAL}.{GROUP}"

# Keywords copied into the CRD unchanged, in the order they are written. Every other keyword of
# pydantic's output either gets its own handling below or makes the generator raise.
_SCALAR_KEYWORDS = (
    "description",
    "type",
    "anyOf",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
)
_NESTED_KEYWORDS = ("items", "properties", "additionalProperties")
_VALIDATIONS = "x-kubernetes-validations"
_INT_OR_STRING = "x-kubernetes-int-or-string"
_EXTENSION_ORDER = (
    _INT_OR_STRING,
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    _VALIDATIONS,
)
_KEYWORD_ORDER = {
    key: index for index, key in enumerate(_SCALAR_KEYWORDS + _NESTED_KEYWORDS + _EXTENSION_ORDER)
}
_RULE_KEY_ORDER = {"rule": 0, "message": 1, "fieldPath": 2, "reason": 3}
# Keywords of pydantic's output that mean nothing to the API server.
_DROPPED_KEYWORDS = frozenset({"title"})
_NULL_SCHEMA = {"type": "null"}


def _printer_columns() -> list[dict[str, str]]:
    """Build the columns that `kubectl get` prints for ApiServices."""
    return [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": "Status of the Ready condition.",
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
            "description": "Reason of the Ready condition.",
        },
        {
            "name": "URL",
            "type": "string",
            "jsonPath": ".status.url",
            "description": "URL at which the API is served.",
        },
        {
            "name": "Age",
            "type": "date",
            "jsonPath": ".metadata.creationTimestamp",
            "description": "Time since the ApiService was created.",
        },
    ]


class CrdSchemaError(ValueError):
    """Error for a model that has no valid structural CRD schema. The message names the field."""


class _FactoryDefaultsJsonSchema(GenerateJsonSchema):
    """JSON schema generator that writes defaults the way the API server applies them.

    Pydantic leaves `default_factory` values out of the schema, but the API server must fill
    `api`, `worker`, `postgres` and the other sub-objects when a user leaves them out. A model
    default becomes only the fields that differ from their own defaults (`{}` for `api`,
    `{managed: {}}` for `postgres`), because the API server applies the nested defaults after
    the parent's default. `None` and empty lists get no default, because `to_api()` dumps `None`
    as an absent field and an empty list means the same as an absent one.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        if "default_factory" in schema and not schema.get("default_factory_takes_data"):
            factory = cast(Callable[[], Any], schema["default_factory"])
            default = factory()
        else:
            default = super().get_default_value(schema)
        return _api_default(default)


def _api_default(value: Any) -> Any:
    if value is None:
        return NoDefault
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    if isinstance(value, list | dict) and not value:
        return NoDefault
    return value


def _ordered(node: Schema) -> Schema:
    """Sort keywords into a fixed order, so that the generated file reads well and diffs little.

    Unknown `x-kubernetes-*` extensions come last. Each CEL rule lists its rule first.
    """
    last = len(_KEYWORD_ORDER)
    ordered = dict(sorted(node.items(), key=lambda item: _KEYWORD_ORDER.get(item[0], last)))
    if _VALIDATIONS in ordered:
        ordered[_VALIDATIONS] = [
            dict(sorted(rule.items(), key=lambda item: _RULE_KEY_ORDER.get(item[0], last)))
            for rule in ordered[_VALIDATIONS]
        ]
    return ordered


def _merge(target: Schema, siblings: Schema) -> Schema:
    """Merge a field's keywords over the schema that it refers to.

    The field's own description and default replace the referenced model's, and the CEL rules
    of both apply, so their lists are joined.
    """
    merged = {**target, **siblings}
    if _VALIDATIONS in target and _VALIDATIONS in siblings:
        merged[_VALIDATIONS] = [*target[_VALIDATIONS], *siblings[_VALIDATIONS]]
    return merged


def _resolve(node: Schema, defs: Schema, path: str) -> Schema:
    """Replace `$ref` with the referenced definition and `Optional[X]` with `X`."""
    while True:
        if "$ref" in node:
            reference = node["$ref"]
            name = reference.removeprefix("#/$defs/")
            if name not in defs:
                raise CrdSchemaError(f"{path}: reference {reference} is not in $defs")
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            node = _merge(defs[name], siblings)
        elif "anyOf" in node:
            options = [option for option in node["anyOf"] if option != _NULL_SCHEMA]
            if len(options) != 1:
                raise CrdSchemaError(
                    f"{path}: a union other than Optional[X] has no structural form. "
                    "Use a single type."
                )
            siblings = {key: value for key, value in node.items() if key != "anyOf"}
            node = _merge(options[0], siblings)
        else:
            return node


def _check_bounds(node: Schema, path: str) -> None:
    """Raise unless a string, list or map has a maximum size for the CEL cost estimate."""
    kind = node.get("type")
    if (kind == "string" or node.get(_INT_OR_STRING)) and "maxLength" not in node:
        raise CrdSchemaError(f"{path}: string has no maxLength. Set max_length on the field.")
    if kind == "array" and "maxItems" not in node:
        raise CrdSchemaError(f"{path}: list has no maxItems. Set max_length on the field.")
    if isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
        raise CrdSchemaError(f"{path}: map has no maxProperties. Set max_length on the field.")


def _structural(node: Schema, defs: Schema, path: str) -> Schema:
    """Convert one pydantic JSON schema node, and everything under it, to structural form."""
    node = _resolve(node, defs, path)
    result: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key in _SCALAR_KEYWORDS or key.startswith("x-kubernetes-"):
            # A copy, because pydantic shares one object between every use of a definition,
            # and YAML would write shared objects as anchors and aliases.
            result[key] = copy.deepcopy(value)
        elif key == "properties":
            result[key] = {
                name: _property(child, defs, f"{path}.{name}") for name, child in value.items()
            }
        elif key == "items":
            result[key] = _structural(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            # `false` comes from extra="forbid"; the API server prunes unknown fields instead.
            if value is False:
                continue
            if not isinstance(value, dict):
                raise CrdSchemaError(f"{path}: additionalProperties must be a schema or false")
            result[key] = _structural(value, defs, f"{path}[*]")
        else:
            raise CrdSchemaError(f"{path}: keyword {key!r} has no structural form")
    if "type" not in result:
        raise CrdSchemaError(f"{path}: schema has no type")
    _int_or_string(result, path)
    _bound_enum(result)
    _check_bounds(result, path)
    return _ordered(result)


def _int_or_string(node: Schema, path: str) -> None:
    """Rewrite a string marked `x-kubernetes-int-or-string` to the form the API server requires.

    Such a node has no type but `anyOf` integer or string. Its pattern and maxLength apply only
    when the value is a string.
    """
    if not node.get(_INT_OR_STRING):
        return
    if node.pop("type") != "string":
        raise CrdSchemaError(f"{path}: x-kubernetes-int-or-string needs a str field")
    node["anyOf"] = [{"type": "integer"}, {"type": "string"}]


def _bound_enum(node: Schema) -> None:
    """Give an enum string the maxLength of its longest value, for the CEL cost estimate."""
    if node.get("type") == "string" and "enum" in node and "maxLength" not in node:
        node["maxLength"] = max(len(value) for value in node["enum"])


def _property(node: Schema, defs: Schema, path: str) -> Schema:
    schema = _structural(node, defs, path)
    if not schema.get("description"):
        raise CrdSchemaError(f"{path}: field has no description. Set description on the field.")
    return schema


def model_schema(model: type[BaseModel], path: str, description: str) -> Schema:
    """Build the structural schema of one model, placed at `path` in the resource."""
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaultsJsonSchema
    )
    defs = raw.pop("$defs", {})
    return _property({**raw, "description": description}, defs, path)


def _field_description(name: str) -> str:
    description = ApiService.model_fields[name].description
    if not description:
        raise CrdSchemaError(f"ApiService.{name}: field has no description")
    return description


def build_schema() -> Schema:
    """Build the openAPIV3Schema of the ApiService resource."""
    return {
        "description": ApiService.__doc__,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"description": _field_description("api_version"), "type": "string"},
            "kind": {"description": _field_description("kind"), "type": "string"},
            # The API server validates metadata itself and rejects any keyword here but type.
            "metadata": {"type": "object"},
            "spec": model_schema(ApiServiceSpec, "spec", _field_description("spec")),
            "status": model_schema(ApiServiceStatus, "status", _field_description("status")),
        },
    }


def build_crd() -> dict[str, Any]:
    """Build the ApiService CustomResourceDefinition as a manifest for apiextensions.k8s.io/v1."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": build_schema()},
                }
            ],
        },
    }
