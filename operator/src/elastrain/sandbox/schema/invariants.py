"""Checks the apiserver runs after OpenAPI validation: embedded objects and list-type invariants.

Upstream these are separate passes (``schemaobjectmeta.Validate`` and
``structurallisttype.ValidateListSetsAndMaps``); their errors follow the OpenAPI ones.
"""

from __future__ import annotations

from typing import Any

from elastrain.sandbox.schema import errors as fe
from elastrain.sandbox.schema.node import Node
from elastrain.sandbox.schema.openapi import map_key, same


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def check_invariants(obj: Any, root: Node) -> list[fe.FieldCause]:
    """Embedded-resource ``apiVersion``/``kind`` presence, list-type set/map uniqueness."""
    causes: list[fe.FieldCause] = []
    _walk(obj, root, "", causes, is_root=True)
    return causes


def _walk(
    value: Any, node: Node, path: str, causes: list[fe.FieldCause], *, is_root: bool = False
) -> None:
    if isinstance(value, dict):
        if node.embedded and not is_root:
            for key in ("apiVersion", "kind"):
                if not value.get(key):
                    causes.append(fe.required(_child(path, key), "must not be empty"))
        for key, sub in value.items():
            schema = node.child_schema(key)
            if schema is not None:
                _walk(sub, schema, _child(path, key), causes)
    elif isinstance(value, list) and node.items is not None:
        if node.list_type == "set":
            _check_set(value, path, causes)
        elif node.list_type == "map":
            _check_map(value, node, path, causes)
        for i, item in enumerate(value):
            _walk(item, node.items, f"{path}[{i}]", causes)


def _check_set(value: list[Any], path: str, causes: list[fe.FieldCause]) -> None:
    for i, item in enumerate(value):
        if any(same(item, earlier) for earlier in value[:i]):
            causes.append(fe.duplicate(f"{path}[{i}]", item))


def _check_map(value: list[Any], node: Node, path: str, causes: list[fe.FieldCause]) -> None:
    seen: set[tuple[str, ...]] = set()
    keys = node.list_map_keys
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            causes.append(
                fe.invalid(f"{path}[{i}]", item, "must be an object for an array of list-type map")
            )
            continue
        missing = [k for k in keys if k not in item]
        for key in missing:
            causes.append(fe.required(f"{path}[{i}].{key}"))
        if missing:
            continue
        identity = map_key(item, keys)
        if identity in seen:
            causes.append(fe.duplicate(f"{path}[{i}]", {k: item[k] for k in keys}))
        seen.add(identity)
