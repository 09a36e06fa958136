"""Compile ``x-kubernetes-validations`` once per CRD, refusing rules the apiserver refuses.

celpy only parses, so the checks cel-go's type checker would make are approximated here: a syntax
error, an undeclared function or variable, ``oldSelf`` where no old value can be correlated, a bad
``reason``/``fieldPath``/``message`` all fail the CRD with a ``SchemaError`` naming the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import celpy
from lark import Token, Tree

from elastrain_sandbox.validation import errors as fe
from elastrain_sandbox.validation.celcost import estimate
from elastrain_sandbox.validation.celfields import check_fields
from elastrain_sandbox.validation.celfuncs import BUILTINS, FUNCTIONS
from elastrain_sandbox.validation.node import Node, RuleSpec

REASONS = ["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"]
_TYPE_IDENTS = frozenset(
    {"int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"}
)
_FIELD_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]")

_ENV = celpy.Environment()


@dataclass(frozen=True)
class Outcome:
    """What one rule said about one value: passed, failed with its message, or errored."""

    passed: bool
    message: str = ""
    errored: bool = False


_CACHE_SIZE = 256


@dataclass
class CompiledRule:
    """A rule with its compiled programs, and the outcomes of recent evaluations.

    celpy interprets the parse tree, about a millisecond for a long rule, and the apiserver
    re-runs transition rules on every write (a status update re-checks the unchanged spec), so
    outcomes are memoised by the values they were computed from.
    """

    spec: RuleSpec
    program: Any
    message_program: Any | None
    uses_old_self: bool
    field_path: tuple[tuple[str, bool], ...]
    cost: float
    """Estimated worst-case cost of one evaluation (see ``celcost``)."""
    unbounded: bool = False
    """Whether ``cost`` is cel-go's saturated estimate, which no schema bound can lower."""
    cache: dict[str, Outcome] = field(default_factory=dict)

    def remember(self, key: str, outcome: Outcome) -> None:
        """Keep an outcome, forgetting everything once the cache is full (bounded memory)."""
        if len(self.cache) >= _CACHE_SIZE:
            self.cache.clear()
        self.cache[key] = outcome

    @property
    def shown(self) -> str:
        """How upstream names a rule in messages: its message if any, else its expression."""
        return (self.spec.message or self.spec.rule).strip()


def _names(tree: Tree[Any]) -> tuple[set[str], set[str], set[str]]:
    """Functions called, identifiers read, and comprehension variables bound in a parsed rule."""
    called: set[str] = set()
    idents: set[str] = set()
    bound: set[str] = set()
    for sub in tree.iter_subtrees():
        if (
            sub.data == "member_dot_arg"
            and len(sub.children) > 1
            and isinstance(sub.children[1], Token)
        ):
            called.add(str(sub.children[1]))
            if str(sub.children[1]) in ("all", "exists", "exists_one", "map", "filter"):
                bound.update(_first_ident(sub))
        elif sub.data == "ident_arg" and isinstance(sub.children[0], Token):
            called.add(str(sub.children[0]))
        elif sub.data == "ident" and isinstance(sub.children[0], Token):
            idents.add(str(sub.children[0]))
    return called, idents, bound


def _first_ident(call: Tree[Any]) -> set[str]:
    exprlist = next(
        (c for c in call.children if isinstance(c, Tree) and c.data == "exprlist"), None
    )
    if exprlist is None or not exprlist.children:
        return set()
    first = exprlist.children[0]
    found = (
        [str(t.children[0]) for t in first.iter_subtrees() if t.data == "ident"]
        if isinstance(first, Tree)
        else []
    )
    return set(found[:1])


def _compile_expr(
    text: str, where: str, node: Node, resource: bool
) -> tuple[Any, set[str], Tree[Any]]:
    """Compile one expression on ``node``; raise SchemaError with cel-go's message if it fails.

    ``resource`` says ``self`` is a resource (the root or an embedded object), which exposes
    ``apiVersion``, ``kind`` and ``metadata.name``/``generateName`` whatever the schema says.
    """
    try:
        ast = _ENV.compile(text)
    except celpy.CELParseError as exc:
        line, column = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
        raise _compile_failure(
            where, text, f"ERROR: <input>:{line}:{column}: Syntax error"
        ) from None
    except Exception as exc:  # celpy raises assorted errors on odd input; report, never crash
        raise _compile_failure(where, text, f"ERROR: <input>:1:1: {exc}") from None
    called, idents, bound = _names(ast)
    unknown_fn = sorted(called - BUILTINS - FUNCTIONS.keys())
    if unknown_fn:
        raise _compile_failure(
            where,
            text,
            f"ERROR: <input>:1:1: undeclared reference to '{unknown_fn[0]}' (in container '')",
        )
    unknown_id = sorted(idents - bound - _TYPE_IDENTS - {"self", "oldSelf"})
    if unknown_id:
        raise _compile_failure(
            where,
            text,
            f"ERROR: <input>:1:1: undeclared reference to '{unknown_id[0]}' (in container '')",
        )
    field_error = check_fields(ast, node, resource)
    if field_error:
        raise _compile_failure(where, text, field_error)
    return _ENV.program(ast, functions=FUNCTIONS), idents, ast


def _compile_failure(where: str, text: str, detail: str) -> fe.SchemaError:
    return fe.SchemaError([fe.invalid(where, text, f"compilation failed: {detail}")])


def _parse_field_path(spec: RuleSpec, node: Node) -> tuple[tuple[str, bool], ...]:
    """Parse ``fieldPath`` (``.a['b'].c``) and check it names a field of this node's schema."""
    text = spec.field_path or ""
    where = f"{spec.crd_path}.fieldPath"
    parts: list[tuple[str, bool]] = []
    pos, current = 0, node
    while pos < len(text):
        match = _FIELD_PATH_TOKEN.match(text, pos)
        if match is None:
            raise fe.SchemaError([fe.invalid(where, text, "fieldPath must be a valid path")])
        name = match.group(1) if match.group(1) is not None else match.group(2).replace("\\'", "'")
        keyed = match.group(1) is None and name not in current.properties
        child = current.child_schema(name)
        if child is None:
            raise fe.SchemaError(
                [
                    fe.invalid(
                        where,
                        text,
                        f"fieldPath must be a valid path: does not refer to a valid field: {name}",
                    )
                ]
            )
        parts.append((name, keyed))
        current, pos = child, match.end()
    return tuple(parts)


def compile_rule(spec: RuleSpec, node: Node, *, resource: bool) -> CompiledRule:
    """Compile and statically check one rule; raise SchemaError naming the rule's path."""
    shape = node.shape or node
    program, idents, ast = _compile_expr(spec.rule, f"{spec.crd_path}.rule", shape, resource)
    uses_old_self = "oldSelf" in idents
    causes: list[fe.FieldCause] = []
    if uses_old_self and not node.correlatable:
        causes.append(
            fe.forbidden(
                f"{spec.crd_path}.rule",
                "oldSelf cannot be used on the uncorrelatable portion of the schema within "
                + node.crd_path,
            )
        )
    if spec.optional_old_self and not uses_old_self:
        causes.append(
            fe.invalid(
                f"{spec.crd_path}.optionalOldSelf",
                True,
                "may not be set if rule does not use oldSelf",
            )
        )
    if spec.reason is not None and spec.reason not in REASONS:
        causes.append(fe.not_supported(f"{spec.crd_path}.reason", spec.reason, REASONS))
    for key, text in (("message", spec.message), ("messageExpression", spec.message_expression)):
        if text is not None and (not isinstance(text, str) or not text.strip()):
            causes.append(
                fe.required(f"{spec.crd_path}.{key}", f"{key} must be non-empty if specified")
            )
        elif isinstance(text, str) and "\n" in text and key == "message":
            causes.append(
                fe.invalid(f"{spec.crd_path}.message", text, "message must not contain line breaks")
            )
    if causes:
        raise fe.SchemaError(causes)
    message_program = None
    if spec.message_expression:
        message_program, _, _ = _compile_expr(
            spec.message_expression, f"{spec.crd_path}.messageExpression", shape, resource
        )
    field_path = _parse_field_path(spec, shape) if spec.field_path else ()
    cost, unbounded = estimate(ast, shape, resource)
    return CompiledRule(spec, program, message_program, uses_old_self, field_path, cost, unbounded)
