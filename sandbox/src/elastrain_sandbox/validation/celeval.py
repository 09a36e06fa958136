"""Evaluate compiled ``x-kubernetes-validations`` rules as the apiserver does.

Semantics follow ``apiextensions-apiserver/pkg/apiserver/schema/cel``: ``self`` is the node the
rule sits on, typed by the schema (``number`` is a double even when written ``2``); ``metadata``
of a resource exposes only ``name`` and ``generateName``; rules skip null values; transition
rules (those using ``oldSelf``) run only when a correlated old value exists, unless
``optionalOldSelf``; non-transition rule errors on unchanged values are dropped (ratcheting). An
evaluation error is a field error that names the rule, never an exception: a bad rule must not
take the server down.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from celpy import celtypes

from elastrain_sandbox.validation import errors as fe
from elastrain_sandbox.validation.celcompile import CompiledRule, Outcome
from elastrain_sandbox.validation.celfields import escape
from elastrain_sandbox.validation.celfuncs import Optional
from elastrain_sandbox.validation.node import Node
from elastrain_sandbox.validation.openapi import MISSING, correlate_items, same

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# String formats the apiserver exposes to CEL as richer types.
_FORMAT_TYPES: dict[str, Any] = {
    "date-time": celtypes.TimestampType,
    "datetime": celtypes.TimestampType,
    "duration": celtypes.DurationType,
}


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
        out = {}
        for key, sub in items:
            # Declared properties are seen under their escaped CEL names (``x-y`` -> x__dash__y);
            # map keys and preserved unknown fields keep theirs.
            name = escape(key) if key in node.properties else key
            if name is not None:
                out[celtypes.StringType(name)] = to_cel(sub, node.child_schema(key))
        return celtypes.MapType(out)
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

    def __init__(self, rules: dict[int, list[CompiledRule]], *, ratchet: bool = True) -> None:
        self.rules = rules
        self.ratchet = ratchet
        """Drop non-transition rules on unchanged values (objects); off for a CRD's defaults,
        which the apiserver checks with the default as both ``self`` and ``oldSelf``."""
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
        unchanged = self.ratchet and old is not MISSING and same(value, old)
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
    """Rules are pure, so (self, oldSelf) decides the outcome; "" when not serialisable.

    A digest, not the JSON itself, so a cache of whole objects (root rules) stays small.
    """
    try:
        text = json.dumps([value, old is MISSING, None if old is MISSING else old], sort_keys=True)
    except (TypeError, ValueError):
        return ""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


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


_MAX_MESSAGE_BYTES = 5 * 1024  # celconfig.MaxEvaluatedMessageExpressionSizeBytes


def _message(rule: CompiledRule, activation: dict[str, Any]) -> str:
    """The messageExpression's result when usable (trimmed, one line, <= 5 KiB), else fallback."""
    if rule.message_program is not None:
        try:
            text = rule.message_program.evaluate(activation)
        except Exception:  # upstream falls back to the static message, so do we
            text = None
        if isinstance(text, str):
            text = text.strip()
            if text and "\n" not in text and len(text.encode()) <= _MAX_MESSAGE_BYTES:
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
