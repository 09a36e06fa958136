"""Parse an ``openAPIV3Schema`` into a tree of nodes, refusing what a structural schema forbids.

The apiserver only serves CRDs whose schemas are *structural* (every field typed, value checks in
``allOf``/``anyOf``/``oneOf``/``not`` only, no ``$ref`` ...). Checking that once here lets the
validator, pruner and defaulter trust the tree, and gives the CRD's author the apiserver's error
at creation time instead of a surprise on the first custom resource.
"""

from __future__ import annotations

import re
from typing import Any

from elastrain_sandbox.validation import errors as fe
from elastrain_sandbox.validation.keywords import (
    JUNCTOR_FORBIDDEN,
    KEY_TYPES,
    LIST_TYPES,
    MAP_TYPES,
    RULE_KEYS,
    RULE_TYPES,
    SCHEMA_KEYS,
    TYPES,
    UNSUPPORTED,
    json_kind,
)
from elastrain_sandbox.validation.node import Node, RuleSpec


class _Parser:
    """Walks a raw schema, collecting every structural error instead of stopping at the first."""

    def __init__(self) -> None:
        self.causes: list[fe.FieldCause] = []
        self.unknown: list[str] = []

    def fail(self, cause: fe.FieldCause) -> None:
        self.causes.append(cause)

    def parse(
        self,
        raw: Any,
        path: str,
        *,
        junctor: bool,
        correlatable: bool,
        root: bool = False,
        rules: bool = True,
    ) -> Node:
        """Parse one node; ``junctor`` marks value-only subtrees, where only ``allOf`` may hold
        rules (``rules``), as since Kubernetes 1.35."""
        node = Node(crd_path=path, correlatable=correlatable)
        if not isinstance(raw, dict):
            self.fail(
                fe.invalid(
                    path,
                    raw if isinstance(raw, str | int | float | bool) else "",
                    "must be an object",
                )
            )
            return node
        self.unknown.extend(f"{path}.{key}" for key in raw if key not in SCHEMA_KEYS)
        raw = self._well_typed(raw, path, KEY_TYPES)
        self._check_forbidden(raw, path, junctor, rules)
        self._structure(node, raw, path, junctor, root, rules)
        self._values(node, raw, path)
        self._junctors(node, raw, path, rules)
        if rules:
            self._rules(node, raw, path)
        return node

    def _well_typed(
        self, raw: dict[str, Any], path: str, types: dict[str, tuple[str, ...]]
    ) -> dict[str, Any]:
        """Drop (and report) keys whose JSON type is wrong, as decoding the CRD would fail."""
        out = {}
        for key, value in raw.items():
            allowed = types.get(key)
            if allowed is None or json_kind(value) in allowed:
                out[key] = value
            else:
                detail = f"must be of type {' or '.join(allowed)}"
                self.fail(fe.invalid(f"{path}.{key}", value, detail))
        return out

    def _check_forbidden(self, raw: dict[str, Any], path: str, junctor: bool, rules: bool) -> None:
        for key in UNSUPPORTED:
            if key in raw:
                self.fail(fe.forbidden(f"{path}.{key}", f"{key} is not supported"))
        if raw.get("uniqueItems") is True:
            self.fail(
                fe.forbidden(
                    f"{path}.uniqueItems",
                    "uniqueItems cannot be set to true since the runtime complexity "
                    "becomes quadratic",
                )
            )
        if junctor:
            for key in JUNCTOR_FORBIDDEN:
                if key not in raw:
                    continue
                allowed = (key == "type" and raw[key] in ("integer", "string")) or (
                    key == "x-kubernetes-validations" and rules
                )
                if not allowed:
                    self.fail(fe.forbidden(f"{path}.{key}", "must be empty to be structural"))

    def _structure(
        self, node: Node, raw: dict[str, Any], path: str, junctor: bool, root: bool, rules: bool
    ) -> None:
        node.type = raw.get("type")
        node.nullable = raw.get("nullable") is True
        node.int_or_string = raw.get("x-kubernetes-int-or-string") is True
        node.embedded = raw.get("x-kubernetes-embedded-resource") is True
        preserve = raw.get("x-kubernetes-preserve-unknown-fields")
        if preserve is False:
            self.fail(
                fe.invalid(
                    f"{path}.x-kubernetes-preserve-unknown-fields",
                    False,
                    "must be true or undefined",
                )
            )
        node.preserve_unknown = preserve is True
        if node.type is not None and node.type not in TYPES:
            self.fail(fe.not_supported(f"{path}.type", node.type, list(TYPES)))
            node.type = None
        if node.int_or_string and node.type is not None:
            self.fail(
                fe.invalid(
                    f"{path}.type", node.type, "must be empty if x-kubernetes-int-or-string is true"
                )
            )
        untyped = "type" not in raw
        if not junctor and untyped and not (node.int_or_string or node.preserve_unknown):
            where = "at the root" if root else "for specified fields"
            self.fail(fe.required(f"{path}.type", f"must not be empty {where}"))
        if root and node.type not in (None, "object"):
            self.fail(fe.invalid(f"{path}.type", node.type, "must be object at the root"))
        if node.embedded and node.type != "object":
            self.fail(
                fe.invalid(
                    f"{path}.type",
                    node.type or "",
                    "must be object if x-kubernetes-embedded-resource is true",
                )
            )
        if "default" in raw:
            node.has_default, node.default = True, raw["default"]
        self._children(node, raw, path, junctor, rules)
        self._list_and_map_types(node, raw, path)

    def _children(
        self, node: Node, raw: dict[str, Any], path: str, junctor: bool, rules: bool
    ) -> None:
        props = raw.get("properties") or {}
        for name, sub in props.items():
            node.properties[name] = self.parse(
                sub,
                f"{path}.properties[{name}]",
                junctor=junctor,
                correlatable=node.correlatable,
                rules=rules,
            )
        additional = raw.get("additionalProperties")
        if additional is not None:
            if props:
                self.fail(
                    fe.forbidden(
                        f"{path}.additionalProperties",
                        "additionalProperties and properties are mutual exclusive",
                    )
                )
            if isinstance(additional, bool):
                node.additional = additional
            else:
                node.additional = self.parse(
                    additional,
                    f"{path}.additionalProperties",
                    junctor=junctor,
                    correlatable=node.correlatable,
                    rules=rules,
                )
        items = raw.get("items")
        if items is not None:
            keyed = raw.get("x-kubernetes-list-type") == "map"
            node.items = self.parse(
                items,
                f"{path}.items",
                junctor=junctor,
                correlatable=node.correlatable and keyed,
                rules=rules,
            )
        elif node.type == "array" and not junctor:
            self.fail(fe.required(f"{path}.items", "must be specified"))

    def _list_and_map_types(self, node: Node, raw: dict[str, Any], path: str) -> None:
        list_type = raw.get("x-kubernetes-list-type")
        keys = raw.get("x-kubernetes-list-map-keys")
        map_type = raw.get("x-kubernetes-map-type")
        if list_type is not None:
            if list_type not in LIST_TYPES:
                self.fail(fe.not_supported(f"{path}.x-kubernetes-list-type", list_type, LIST_TYPES))
            elif node.type != "array":
                self.fail(
                    fe.invalid(
                        f"{path}.type",
                        node.type or "",
                        "must be array if x-kubernetes-list-type is specified",
                    )
                )
            else:
                node.list_type = list_type
        if keys is not None:
            if list_type != "map":
                self.fail(
                    fe.forbidden(
                        f"{path}.x-kubernetes-list-map-keys",
                        "must not be set if x-kubernetes-list-type is not map",
                    )
                )
            else:
                node.list_map_keys = tuple(keys)
        if node.list_type == "map":
            self._check_map_keys(node, path)
        if map_type is not None:
            if map_type not in MAP_TYPES:
                self.fail(fe.not_supported(f"{path}.x-kubernetes-map-type", map_type, MAP_TYPES))
            elif node.type != "object":
                self.fail(
                    fe.invalid(
                        f"{path}.type",
                        node.type or "",
                        "must be object if x-kubernetes-map-type is specified",
                    )
                )
            else:
                node.map_type = map_type

    def _check_map_keys(self, node: Node, path: str) -> None:
        if not node.list_map_keys:
            self.fail(
                fe.required(
                    f"{path}.x-kubernetes-list-map-keys",
                    "must not be empty if x-kubernetes-list-type is map",
                )
            )
            return
        items = node.items
        if items is None or items.type != "object":
            self.fail(
                fe.invalid(
                    f"{path}.items.type",
                    "",
                    "must be object if parent array's x-kubernetes-list-type is map",
                )
            )
            return
        for key in node.list_map_keys:
            prop = items.properties.get(key)
            if prop is None:
                self.fail(
                    fe.invalid(
                        f"{path}.x-kubernetes-list-map-keys",
                        key,
                        "entries must all be names of item properties",
                    )
                )
            elif (
                prop.type not in ("string", "integer", "number", "boolean")
                and not prop.int_or_string
            ):
                self.fail(
                    fe.invalid(
                        f"{path}.items.properties[{key}].type",
                        prop.type or "",
                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                    )
                )
            elif key not in items.required and not prop.has_default:
                self.fail(
                    fe.required(
                        f"{path}.items.properties[{key}]",
                        "all map keys must be required or have a default value",
                    )
                )

    def _values(self, node: Node, raw: dict[str, Any], path: str) -> None:
        node.required = tuple(raw.get("required") or ())
        node.enum = raw.get("enum")
        if "pattern" in raw:
            node.pattern_text = raw["pattern"]
            try:
                node.pattern = re.compile(node.pattern_text)
            except re.error as exc:
                self.fail(
                    fe.invalid(
                        f"{path}.pattern",
                        node.pattern_text,
                        f"must be a valid regular expression, but isn't: {exc}",
                    )
                )
        node.format = raw.get("format")
        for key, attr in (
            ("minimum", "minimum"),
            ("maximum", "maximum"),
            ("multipleOf", "multiple_of"),
        ):
            setattr(node, attr, raw.get(key))
        if node.multiple_of is not None and node.multiple_of <= 0:
            self.fail(
                fe.invalid(f"{path}.multipleOf", node.multiple_of, "must be greater than zero")
            )
        node.exclusive_minimum = raw.get("exclusiveMinimum") is True
        node.exclusive_maximum = raw.get("exclusiveMaximum") is True
        for key, attr in (
            ("minLength", "min_length"),
            ("maxLength", "max_length"),
            ("minItems", "min_items"),
            ("maxItems", "max_items"),
            ("minProperties", "min_properties"),
            ("maxProperties", "max_properties"),
        ):
            value = raw.get(key)
            if value is not None and value < 0:
                self.fail(fe.invalid(f"{path}.{key}", value, "must be greater than or equal to 0"))
            else:
                setattr(node, attr, value)

    def _junctors(self, node: Node, raw: dict[str, Any], path: str, rules: bool) -> None:
        node.all_of = [
            self.parse(
                sub,
                f"{path}.allOf[{i}]",
                junctor=True,
                correlatable=node.correlatable,
                rules=rules,
            )
            for i, sub in enumerate(raw.get("allOf") or [])
        ]
        for branch in node.all_of:
            _link_shape(branch, node.shape or node)
        for key, attr in (("anyOf", "any_of"), ("oneOf", "one_of")):
            parsed = [
                self.parse(sub, f"{path}.{key}[{i}]", junctor=True, correlatable=False, rules=False)
                for i, sub in enumerate(raw.get(key) or [])
            ]
            setattr(node, attr, parsed)
        if "not" in raw:
            node.not_ = self.parse(
                raw["not"], f"{path}.not", junctor=True, correlatable=False, rules=False
            )

    def _rules(self, node: Node, raw: dict[str, Any], path: str) -> None:
        for i, entry in enumerate(raw.get("x-kubernetes-validations") or []):
            rpath = f"{path}.x-kubernetes-validations[{i}]"
            if not isinstance(entry, dict):
                self.fail(fe.invalid(rpath, "", "must be an object"))
                continue
            entry = self._well_typed(entry, rpath, RULE_TYPES)
            if not entry.get("rule", "").strip():
                self.fail(fe.required(f"{rpath}.rule", ""))
                continue
            self.unknown.extend(f"{rpath}.{key}" for key in entry if key not in RULE_KEYS)
            node.rules.append(
                RuleSpec(
                    rule=entry["rule"],
                    message=entry.get("message"),
                    message_expression=entry.get("messageExpression"),
                    reason=entry.get("reason"),
                    field_path=entry.get("fieldPath"),
                    optional_old_self=entry.get("optionalOldSelf") is True,
                    crd_path=rpath,
                )
            )


def _link_shape(branch: Node, skeleton: Node) -> None:
    """Point an ``allOf`` subtree at the structural nodes it constrains, field by field."""
    branch.shape = skeleton
    for name, prop in branch.properties.items():
        if name in skeleton.properties:
            _link_shape(prop, skeleton.properties[name])
    if branch.items is not None and skeleton.items is not None:
        _link_shape(branch.items, skeleton.items)
    if isinstance(branch.additional, Node) and isinstance(skeleton.additional, Node):
        _link_shape(branch.additional, skeleton.additional)


def parse_schema(raw: Any, path: str) -> tuple[Node, list[fe.FieldCause], list[str]]:
    """Parse a root ``openAPIV3Schema``: the tree, every structural error, unknown keys' paths."""
    parser = _Parser()
    node = parser.parse(raw, path, junctor=False, correlatable=True, root=True)
    return node, parser.causes, parser.unknown
