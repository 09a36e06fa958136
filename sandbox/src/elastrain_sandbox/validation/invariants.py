"""Checks the apiserver runs after OpenAPI validation: embedded objects and list-type invariants.

Upstream these are separate passes (``schemaobjectmeta.Validate`` and
``structurallisttype.ValidateListSetsAndMaps``); their errors follow the OpenAPI ones, and their
paths name map entries as ``[key]`` (``field.Path.Key``), unlike the OpenAPI validator's ``.key``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from elastrain_sandbox.validation import errors as fe
from elastrain_sandbox.validation.node import Node

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_UNSPECIFIED = object()
"""The key of a list-map item that lacks it (upstream's ``unspecifiedKeyValue``)."""


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def check_invariants(obj: Any, root: Node) -> list[fe.FieldCause]:
    """Embedded resources' type meta, and list-type set/map uniqueness, over the whole object."""
    causes: list[fe.FieldCause] = []
    _walk(obj, root, "", causes, is_root=True)
    return causes


def _walk(
    value: Any, node: Node, path: str, causes: list[fe.FieldCause], *, is_root: bool = False
) -> None:
    if isinstance(value, dict):
        if node.embedded and not is_root:
            causes.extend(_embedded(value, path))
        for key, sub in value.items():
            if key in node.properties:
                _walk(sub, node.properties[key], _child(path, key), causes)
            elif isinstance(node.additional, Node):
                _walk(sub, node.additional, f"{path}[{key}]", causes)
    elif isinstance(value, list) and node.items is not None:
        if node.list_type == "set":
            causes.extend(fe.duplicate(f"{path}[{i}]", value[i]) for i in _repeats(value))
        elif node.list_type == "map":
            causes.extend(_check_map(value, node.list_map_keys, path))
        for i, item in enumerate(value):
            _walk(item, node.items, f"{path}[{i}]", causes)


def _embedded(value: dict[str, Any], path: str) -> list[fe.FieldCause]:
    """``apiVersion`` and ``kind`` of an embedded object (its ObjectMeta is not checked here)."""
    causes = [fe.required(_child(path, key)) for key in ("apiVersion", "kind") if key not in value]
    for key in ("apiVersion", "kind"):
        if key not in value:
            continue
        where, text = _child(path, key), value[key]
        if not isinstance(text, str):
            causes.append(fe.invalid(where, text, "must be a string"))
        elif not text:
            causes.append(fe.invalid(where, text, "must not be empty"))
        elif key == "apiVersion" and text.count("/") > 1:
            causes.append(fe.invalid(where, text, f"unexpected GroupVersion string: {text}"))
        elif key == "kind" and not _DNS1035.match(text.lower()):
            detail = f"may have mixed case, but should otherwise match: {_DNS1035_MESSAGE}"
            causes.append(fe.invalid(where, text, detail))
    return causes


def _identity(value: Any) -> Any:
    """Go's equality for set members: scalars by type and value, compounds by their JSON."""
    if isinstance(value, dict | list):
        return ("json", json.dumps(value, sort_keys=True, separators=(",", ":")))
    return (type(value).__name__, value)


def _repeats(values: list[Any]) -> list[int]:
    """Index of the second appearance of every repeated value (upstream reports only that one)."""
    seen: dict[Any, int] = {}
    repeats = []
    for i, value in enumerate(values):
        identity = value if value is _UNSPECIFIED else _identity(value)
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] == 2:
            repeats.append(i)
    return repeats


def _check_map(items: list[Any], keys: tuple[str, ...], path: str) -> list[fe.FieldCause]:
    for i, item in enumerate(items):
        if item is not None and not isinstance(item, dict):
            return [
                fe.invalid(f"{path}[{i}]", item, "must be an object for an array of list-type map")
            ]
    if len(keys) == 1:
        (key,) = keys
        values = [
            item[key] if isinstance(item, dict) and key in item else _UNSPECIFIED for item in items
        ]
        return [
            fe.duplicate(f"{path}[{i}]", {} if values[i] is _UNSPECIFIED else {key: values[i]})
            for i in _repeats(values)
        ]
    composite = [
        {k: item[k] for k in keys if k in item} if isinstance(item, dict) else {} for item in items
    ]
    return [fe.duplicate(f"{path}[{i}]", composite[i]) for i in _repeats(composite)]
