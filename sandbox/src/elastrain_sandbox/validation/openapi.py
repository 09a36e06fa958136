"""OpenAPI v3 value validation with the kube-openapi validator's messages and error types.

Order and wording follow ``k8s.io/kube-openapi/pkg/validation/validate`` as the apiextensions
apiserver maps it to field errors: type first, then ``allOf``/``anyOf``/``oneOf``/``not``, string,
format, number, array, enum and object checks. On update, a subtree whose value equals the old
one is not re-validated (CRD validation ratcheting, GA since Kubernetes 1.33), so tightening a
schema never blocks unrelated edits such as status writes.
"""

from __future__ import annotations

import math
from typing import Any

from elastrain_sandbox.validation import errors as fe
from elastrain_sandbox.validation import formats
from elastrain_sandbox.validation.keywords import json_type
from elastrain_sandbox.validation.node import Node

MISSING: Any = object()
"""No correlated old value (create, a new field, or an uncorrelatable list item)."""


def same(a: Any, b: Any) -> bool:
    """JSON equality that, unlike ``==``, never equates ``true`` with ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _field(path: str) -> str:
    return path or fe.ROOT


def _bound(bound: float, value: Any) -> str:
    if isinstance(value, int) and float(bound).is_integer():
        return str(int(bound))
    return fe.go_float(float(bound))


class Validator:
    """Validates one value against a node; collects causes instead of raising."""

    def __init__(self) -> None:
        self.causes: list[fe.FieldCause] = []

    def validate(self, value: Any, node: Node, path: str, old: Any = MISSING) -> None:
        if old is not MISSING and same(value, old):
            return
        if not self._type(value, node, path) or value is None:
            return
        self._junctors(value, node, path)
        if isinstance(value, str):
            self._string(value, node, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, node, path)
        if isinstance(value, list):
            self._array(value, node, path, old)
        if node.enum is not None and not any(same(value, e) for e in node.enum):
            self.causes.append(fe.not_supported(_field(path), value, node.enum))
        if isinstance(value, dict):
            self._object(value, node, path, old)

    def _type(self, value: Any, node: Node, path: str) -> bool:
        types = ["integer", "string"] if node.int_or_string else [node.type] if node.type else []
        if not types:
            return True
        actual = json_type(value)
        if value is None:
            if node.nullable:
                return True
        elif (
            actual in types
            or (actual == "number" and "integer" in types and float(value).is_integer())
            or (actual == "integer" and "number" in types)
        ):
            return True
        detail = f"{path} in body must be of type {','.join(types)}: {fe.go_quote(actual)}"
        self.causes.append(fe.type_invalid(_field(path), actual, detail))
        return False

    def _sub(self, value: Any, node: Node, path: str) -> list[fe.FieldCause]:
        sub = Validator()
        sub.validate(value, node, path)
        return sub.causes

    def _junctors(self, value: Any, node: Node, path: str) -> None:
        quoted = fe.go_quote(path)
        if node.any_of:
            results = [self._sub(value, s, path) for s in node.any_of]
            if all(results):
                self._composite(f"{quoted} must validate at least one schema (anyOf)")
                self.causes.extend(_fewest(results))
        if node.one_of:
            results = [self._sub(value, s, path) for s in node.one_of]
            valid = sum(1 for r in results if not r)
            if valid != 1:
                more = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self._composite(f"{quoted} must validate one and only one schema (oneOf). {more}")
                if valid == 0:
                    self.causes.extend(_fewest(results))
        if node.all_of:
            results = [self._sub(value, s, path) for s in node.all_of]
            for r in results:
                self.causes.extend(r)
            valid = sum(1 for r in results if not r)
            if valid != len(results):
                more = ". None validated" if valid == 0 else ""
                self._composite(f"{quoted} must validate all the schemas (allOf){more}")
        if node.not_ is not None and not self._sub(value, node.not_, path):
            self._composite(f"{quoted} must not validate the schema (not)")

    def _composite(self, message: str) -> None:
        # Composite errors are not field errors upstream: they land on the nil path with "".
        self.causes.append(fe.invalid(fe.ROOT, "", message))

    def _string(self, value: str, node: Node, path: str) -> None:
        field = _field(path)
        if node.max_length is not None and len(value) > node.max_length:
            self.causes.append(fe.too_long(field, node.max_length))
        elif node.min_length is not None and len(value) < node.min_length:
            detail = f"{path} in body should be at least {node.min_length} chars long"
            self.causes.append(fe.invalid(field, value, detail))
        elif node.pattern is not None and node.pattern.search(value) is None:
            detail = f"{path} in body should match '{node.pattern_text}'"
            self.causes.append(fe.invalid(field, value, detail))
        if node.format and not formats.check(node.format, value):
            detail = f"{path} in body must be of type {node.format}: {fe.go_quote(value)}"
            self.causes.append(fe.type_invalid(field, value, detail))

    def _number(self, value: float, node: Node, path: str) -> None:
        field = _field(path)
        if node.type == "integer" and not _fits(value, node.format):
            # A plain error upstream, not a field error: it lands on the nil path with "".
            fmt = f"with format {node.format}" if node.format else "(default format)"
            self._composite(f"Checked value must be of type integer {fmt} in {path}")
        if node.multiple_of is not None and not _is_multiple(value, node.multiple_of):
            detail = f"{path} in body should be a multiple of {_bound(node.multiple_of, value)}"
            self.causes.append(fe.invalid(field, value, detail))
        if node.maximum is not None and (
            value > node.maximum or (node.exclusive_maximum and value == node.maximum)
        ):
            word = "less than" if node.exclusive_maximum else "less than or equal to"
            detail = f"{path} in body should be {word} {_bound(node.maximum, value)}"
            self.causes.append(fe.invalid(field, value, detail))
        if node.minimum is not None and (
            value < node.minimum or (node.exclusive_minimum and value == node.minimum)
        ):
            word = "greater than" if node.exclusive_minimum else "greater than or equal to"
            detail = f"{path} in body should be {word} {_bound(node.minimum, value)}"
            self.causes.append(fe.invalid(field, value, detail))

    def _array(self, value: list[Any], node: Node, path: str, old: Any) -> None:
        if node.items is not None:
            olds = correlate_items(value, node, old)
            for i, item in enumerate(value):
                self.validate(item, node.items, f"{path}[{i}]", olds[i])
        field = _field(path)
        if node.min_items is not None and len(value) < node.min_items:
            detail = f"{path} in body should have at least {node.min_items} items"
            self.causes.append(fe.invalid(field, len(value), detail))
        if node.max_items is not None and len(value) > node.max_items:
            self.causes.append(fe.too_many(field, len(value), node.max_items))

    def _object(self, value: dict[str, Any], node: Node, path: str, old: Any) -> None:
        field = _field(path)
        if node.min_properties is not None and len(value) < node.min_properties:
            detail = f"{path} in body should have at least {node.min_properties} properties"
            self.causes.append(fe.invalid(field, len(value), detail))
            return
        if node.max_properties is not None and len(value) > node.max_properties:
            self.causes.append(fe.too_many(field, len(value), node.max_properties))
            return
        prefix = f"{path}." if path else ""
        old_map = old if isinstance(old, dict) else {}
        for key, sub in value.items():
            if key in node.properties:
                continue
            if node.additional is False:
                detail = f"{prefix}{key} in body is a forbidden property"
                self.causes.append(fe.invalid(field, key, detail))
            elif isinstance(node.additional, Node):
                self.validate(sub, node.additional, prefix + key, old_map.get(key, MISSING))
        for key, prop in node.properties.items():
            if key in value:
                self.validate(value[key], prop, prefix + key, old_map.get(key, MISSING))
        for key in node.required:
            if key not in value:
                self.causes.append(fe.required(prefix + key))


def _fewest(results: list[list[fe.FieldCause]]) -> list[fe.FieldCause]:
    """The failures of the alternative that came closest, as upstream reports for anyOf/oneOf."""
    return min(results, key=lambda r: len(r))


def _fits(value: float, fmt: str | None) -> bool:
    bits = 32 if fmt == "int32" else 64
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def _is_multiple(value: float, factor: float) -> bool:
    if isinstance(value, int) and float(factor).is_integer():
        return value % int(factor) == 0
    quotient = value / factor if factor >= 1 else (1 / factor) * value
    return math.isfinite(quotient) and float(quotient).is_integer()


def correlate_items(value: list[Any], node: Node, old: Any) -> list[Any]:
    """Correlate list items with old ones: only ``x-kubernetes-list-type: map`` lists can be."""
    if node.list_type != "map" or not isinstance(old, list) or node.items is None:
        return [MISSING] * len(value)
    keys = node.list_map_keys
    by_key = {_map_key(o, keys): o for o in old if isinstance(o, dict)}
    return [
        by_key.get(_map_key(v, keys), MISSING) if isinstance(v, dict) else MISSING for v in value
    ]


def _map_key(item: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    """A hashable identity for an item of a ``list-type: map`` list."""
    return tuple(fe.go_value(item.get(k)) for k in keys)


def validate_openapi(obj: Any, root: Node, old: Any = MISSING) -> list[fe.FieldCause]:
    """All OpenAPI v3 value errors of ``obj`` against the schema rooted at ``root``."""
    validator = Validator()
    validator.validate(obj, root, "", old)
    return validator.causes
