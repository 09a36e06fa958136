"""Small builders for OpenAPI v3 (structural) schema nodes, so ``schema.py`` reads like the API.

Every node gets a description, because ``kubectl explain trainingjob.spec...`` shows it; enum
values and defaults are converted to plain ``str`` so the YAML dump never sees an Enum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

Schema = dict[str, Any]


def rule(
    expression: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> Schema:
    """One ``x-kubernetes-validations`` entry (a CEL rule and the message naming the field)."""
    out: Schema = {"rule": expression, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    if reason is not None:
        out["reason"] = reason
    return out


def _with_rules(node: Schema, rules: Sequence[Schema] | None) -> Schema:
    if rules:
        node["x-kubernetes-validations"] = list(rules)
    return node


def obj(
    description: str,
    properties: dict[str, Schema],
    *,
    required: Sequence[str] | None = None,
    preserve_unknown: bool = False,
    default: dict[str, Any] | None = None,
    rules: Sequence[Schema] | None = None,
) -> Schema:
    """An object; ``default={}`` makes the API server apply the nested defaults when absent."""
    node: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        node["required"] = list(required)
    if preserve_unknown:
        node["x-kubernetes-preserve-unknown-fields"] = True
    if default is not None:
        node["default"] = default
    return _with_rules(node, rules)


def integer(
    description: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
    fmt: str = "int32",
    rules: Sequence[Schema] | None = None,
) -> Schema:
    """An integer with an optional range and default."""
    node: Schema = {"type": "integer", "format": fmt, "description": description}
    if minimum is not None:
        node["minimum"] = minimum
    if maximum is not None:
        node["maximum"] = maximum
    if default is not None:
        node["default"] = default
    return _with_rules(node, rules)


def string(
    description: str,
    *,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    fmt: str | None = None,
) -> Schema:
    """A string with optional pattern, length bounds and format."""
    node: Schema = {"type": "string", "description": description}
    if pattern is not None:
        node["pattern"] = pattern
    if min_length is not None:
        node["minLength"] = min_length
    if max_length is not None:
        node["maxLength"] = max_length
    if fmt is not None:
        node["format"] = fmt
    return node


def enum(
    description: str,
    values: Iterable[Any],
    default: Any,
    *,
    rules: Sequence[Schema] | None = None,
) -> Schema:
    """A string enum; ``values`` may be an Enum class or plain strings."""
    plain = [v.value if isinstance(v, Enum) else str(v) for v in values]
    node: Schema = {
        "type": "string",
        "description": description,
        "enum": plain,
        "default": default.value if isinstance(default, Enum) else str(default),
    }
    return _with_rules(node, rules)


def boolean(description: str, *, default: bool) -> Schema:
    """A boolean with a default."""
    return {"type": "boolean", "description": description, "default": default}
