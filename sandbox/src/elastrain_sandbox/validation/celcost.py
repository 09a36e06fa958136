"""A rough static cost estimate of CEL rules, to warn before a real cluster refuses the CRD.

kube-apiserver estimates every rule's worst-case cost from the schema (lists, maps and strings
without ``maxItems``/``maxProperties``/``maxLength`` are assumed as large as a 3 MiB request
allows) and refuses a CRD whose rule exceeds 10,000,000, or whose rules together (times the
number of list and map entries they run on) exceed 100,000,000. cel-go's exact model is not
reproduced here: this estimate follows its shape (comprehensions multiply, string scans cost a
tenth per byte, regexes more) closely enough to catch the usual mistake, an unbounded list walked
by a rule, so the sandbox reports it as a warning instead of the CRD failing on a real cluster.
"""

from __future__ import annotations

import math
from typing import Any

from lark import Token, Tree

from elastrain_sandbox.validation.celfields import select_schema
from elastrain_sandbox.validation.node import Node

MAX_REQUEST_BYTES = 3 * 1024 * 1024
RULE_LIMIT = 10_000_000
CRD_LIMIT = 100_000_000
_MACROS = ("all", "exists", "exists_one", "map", "filter")
_SCANS = frozenset(
    {
        *("contains", "startsWith", "endsWith", "lowerAscii", "upperAscii", "trim", "split"),
        *("replace", "join", "indexOf", "lastIndexOf"),
    }
)


def _min_size(node: Node | None) -> int:
    """Bytes of the smallest JSON value a node accepts (``""``, ``{}``, ``0``)."""
    if node is None or node.type in ("integer", "number", "boolean"):
        return 1
    return 2


def cardinality(node: Node | None) -> int:
    """Worst-case entries of a list or map, as the apiserver assumes them."""
    if node is None:
        return MAX_REQUEST_BYTES // 2
    if node.items is not None:
        return (
            node.max_items
            if node.max_items is not None
            else (MAX_REQUEST_BYTES // (_min_size(node.items) + 1))
        )
    if isinstance(node.additional, Node):
        if node.max_properties is not None:
            return node.max_properties
        return MAX_REQUEST_BYTES // (_min_size(node.additional) + 4)
    return 1


def _length(node: Node | None) -> int:
    if node is not None and node.max_length is not None:
        return node.max_length
    return MAX_REQUEST_BYTES


def _element(node: Node | None) -> Node | None:
    if node is None:
        return None
    if node.items is not None:
        return node.items
    return node.additional if isinstance(node.additional, Node) else None


def _literal_length(tree: Any) -> int:
    for sub in tree.iter_subtrees() if isinstance(tree, Tree) else ():
        if sub.data == "literal":
            return max(1, len(str(sub.children[0])) - 2)
    return 1


class _Estimator:
    """Cost and schema of every sub-expression, with comprehension variables in scope."""

    def __init__(self, scope: dict[str, Node | None], resource: bool) -> None:
        self.scope = scope
        self.resource = resource

    def cost(self, tree: Any) -> tuple[float, Node | None]:
        if isinstance(tree, Token):
            return 0.0, None
        if tree.data == "ident":
            return 1.0, self.scope.get(str(tree.children[0]))
        if tree.data == "member_dot":
            cost, node = self.cost(tree.children[0])
            root = self.resource and node is not None and node is self.scope.get("self")
            return cost + 1, select_schema(node, str(tree.children[1]), root)
        if tree.data == "member_index":
            cost, node = self.cost(tree.children[0])
            return cost + self.cost(tree.children[1])[0] + 1, _element(node)
        if tree.data == "member_dot_arg":
            return self._call(tree)
        results = [self.cost(child) for child in tree.children]
        total = sum(cost for cost, _ in results)
        shape = results[0][1] if len(results) == 1 else None
        operator = any(
            isinstance(c, Tree) and c.data.startswith("relation_") for c in tree.children
        )
        return total + (1 if len(results) > 1 or operator else 0), shape

    def _call(self, tree: Tree[Any]) -> tuple[float, Node | None]:
        receiver_cost, receiver = self.cost(tree.children[0])
        name = str(tree.children[1])
        args = [c for c in tree.children[2:] if isinstance(c, Tree)]
        exprs = args[0].children if args else []
        if name in _MACROS and exprs:
            var = next(
                (str(t.children[0]) for t in exprs[0].iter_subtrees() if t.data == "ident"), ""
            )
            inner = _Estimator({**self.scope, var: _element(receiver)}, self.resource)
            body = sum(inner.cost(e)[0] for e in exprs[1:])
            return receiver_cost + cardinality(receiver) * (body + 1) + 1, None
        arg_cost = sum(self.cost(e)[0] for e in exprs)
        scan = math.ceil(0.1 * _length(receiver))
        if name == "matches":
            regex = math.ceil(0.25 * _literal_length(exprs[0] if exprs else None))
            return receiver_cost + arg_cost + 1 + scan * regex, None
        if name in _SCANS:
            return receiver_cost + arg_cost + 1 + scan, None
        return receiver_cost + arg_cost + 1, None


def estimate(tree: Tree[Any], node: Node, resource: bool) -> float:
    """The estimated worst-case cost of one rule on ``node`` (one evaluation)."""
    return _Estimator({"self": node, "oldSelf": node}, resource).cost(tree)[0]
