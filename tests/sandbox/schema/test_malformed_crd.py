"""A CRD the apiserver would refuse raises SchemaError naming the path, never crashes."""

from __future__ import annotations

from typing import Any

import pytest
from elastrain_sandbox.validation import CompiledSchema, SchemaError
from schema_helpers import crd

ROOT = "spec.versions[0].schema.openAPIV3Schema"
SPEC = f"{ROOT}.properties[spec]"


def errors_of(schema: Any) -> list[str]:
    with pytest.raises(SchemaError) as info:
        CompiledSchema.from_crd(crd(schema), "v1")
    assert str(info.value)
    return [str(c) for c in info.value.causes]


def with_spec(spec: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": spec}}


def rules(*entries: dict[str, Any]) -> dict[str, Any]:
    return with_spec(
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "x-kubernetes-validations": list(entries),
        }
    )


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            rules({"rule": "self.a =="}),
            f'{SPEC}.x-kubernetes-validations[0].rule: Invalid value: "self.a ==": '
            "compilation failed: ERROR: <input>:1:8: Syntax error",
        ),
        (
            rules({"rule": "self.a.frobnicate()"}),
            f'{SPEC}.x-kubernetes-validations[0].rule: Invalid value: "self.a.frobnicate()": '
            "compilation failed: ERROR: <input>:1:1: "
            "undeclared reference to 'frobnicate' (in container '')",
        ),
        (
            rules({"rule": "true"}, {"rule": "foo > 1"}),
            f'{SPEC}.x-kubernetes-validations[1].rule: Invalid value: "foo > 1": '
            "compilation failed: ERROR: <input>:1:1: "
            "undeclared reference to 'foo' (in container '')",
        ),
        (
            rules({"rule": "true", "messageExpression": "'a' +"}),
            f"{SPEC}.x-kubernetes-validations[0].messageExpression: Invalid value: \"'a' +\": "
            "compilation failed: ERROR: <input>:1:5: Syntax error",
        ),
        (
            rules({"rule": "true", "reason": "Nope"}),
            f'{SPEC}.x-kubernetes-validations[0].reason: Unsupported value: "Nope": '
            'supported values: "FieldValueInvalid", "FieldValueForbidden", '
            '"FieldValueRequired", "FieldValueDuplicate"',
        ),
        (
            rules({"rule": "true", "fieldPath": ".b"}),
            f'{SPEC}.x-kubernetes-validations[0].fieldPath: Invalid value: ".b": '
            "fieldPath must be a valid path: does not refer to a valid field: b",
        ),
        (
            rules({"rule": "true", "message": " "}),
            f"{SPEC}.x-kubernetes-validations[0].message: "
            "Required value: message must be non-empty if specified",
        ),
        (rules({"message": "no rule"}), f"{SPEC}.x-kubernetes-validations[0].rule: Required value"),
        (
            with_spec(
                {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf"}],
                    },
                }
            ),
            f"{SPEC}.items.x-kubernetes-validations[0].rule: Forbidden: oldSelf cannot be used "
            f"on the uncorrelatable portion of the schema within {SPEC}.items",
        ),
        (
            with_spec({"properties": {}}),
            f"{SPEC}.type: Required value: must not be empty for specified fields",
        ),
        (
            with_spec({"type": "strng"}),
            f'{SPEC}.type: Unsupported value: "strng": supported values: "object", "array", '
            '"string", "integer", "number", "boolean"',
        ),
        ({"type": "string"}, f'{ROOT}.type: Invalid value: "string": must be object at the root'),
        (with_spec({"type": "array"}), f"{SPEC}.items: Required value: must be specified"),
        (
            with_spec({"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
            f"{SPEC}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime "
            "complexity becomes quadratic",
        ),
        (
            with_spec(
                {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": {"type": "string"},
                }
            ),
            f"{SPEC}.additionalProperties: Forbidden: "
            "additionalProperties and properties are mutual exclusive",
        ),
        (
            with_spec({"type": "object", "anyOf": [{"type": "object", "required": ["a"]}]}),
            f"{SPEC}.anyOf[0].type: Forbidden: must be empty to be structural",
        ),
        (
            with_spec({"type": "object", "$ref": "#/definitions/x"}),
            f"{SPEC}.$ref: Forbidden: $ref is not supported",
        ),
        (
            with_spec(
                {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}
            ),
            f"{SPEC}.x-kubernetes-list-map-keys: Required value: "
            "must not be empty if x-kubernetes-list-type is map",
        ),
        (
            with_spec(
                {"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}
            ),
            f'{SPEC}.x-kubernetes-list-type: Unsupported value: "bag": '
            'supported values: "atomic", "set", "map"',
        ),
        (
            with_spec({"type": "integer", "minimum": 0, "default": -1}),
            f"{SPEC}.default: Invalid value: -1:  in body should be greater than or equal to 0",
        ),
        (
            with_spec(
                {"type": "object", "properties": {"n": {"type": "integer"}}, "default": {"n": "x"}}
            ),
            f'{SPEC}.default.n: Invalid value: "string": '
            'n in body must be of type integer: "string"',
        ),
        (
            {
                "type": "object",
                "properties": {
                    "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
                },
            },
            f"{ROOT}.properties[metadata]: Forbidden: must not specify anything other than "
            "name and generateName, but metadata is implicitly specified",
        ),
        (with_spec("nope"), f'{SPEC}: Invalid value: "nope": must be an object'),
        (
            with_spec({"type": "object", "required": 1}),
            f"{SPEC}.required: Invalid value: 1: must be of type array of strings",
        ),
        (
            with_spec({"type": "string", "maxLength": -1}),
            f"{SPEC}.maxLength: Invalid value: -1: must be greater than or equal to 0",
        ),
    ],
)
def test_malformed_schema_is_refused_with_its_path(schema: Any, expected: str) -> None:
    assert expected in errors_of(schema)


def test_every_problem_is_reported_at_once() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "array"},
            "b": {"type": "bogus"},
            "c": {"type": "object", "x-kubernetes-validations": [{"rule": "("}]},
        },
    }
    assert len(errors_of(schema)) == 3


@pytest.mark.parametrize(
    "bad_crd",
    [
        None,
        {},
        {"spec": {"versions": "v1"}},
        {"spec": {"versions": [{"name": "v2"}]}},
        {"spec": {"versions": [{"name": "v1"}]}},
        {"spec": "x"},
        {"spec": {"versions": [{"name": "v1", "schema": "x"}]}},
        {"spec": {"versions": ["v1", {"name": "v1", "schema": {"openAPIV3Schema": []}}]}},
    ],
)
def test_malformed_crd_objects(bad_crd: Any) -> None:
    with pytest.raises(SchemaError):
        CompiledSchema.from_crd(bad_crd, "v1")


def test_unknown_version_lists_the_known_ones() -> None:
    with pytest.raises(SchemaError) as info:
        CompiledSchema.from_crd(crd({"type": "object"}, version="v1beta1"), "v1")
    assert str(info.value) == 'spec.versions: Unsupported value: "v1": supported values: "v1beta1"'


def test_unknown_schema_keys_are_reported_not_fatal() -> None:
    schema = with_spec(
        {
            "type": "integer",
            "minimun": 0,
            "x-kubernetes-validations": [{"rule": "true", "mesage": "x"}],
        }
    )
    cs = CompiledSchema.from_crd(crd(schema), "v1")
    assert cs.unknown_fields == [f"{SPEC}.minimun", f"{SPEC}.x-kubernetes-validations[0].mesage"]
