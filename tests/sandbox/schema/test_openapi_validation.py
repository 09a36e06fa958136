"""OpenAPI v3 value validation: one test per keyword, good and bad input, exact kubectl text."""

from __future__ import annotations

from typing import Any

import pytest
from schema_helpers import lines, obj, spec_schema


def check(properties: dict[str, Any], spec: Any, **extra: Any) -> list[str]:
    return lines(spec_schema(properties, **extra).validate(obj(spec)))


def test_valid_object_has_no_causes() -> None:
    props = {"replicas": {"type": "integer", "minimum": 0}, "name": {"type": "string"}}
    assert check(props, {"replicas": 3, "name": "a"}) == []


@pytest.mark.parametrize(
    ("schema_type", "value", "actual"),
    [
        ("integer", "x", "string"),
        ("integer", 1.5, "number"),
        ("string", 3, "integer"),
        ("boolean", "true", "string"),
        ("object", [], "array"),
        ("array", {}, "object"),
        ("number", True, "boolean"),
    ],
)
def test_wrong_type_is_type_invalid(schema_type: str, value: Any, actual: str) -> None:
    props: dict[str, Any] = {"f": {"type": schema_type}}
    if schema_type == "array":
        props["f"]["items"] = {"type": "string"}
    causes = spec_schema(props).validate(obj({"f": value}))
    assert causes[0].field == "spec.f"
    assert causes[0].type == "FieldValueTypeInvalid"
    assert causes[0].message == (
        f'Invalid value: "{actual}": spec.f in body must be of type {schema_type}: "{actual}"'
    )


def test_integral_float_is_an_integer_and_ints_are_numbers() -> None:
    props = {"i": {"type": "integer"}, "n": {"type": "number"}}
    assert check(props, {"i": 2.0, "n": 2}) == []


def test_null_needs_nullable() -> None:
    props = {"a": {"type": "string"}, "b": {"type": "string", "nullable": True}}
    assert check(props, {"a": None, "b": None}) == [
        'spec.a: Invalid value: "null": spec.a in body must be of type string: "null"'
    ]


def test_required() -> None:
    causes = spec_schema({"a": {"type": "string"}}, required=["a"]).validate(obj({}))
    assert [(c.field, c.type, c.message) for c in causes[:1]] == [
        ("spec.a", "FieldValueRequired", "Required value")
    ]


def test_enum_is_not_supported_with_quoted_values() -> None:
    props = {"p": {"type": "string", "enum": ["Never", "OnFailure"]}}
    assert check(props, {"p": "Never"}) == []
    causes = spec_schema(props).validate(obj({"p": "Foo"}))
    assert causes[0].type == "FieldValueNotSupported"
    assert (
        str(causes[0]) == 'spec.p: Unsupported value: "Foo": supported values: "Never", "OnFailure"'
    )


def test_integer_enum_values_are_json() -> None:
    assert check({"p": {"type": "integer", "enum": [1, 2]}}, {"p": 3})[0] == (
        'spec.p: Unsupported value: 3: supported values: "1", "2"'
    )


def test_minimum_and_maximum() -> None:
    props = {"r": {"type": "integer", "minimum": 0, "maximum": 10}}
    assert check(props, {"r": 0}) == []
    assert check(props, {"r": 10}) == []
    assert check(props, {"r": -1}) == [
        "spec.r: Invalid value: -1: spec.r in body should be greater than or equal to 0"
    ]
    assert check(props, {"r": 11}) == [
        "spec.r: Invalid value: 11: spec.r in body should be less than or equal to 10"
    ]


def test_exclusive_bounds() -> None:
    props = {
        "r": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        "s": {"type": "number", "maximum": 1.5, "exclusiveMaximum": True},
    }
    assert check(props, {"r": 0.5, "s": 1}) == []
    assert check(props, {"r": 0, "s": 1.5}) == [
        "spec.r: Invalid value: 0: spec.r in body should be greater than 0",
        "spec.s: Invalid value: 1.5: spec.s in body should be less than 1.5",
    ]


def test_multiple_of() -> None:
    props = {"r": {"type": "integer", "multipleOf": 4}, "f": {"type": "number", "multipleOf": 0.5}}
    assert check(props, {"r": 8, "f": 1.5}) == []
    assert check(props, {"r": 6, "f": 0.3}) == [
        "spec.r: Invalid value: 6: spec.r in body should be a multiple of 4",
        "spec.f: Invalid value: 0.3: spec.f in body should be a multiple of 0.5",
    ]


def test_string_lengths_and_pattern() -> None:
    props = {
        "long": {"type": "string", "maxLength": 3},
        "short": {"type": "string", "minLength": 2},
        "pat": {"type": "string", "pattern": "^[a-z]+$"},
    }
    assert check(props, {"long": "abc", "short": "ab", "pat": "ok"}) == []
    causes = spec_schema(props).validate(obj({"long": "abcd", "short": "a", "pat": "Bad"}))
    assert [(c.type, str(c)) for c in causes] == [
        ("FieldValueTooLong", "spec.long: Too long: may not be more than 3 bytes"),
        (
            "FieldValueInvalid",
            'spec.short: Invalid value: "a": spec.short in body should be at least 2 chars long',
        ),
        (
            "FieldValueInvalid",
            "spec.pat: Invalid value: \"Bad\": spec.pat in body should match '^[a-z]+$'",
        ),
    ]


def test_max_length_counts_characters_not_bytes() -> None:
    assert check({"s": {"type": "string", "maxLength": 2}}, {"s": "éé"}) == []


def test_array_items_bounds() -> None:
    props = {
        "l": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "minItems": 1,
            "maxItems": 2,
        }
    }
    assert check(props, {"l": [1]}) == []
    assert check(props, {"l": []}) == [
        "spec.l: Invalid value: 0: spec.l in body should have at least 1 items"
    ]
    causes = spec_schema(props).validate(obj({"l": [1, 0, 3]}))
    assert [(c.type, str(c)) for c in causes] == [
        (
            "FieldValueInvalid",
            "spec.l[1]: Invalid value: 0: spec.l[1] in body should be greater than or equal to 1",
        ),
        ("FieldValueTooMany", "spec.l: Too many: 3: must have at most 2 items"),
    ]


def test_properties_bounds() -> None:
    props = {
        "m": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "minProperties": 1,
            "maxProperties": 2,
        }
    }
    assert check(props, {"m": {"a": "x"}}) == []
    assert check(props, {"m": {}}) == [
        "spec.m: Invalid value: 0: spec.m in body should have at least 1 properties"
    ]
    causes = spec_schema(props).validate(obj({"m": {"a": "", "b": "", "c": ""}}))
    assert [(c.type, str(c)) for c in causes] == [
        ("FieldValueTooMany", "spec.m: Too many: 3: must have at most 2 items")
    ]


def test_additional_properties_schema_paths_use_dots() -> None:
    props = {"m": {"type": "object", "additionalProperties": {"type": "integer", "maximum": 3}}}
    assert check(props, {"m": {"worker": 4}}) == [
        "spec.m.worker: Invalid value: 4: spec.m.worker in body should be less than or equal to 3"
    ]


def test_int_or_string() -> None:
    props = {"port": {"x-kubernetes-int-or-string": True}}
    assert check(props, {"port": 80}) == []
    assert check(props, {"port": "http"}) == []
    assert check(props, {"port": 1.5}) == [
        'spec.port: Invalid value: "number": '
        'spec.port in body must be of type integer,string: "number"'
    ]


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date-time", "2024-05-01T10:00:00Z", "yesterday"),
        ("date", "2024-05-01", "2024-13-01"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "nope"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
        ("ipv6", "::1", "10.0.0.1"),
        ("cidr", "10.0.0.0/8", "10.0.0.0"),
        ("byte", "aGVsbG8=", "not base64!"),
        ("hostname", "job-worker-0.job", "-bad-"),
    ],
)
def test_formats(fmt: str, good: str, bad: str) -> None:
    props = {"s": {"type": "string", "format": fmt}}
    assert check(props, {"s": good}) == []
    causes = spec_schema(props).validate(obj({"s": bad}))
    assert [(c.type, str(c)) for c in causes] == [
        (
            "FieldValueTypeInvalid",
            f'spec.s: Invalid value: "{bad}": spec.s in body must be of type {fmt}: "{bad}"',
        )
    ]


def test_unknown_and_numeric_formats_are_not_checked() -> None:
    props = {
        "s": {"type": "string", "format": "k8s-thing"},
        "i": {"type": "integer", "format": "int32"},
    }
    assert check(props, {"s": "anything", "i": 5}) == []


def test_integer_formats_bound_the_range() -> None:
    props = {"a": {"type": "integer", "format": "int32"}, "b": {"type": "integer"}}
    assert check(props, {"a": 2**31 - 1, "b": 2**63 - 1}) == []
    prefix = '<nil>: Invalid value: "": Checked value must be of type integer'
    assert check(props, {"a": 2**31, "b": 2**63}) == [
        f"{prefix} with format int32 in spec.a",
        f"{prefix} (default format) in spec.b",
    ]
