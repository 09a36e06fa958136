"""Structural pruning and defaulting, as the apiserver applies them to every custom resource.

Pruning drops fields the schema does not declare (unless ``x-kubernetes-preserve-unknown-fields``
keeps them); defaulting fills ``default`` values and replaces ``null`` in non-nullable fields.
Both work on deep copies so a caller's object is never changed behind its back. The dropped paths
are reported too: the apiserver returns them as ``unknown field "spec.x"`` warnings (or errors
with ``fieldValidation=Strict``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from elastrain_sandbox.validation.node import Node

_ROOT_META = ("apiVersion", "kind", "metadata")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def prune(obj: dict[str, Any], root: Node) -> tuple[dict[str, Any], list[str]]:
    """Return a pruned deep copy of ``obj`` and the paths of the fields that were dropped."""
    out = copy.deepcopy(obj)
    dropped: list[str] = []
    if isinstance(out, dict):  # anything else is left for validation to report
        _prune_object(out, root, "", dropped, keep_meta=True)
    return out, dropped


def _prune(value: Any, node: Node, path: str, dropped: list[str]) -> Any:
    if (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and abs(value) < 2**63
    ):
        # The apiserver re-encodes JSON numbers through Go's float64/int64: 1.0 reads back as 1.
        return int(value)
    if isinstance(value, dict):
        _prune_object(value, node, path, dropped, keep_meta=node.embedded)
    elif isinstance(value, list) and node.items is not None:
        for i, item in enumerate(value):
            value[i] = _prune(item, node.items, f"{path}[{i}]", dropped)
    return value


def _prune_object(
    value: dict[str, Any], node: Node, path: str, dropped: list[str], *, keep_meta: bool
) -> None:
    for key in list(value):
        if keep_meta and key in _ROOT_META:
            # ObjectMeta and type meta are the registry's, never pruned by the schema (even when
            # the schema declares ``metadata: {type: object}``, as generated CRDs do).
            continue
        sub = node.child_schema(key)
        if sub is not None:
            value[key] = _prune(value[key], sub, _child(path, key), dropped)
        elif node.preserve_unknown or node.additional is True:
            continue
        else:
            dropped.append(_child(path, key))
            del value[key]


def default(obj: dict[str, Any], root: Node) -> dict[str, Any]:
    """Return a deep copy of ``obj`` with defaults applied and non-nullable nulls removed."""
    out = copy.deepcopy(obj)
    _default(out, root)
    return out


def _is_bad_null(value: Any, node: Node | None) -> bool:
    return value is None and node is not None and not node.nullable


def _default(value: Any, node: Node) -> None:
    if isinstance(value, dict):
        for key, prop in node.properties.items():
            if prop.has_default and (key not in value or _is_bad_null(value[key], prop)):
                value[key] = copy.deepcopy(prop.default)
        for key in list(value):
            sub = node.child_schema(key)
            if sub is None:
                continue
            if _is_bad_null(value[key], sub):
                if sub.has_default:
                    value[key] = copy.deepcopy(sub.default)
                else:
                    del value[key]
                    continue
            _default(value[key], sub)
    elif isinstance(value, list) and node.items is not None:
        for i, item in enumerate(value):
            if _is_bad_null(item, node.items) and node.items.has_default:
                value[i] = copy.deepcopy(node.items.default)
            _default(value[i], node.items)
