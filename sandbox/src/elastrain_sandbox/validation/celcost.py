"""A rough static cost estimate of CEL rules, to warn before a real cluster refuses the CRD.

kube-apiserver estimates every rule's worst-case cost from the schema (lists, maps and strings
without ``maxItems``/``maxProperties``/``maxLength`` are assumed as large as a 3 MiB request
allows) and refuses a CRD whose rule exceeds 10,000,000, or whose rules together (times the
number of list and map entries they run on) exceed 100,000,000. cel-go's exact model is not
reproduced here: this estimate follows its shape (comprehensions multiply, string scans cost a
tenth per byte, regexes more) closely enough to catch the usual mistake, an unbounded list walked
by a rule, so the sandbox reports it as a warning instead of the CRD failing on a real cluster.

Equality (``==``, ``!=``) is costed as cel-go's ``checker/cost.go`` does: a tenth of the smaller
operand's worst-case size, that size being the apiserver's ``DeclType.MaxElements`` of the schema
node it reads (``maxLength`` times 4 for a string, ``maxItems``, ``maxProperties``, the request
size for an int-or-string or an unbounded string, 0 for a number or an object). A value the
estimator cannot size costs as if it were 2**64 - 1 long: the result of ``type()`` is one (a call
result has no schema path, ``type()`` has no size estimator, and a type is not a fixed-size
scalar), so ``type(self.a) == type(oldSelf.a)`` is costed beyond any budget and the apiserver
refuses the CRD, whatever the schema bounds. That estimate is exact rather than approximate, so
such a rule is marked ``unbounded`` and the sandbox refuses the CRD too.
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
UNKNOWN_SIZE = float(2**64 - 1)
"""cel-go's ``UnknownSizeEstimate().Max`` (``math.MaxUint64``): the size of what it cannot bound."""
_STRING_TRAVERSAL = 0.1  # common.StringTraversalCostFactor
_FIXED_FORMATS = frozenset({"byte", "date", "date-time", "datetime", "duration"})
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"}
)
_WRAPPERS = frozenset(
    {
        *("expr", "conditionalor", "conditionaland", "relation", "addition"),
        *("multiplication", "unary", "member", "primary", "paren_expr"),
    }
)
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


def max_elements(node: Node) -> float | None:
    """``DeclType.MaxElements`` of a schema node, the size the apiserver's estimator gives a value
    read from it; None where this estimator does not model it (formats, untyped nodes)."""
    if node.int_or_string:
        return float(MAX_REQUEST_BYTES - 2)
    if node.type == "string":
        if node.format in _FIXED_FORMATS:
            return None
        if node.max_length is not None:
            return float(node.max_length * 4)  # maxLength counts runes, sizes are bytes
        if node.enum:
            return float(max((len(v) for v in node.enum if isinstance(v, str)), default=0))
        return float(MAX_REQUEST_BYTES - 2)
    if node.type in ("integer", "number", "boolean"):
        return 0.0
    if node.items is not None or isinstance(node.additional, Node):
        return float(cardinality(node))
    if node.type == "object" and not node.preserve_unknown:
        return 0.0
    return None


def _unwrap(tree: Any) -> Any:
    """The expression under single-child grammar wrappers (``(a)`` -> ``a``)."""
    while (
        isinstance(tree, Tree)
        and tree.data in _WRAPPERS
        and len(tree.children) == 1
        and isinstance(tree.children[0], Tree)
    ):
        tree = tree.children[0]
    return tree


def _string_literal_size(text: str) -> int:
    """Characters (bytes for ``b''``) of a CEL string or bytes literal, escapes counted as one."""
    body = text.lstrip("rRbB")
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    body = body[len(quote) : len(body) - len(quote)]
    return len(body) - body.count("\\")


def _literal_length(tree: Any) -> int:
    for sub in tree.iter_subtrees() if isinstance(tree, Tree) else ():
        if sub.data == "literal":
            return max(1, len(str(sub.children[0])) - 2)
    return 1


class _Estimator:
    """Cost and schema of every sub-expression, with comprehension variables in scope."""

    def __init__(
        self, scope: dict[str, Node | None], resource: bool, map_keys: frozenset[str] = frozenset()
    ) -> None:
        self.scope = scope
        self.resource = resource
        self.map_keys = map_keys
        """Comprehension variables bound to map keys (sized by the key type, not modelled)."""
        self.unbounded = False
        """Whether an equality compared two values of unknown size (cel-go saturates then)."""

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
        if (
            tree.data == "relation"
            and len(tree.children) == 2
            and isinstance(tree.children[0], Tree)
            and tree.children[0].data in ("relation_eq", "relation_ne")
        ):
            return self._equality(tree.children[0].children[0], tree.children[1]), None
        results = [self.cost(child) for child in tree.children]
        total = sum(cost for cost, _ in results)
        shape = results[0][1] if len(results) == 1 else None
        operator = any(
            isinstance(c, Tree) and c.data.startswith("relation_") for c in tree.children
        )
        return total + (1 if len(results) > 1 or operator else 0), shape

    def _equality(self, lhs: Any, rhs: Any) -> float:
        """cel-go's ``==``/``!=``: the operands, plus a tenth of the smaller one's max size."""
        lhs_cost, lhs_node = self.cost(lhs)
        rhs_cost, rhs_node = self.cost(rhs)
        lhs_size, rhs_size = self._size(lhs, lhs_node), self._size(rhs, rhs_node)
        if lhs_size is None or rhs_size is None:
            return lhs_cost + rhs_cost + 1  # not modelled: as cheap as a scalar comparison
        smallest = min(lhs_size, rhs_size)
        if smallest >= UNKNOWN_SIZE:
            self.unbounded = True
        return lhs_cost + rhs_cost + math.ceil(_STRING_TRAVERSAL * smallest)

    def _size(self, tree: Any, node: Node | None) -> float | None:
        """The worst-case size cel-go gives an operand; None where it is not modelled here."""
        expr = _unwrap(tree)
        if not isinstance(expr, Tree):
            return None
        if expr.data == "ident" and str(expr.children[0]) in self.map_keys:
            return None
        if node is not None:
            return max_elements(node)
        if expr.data == "literal":
            token = expr.children[0]
            if isinstance(token, Token) and token.type in (
                "STRING_LIT",
                "MLSTRING_LIT",
                "BYTES_LIT",
            ):
                return float(_string_literal_size(str(token)))
            return 1.0
        if expr.data in ("list_lit", "map_lit"):
            inits = next((c for c in expr.children if isinstance(c, Tree)), None)
            count = len(inits.children) if inits is not None else 0
            return float(count // 2 if expr.data == "map_lit" else count)
        if expr.data == "ident_arg" and str(expr.children[0]) == "type":
            return UNKNOWN_SIZE  # no schema path, no size estimator, not a fixed-size scalar
        name = str(expr.children[0]) if expr.data == "ident" else ""
        if name in _TYPE_NAMES and name not in self.scope:
            # A type name's path is just [name]; the apiserver's size estimator drops the first
            # element of every path, so it is sized as the node the rule sits on.
            root = self.scope.get("self")
            return max_elements(root) if root is not None else None
        return None

    def _call(self, tree: Tree[Any]) -> tuple[float, Node | None]:
        receiver_cost, receiver = self.cost(tree.children[0])
        name = str(tree.children[1])
        args = [c for c in tree.children[2:] if isinstance(c, Tree)]
        exprs = args[0].children if args else []
        if name in _MACROS and exprs:
            var = next(
                (str(t.children[0]) for t in exprs[0].iter_subtrees() if t.data == "ident"), ""
            )
            keys = self.map_keys - {var}
            if receiver is not None and receiver.items is None and receiver.additional is not None:
                keys = keys | {var}
            inner = _Estimator({**self.scope, var: _element(receiver)}, self.resource, keys)
            body = sum(inner.cost(e)[0] for e in exprs[1:])
            self.unbounded = self.unbounded or inner.unbounded
            return receiver_cost + cardinality(receiver) * (body + 1) + 1, None
        arg_cost = sum(self.cost(e)[0] for e in exprs)
        scan = math.ceil(0.1 * _length(receiver))
        if name == "matches":
            regex = math.ceil(0.25 * _literal_length(exprs[0] if exprs else None))
            return receiver_cost + arg_cost + 1 + scan * regex, None
        if name in _SCANS:
            return receiver_cost + arg_cost + 1 + scan, None
        return receiver_cost + arg_cost + 1, None


def estimate(tree: Tree[Any], node: Node, resource: bool) -> tuple[float, bool]:
    """The estimated worst-case cost of one rule on ``node`` (one evaluation), and whether it is
    unbounded: cel-go's estimate saturates there whatever the schema says (see above)."""
    estimator = _Estimator({"self": node, "oldSelf": node}, resource)
    cost = estimator.cost(tree)[0]
    return min(cost, UNKNOWN_SIZE), estimator.unbounded
