"""How a schema's fields look from CEL: escaped names, and the field checks cel-go makes.

Property names that are not CEL identifiers (``x-y``, ``a.b``) are exposed escaped
(``x__dash__y``), as ``k8s.io/apiserver/pkg/cel.Escape`` does. cel-go type-checks a rule against
the schema when the CRD is created, so ``self.replcas`` or ``self.name.first`` fail there, not on
the first object; ``check_fields`` reproduces that for field selections rooted at ``self`` or
``oldSelf`` (through indexes too), and treats whatever the schema leaves open as dynamic.
"""

from __future__ import annotations

import re
from typing import Any

from lark import Token, Tree

from elastrain_sandbox.validation.node import Node

_RESERVED = frozenset(
    {
        *("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for"),
        *("function", "if", "import", "let", "loop", "package", "namespace", "return"),
    }
)
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")
_ESCAPES = (("__", "__underscores__"), (".", "__dot__"), ("-", "__dash__"), ("/", "__slash__"))
_CEL_TYPES = {"string": "string", "integer": "int", "number": "double", "boolean": "bool"}

_NAME = Node(type="string", max_length=253)
_META = Node(type="object", properties={"name": _NAME, "generateName": _NAME})
_TYPE_META = {"apiVersion": Node(type="string"), "kind": Node(type="string"), "metadata": _META}


def escape(name: str) -> str | None:
    """The CEL identifier for a property name, or None when it cannot be one (not exposed)."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    for raw, escaped in _ESCAPES:
        name = name.replace(raw, escaped)
    return name


def _chain(tree: Any) -> tuple[str, list[Token | None]] | None:
    """``self.a[0].b`` as ("self", [a, None, b]); None when not rooted at an identifier."""
    if isinstance(tree, Token):
        return None
    if tree.data in ("member", "primary") and len(tree.children) == 1:
        return _chain(tree.children[0])
    if tree.data == "ident":
        return str(tree.children[0]), []
    if tree.data in ("member_dot", "member_index"):
        inner = _chain(tree.children[0])
        if inner is None:
            return None
        step = tree.children[1] if tree.data == "member_dot" else None
        return inner[0], [*inner[1], step]
    return None


def _select(node: Node | None, name: str, resource: bool) -> Node | str | None:
    """The schema of ``node.name``; None when dynamic; an error message when cel-go refuses it."""
    if node is None or node.int_or_string or node.preserve_unknown or node.additional is True:
        return None
    if node.type in _CEL_TYPES:
        return f"type '{_CEL_TYPES[node.type]}' does not support field selection"
    if node.type != "object":
        return None
    if (resource or node.embedded) and name in _TYPE_META:
        return _TYPE_META[name]
    by_cel_name = {escape(key): prop for key, prop in node.properties.items()}
    if name in by_cel_name:
        return by_cel_name[name]
    if isinstance(node.additional, Node):
        return node.additional
    return f"undefined field '{name}'"


def select_schema(node: Node | None, name: str, resource: bool) -> Node | None:
    """The schema of ``node.name`` as CEL sees it, or None when dynamic or refused."""
    found = _select(node, name, resource)
    return found if isinstance(found, Node) else None


def _index(node: Node | None) -> Node | None:
    if node is None:
        return None
    if node.items is not None:
        return node.items
    return node.additional if isinstance(node.additional, Node) else None


def check_fields(tree: Tree[Any], node: Node, resource: bool) -> str | None:
    """The first cel-go style field error of a parsed rule on ``node``, or None."""
    for sub in tree.iter_subtrees_topdown():
        if sub.data != "member_dot":
            continue
        chain = _chain(sub)
        if chain is None or chain[0] not in ("self", "oldSelf"):
            continue
        current: Node | None = node
        for position, step in enumerate(chain[1]):
            if step is None:
                current = _index(current)
                continue
            found = _select(current, str(step), resource and position == 0)
            if isinstance(found, str):
                return f"ERROR: <input>:{step.line}:{max(1, (step.column or 1) - 1)}: {found}"
            current = found
    return None
