"""The vocabulary of ``apiextensions.k8s.io/v1`` schemas: every keyword and its JSON type.

Kept apart from the parser so the tables read as the reference they are: a key missing here is a
typo to report, a key of the wrong JSON type is what the apiserver's decoder would reject.
"""

from __future__ import annotations

from typing import Any

TYPES = ("object", "array", "string", "integer", "number", "boolean")
LIST_TYPES = ["atomic", "set", "map"]
MAP_TYPES = ["granular", "atomic"]
UNSUPPORTED = ("$ref", "definitions", "dependencies", "additionalItems", "patternProperties", "id")
# Every key of apiextensions/v1 JSONSchemaProps and ValidationRule; anything else is a typo.
SCHEMA_KEYS = frozenset(
    {
        *UNSUPPORTED,
        *("$schema", "description", "type", "format", "title", "default", "maximum"),
        *("exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength"),
        *("pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "enum"),
        *("maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf"),
        *("not", "properties", "additionalProperties", "externalDocs", "example", "nullable"),
        *("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource"),
        *("x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type"),
        *("x-kubernetes-map-type", "x-kubernetes-validations"),
    }
)
RULE_KEYS = frozenset(
    {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"}
)
_STR, _BOOL, _INT = ("string",), ("boolean",), ("integer",)
_STRINGS, _LIST, _OBJ = ("array of strings",), ("array", "array of strings"), ("object",)
KEY_TYPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("type", "format", "pattern", "description", "title", "$schema", "id"), _STR),
    **dict.fromkeys(("$ref", "x-kubernetes-list-type", "x-kubernetes-map-type"), _STR),
    **dict.fromkeys(("maximum", "minimum", "multipleOf"), ("number", "integer")),
    **dict.fromkeys(("exclusiveMaximum", "exclusiveMinimum", "uniqueItems", "nullable"), _BOOL),
    **dict.fromkeys(
        (
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-embedded-resource",
            "x-kubernetes-int-or-string",
        ),
        _BOOL,
    ),
    **dict.fromkeys(
        ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"), _INT
    ),
    **dict.fromkeys(("required", "x-kubernetes-list-map-keys"), _STRINGS),
    **dict.fromkeys(("enum", "allOf", "anyOf", "oneOf", "x-kubernetes-validations"), _LIST),
    **dict.fromkeys(("not", "properties", "items", "externalDocs", "definitions"), _OBJ),
    **dict.fromkeys(("dependencies", "patternProperties"), _OBJ),
    **dict.fromkeys(("additionalProperties", "additionalItems"), ("object", "boolean")),
}
RULE_TYPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("rule", "message", "messageExpression", "reason", "fieldPath"), _STR),
    "optionalOldSelf": _BOOL,
}


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as the OpenAPI validator reports it (a value no
    JSON decoder makes is named by its Python type)."""
    return _json_type(value) or type(value).__name__


def json_kind(value: Any) -> str:
    """The JSON type of a schema keyword's value, in the words of ``KEY_TYPES``: a list of
    strings is ``"array of strings"``, and anything no JSON decoder makes is ``"null"``."""
    kind = _json_type(value) or "null"
    if kind == "array" and all(isinstance(v, str) for v in value):
        return "array of strings"
    return kind


def _json_type(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


JUNCTOR_FORBIDDEN = (
    "type",
    "default",
    "nullable",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)
