"""``x-kubernetes-validations``: compile every CEL rule once, evaluate them as the apiserver does.

Semantics follow ``apiextensions-apiserver/pkg/apiserver/schema/cel``: ``self`` is the node the
rule sits on, typed by the schema (``number`` is a double even when written ``2``); ``metadata``
at the root exposes only ``name`` and ``generateName``; rules skip null values; transition rules
(those using ``oldSelf``) run only when a correlated old value exists, unless ``optionalOldSelf``;
non-transition rule errors on unchanged values are dropped (ratcheting). An evaluation error is a
field error that names the rule, never an exception: a bad rule must not take the server down.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import celpy
from celpy import celtypes
from lark import Token, Tree

from elastrain.sandbox.schema import errors as fe
from elastrain.sandbox.schema.celfuncs import BUILTINS, FUNCTIONS, Optional
from elastrain.sandbox.schema.openapi import MISSING, correlate_items, same
from elastrain.sandbox.schema.structural import Node, RuleSpec

REASONS = ["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"]
_TYPE_IDENTS = frozenset(
    {"int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"}
)
_FIELD_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]")

_ENV = celpy.Environment()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# String formats the apiserver exposes to CEL as richer types.
_FORMAT_TYPES: dict[str, Any] = {
    "date-time": celtypes.TimestampType,
    "datetime": celtypes.TimestampType,
    "duration": celtypes.DurationType,
}


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


def _compile_expr(text: str, where: str) -> tuple[Any, set[str]]:
    """Compile one expression; raise SchemaError with a cel-go style message if it does not."""
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
    return _ENV.program(ast, functions=FUNCTIONS), idents


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


def compile_rule(spec: RuleSpec, node: Node) -> CompiledRule:
    """Compile and statically check one rule; raise SchemaError naming the rule's path."""
    program, idents = _compile_expr(spec.rule, f"{spec.crd_path}.rule")
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
        message_program, _ = _compile_expr(
            spec.message_expression, f"{spec.crd_path}.messageExpression"
        )
    field_path = _parse_field_path(spec, node) if spec.field_path else ()
    return CompiledRule(spec, program, message_program, uses_old_self, field_path)


def to_cel(value: Any, node: Node | None, *, root: bool = False) -> Any:
    """Convert a JSON value to CEL, typed by its schema as the apiserver types it."""
    if value is None:
        return None
    if node is None:
        return untyped(value)
    if isinstance(value, dict):
        items = value.items()
        # A resource (the root, or an embedded object) shows CEL only name and generateName.
        if (root or node.embedded) and isinstance(value.get("metadata"), dict):
            meta = {k: v for k, v in value["metadata"].items() if k in ("name", "generateName")}
            items = {**value, "metadata": meta}.items()
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, node.child_schema(k)) for k, v in items}
        )
    if isinstance(value, list):
        return celtypes.ListType([to_cel(v, node.items) for v in value])
    return _scalar(value, node)


def _scalar(value: Any, node: Node) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if node.type == "number":
            return celtypes.DoubleType(float(value))
        if isinstance(value, float) and value.is_integer() and _INT64_MIN <= value <= _INT64_MAX:
            return celtypes.IntType(int(value))
    converter = _FORMAT_TYPES.get(node.format or "") if isinstance(value, str) else None
    if converter is not None:
        try:
            return converter(value)
        except (ValueError, TypeError):
            return celtypes.StringType(value)
    return untyped(value)


def untyped(value: Any) -> Any:
    """Convert a value the schema does not type (preserved fields) as the apiserver decodes it.

    Unlike ``celpy.json_to_cel`` this never raises: integers beyond int64 become doubles, as
    Go's JSON decoder makes them, and anything not JSON becomes its string form.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return celtypes.IntType(value)
        return celtypes.DoubleType(float(value))
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(str(k)): untyped(v) for k, v in value.items()})
    if isinstance(value, list):
        return celtypes.ListType([untyped(v) for v in value])
    return celtypes.StringType(str(value))


class Evaluator:
    """Walks an object with its schema and old object, evaluating every compiled rule."""

    def __init__(self, rules: dict[int, list[CompiledRule]]) -> None:
        self.rules = rules
        self.causes: list[fe.FieldCause] = []

    def walk(self, value: Any, node: Node, path: str, old: Any, *, root: bool = False) -> None:
        if value is None:
            return
        compiled = self.rules.get(id(node))
        if compiled:
            self._evaluate(compiled, value, node, path, old, root)
        for branch in node.all_of:
            self.walk(value, branch, path, old, root=root)
        if isinstance(value, dict):
            old_map = old if isinstance(old, dict) else {}
            for key, sub in value.items():
                if key in node.properties:
                    child = f"{path}.{key}" if path else key
                    self.walk(sub, node.properties[key], child, old_map.get(key, MISSING))
                elif isinstance(node.additional, Node):
                    self.walk(sub, node.additional, f"{path}[{key}]", old_map.get(key, MISSING))
        elif isinstance(value, list) and node.items is not None:
            olds = correlate_items(value, node, old)
            for i, item in enumerate(value):
                self.walk(item, node.items, f"{path}[{i}]", olds[i])

    def _evaluate(
        self, compiled: list[CompiledRule], value: Any, node: Node, path: str, old: Any, root: bool
    ) -> None:
        unchanged = old is not MISSING and same(value, old)
        key: str | None = None
        activation: dict[str, Any] = {}
        for rule in compiled:
            if rule.uses_old_self and old is MISSING and not rule.spec.optional_old_self:
                continue
            if unchanged and not rule.uses_old_self:
                continue
            if key is None:
                key = _cache_key(value, old)
            outcome = rule.cache.get(key) if key else None
            if outcome is None:
                if not activation:
                    activation = _activation(value, old, node.shape or node, root)
                outcome = self._outcome(rule, activation)
                if key:
                    rule.remember(key, outcome)
            cause = _cause(rule, outcome, value, node.shape or node, path)
            if cause is not None:
                self.causes.append(cause)

    def _outcome(self, rule: CompiledRule, activation: dict[str, Any]) -> Outcome:
        bound = dict(activation)
        if not rule.uses_old_self:
            bound.pop("oldSelf", None)
        elif rule.spec.optional_old_self:
            bound["oldSelf"] = Optional(activation.get("oldSelf"), "oldSelf" in activation)
        elif "oldSelf" not in activation:
            bound["oldSelf"] = None
        try:
            result = rule.program.evaluate(bound)
        except Exception as exc:  # any failure inside a user's rule is the user's field error
            result = exc
        if isinstance(result, Exception):
            return Outcome(False, _runtime_message(result, rule), errored=True)
        if not isinstance(result, celtypes.BoolType | bool):
            return Outcome(False, f"rule did not evaluate to a bool: {rule.shown}", errored=True)
        if result:
            return Outcome(True)
        return Outcome(False, _message(rule, bound))


def _activation(value: Any, old: Any, node: Node, root: bool) -> dict[str, Any]:
    """``self`` (and ``oldSelf`` when there is an old value), converted once per node."""
    activation = {"self": to_cel(value, node, root=root)}
    if old is not MISSING:
        activation["oldSelf"] = to_cel(old, node, root=root)
    return activation


def _cache_key(value: Any, old: Any) -> str:
    """Rules are pure, so (self, oldSelf) decides the outcome; "" when not serialisable."""
    try:
        return json.dumps([value, old is MISSING, None if old is MISSING else old], sort_keys=True)
    except (TypeError, ValueError):
        return ""


def _cause(
    rule: CompiledRule, outcome: Outcome, value: Any, node: Node, path: str
) -> fe.FieldCause | None:
    if outcome.passed:
        return None
    if outcome.errored:
        return fe.invalid(path or fe.ROOT, node.cel_type, outcome.message)
    # Since Kubernetes 1.35 a failed rule shows a scalar's value, never a whole object or list.
    shown = fe.OMIT if node.type in ("object", "array") else value
    target = _apply_field_path(path, rule.field_path) or fe.ROOT
    return _reason_cause(rule.spec.reason, target, shown, outcome.message)


def _message(rule: CompiledRule, activation: dict[str, Any]) -> str:
    if rule.message_program is not None:
        try:
            text = rule.message_program.evaluate(activation)
        except Exception:  # upstream falls back to the static message, so do we
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text:
            return str(text)
    if rule.spec.message:
        return rule.spec.message.strip()
    return f"failed rule: {rule.shown}"


def _runtime_message(exc: Exception, rule: CompiledRule) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    missing = re.match(r"no such member in mapping: '(.*)'", text)
    if missing:
        text = f"no such key: {missing.group(1)}"
    if "no matching overload" in text or "no such overload" in text:
        return (
            "'no such overload': call arguments did not match a supported operator, function or "
            f"macro signature for rule: {rule.shown}"
        )
    return f"{text} evaluating rule: {rule.shown}"


def _reason_cause(reason: str | None, field: str, value: Any, message: str) -> fe.FieldCause:
    if reason == "FieldValueForbidden":
        return fe.forbidden(field, message)
    if reason == "FieldValueRequired":
        return fe.required(field, message)
    if reason == "FieldValueDuplicate":
        return fe.duplicate(field, value)
    return fe.invalid(field, value, message)


def _apply_field_path(path: str, parts: tuple[tuple[str, bool], ...]) -> str:
    for name, keyed in parts:
        path = f"{path}[{name}]" if keyed else f"{path}.{name}" if path else name
    return path
