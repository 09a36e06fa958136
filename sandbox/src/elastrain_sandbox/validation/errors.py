"""Field errors shaped exactly like the kube-apiserver's, and the 422 ``Status`` built from them.

kubectl prints the apiserver's messages verbatim, so users of the sandbox must see the same
text a real cluster gives them. The wording follows apimachinery's ``field`` package
(``Error.ErrorBody``) and ``k8s.io/apimachinery/pkg/api/errors.NewInvalid``, including quirks such
as the ``<nil>`` field of errors raised at the object root.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ROOT = "<nil>"
"""How the apiserver prints the field of an error at the object root (a nil ``field.Path``)."""

OMIT: Any = object()
"""A bad value left out of the message (``field.OmitValueType``), e.g. a whole object."""

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
DUPLICATE = "FieldValueDuplicate"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"

_LABELS = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    TYPE_INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    FORBIDDEN: "Forbidden",
    DUPLICATE: "Duplicate value",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
}
# Error types whose body never shows the offending value (as in ErrorBody).
_VALUELESS = {REQUIRED, FORBIDDEN, TOO_LONG}


@dataclass(frozen=True)
class FieldCause:
    """One field error: ``type`` is the Kubernetes CauseType, ``message`` the error body."""

    field: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SchemaError(ValueError):
    """A CRD schema (or one of its CEL rules) that the apiserver would refuse.

    ``causes`` use the CRD's own field paths, so the API server can answer the CRD create with
    ``invalid_status("CustomResourceDefinition", "apiextensions.k8s.io", name, err.causes)``.
    """

    def __init__(self, causes: list[FieldCause]) -> None:
        self.causes = causes
        super().__init__("; ".join(str(c) for c in causes))


def go_float(value: float) -> str:
    """Format a float as Go's ``%v`` does (shortest digits; exponent form outside 1e-4..1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    exp10 = len(text) + exponent - 1
    neg = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{neg}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exponent >= 0:
        return neg + text + "0" * exponent
    point = len(text) + exponent
    if point > 0:
        return f"{neg}{text[:point]}.{text[point:]}"
    return f"{neg}0.{'0' * -point}{text}"


def go_quote(text: str) -> str:
    """Quote a string roughly as Go's ``%q`` does (JSON escapes, non-ASCII kept)."""
    return json.dumps(text, ensure_ascii=False)


def go_value(value: Any) -> str:
    """Render a bad value the way ``field.Error.ErrorBody`` does."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cause(field: str, kind: str, value: Any = None, detail: str = "") -> FieldCause:
    """Build a FieldCause with the apiserver's message body for ``kind``."""
    body = _LABELS[kind]
    if kind not in _VALUELESS and value is not OMIT:
        body = f"{body}: {go_value(value)}"
    if detail:
        body = f"{body}: {detail}"
    return FieldCause(field=field, type=kind, message=body)


def required(field: str, detail: str = "") -> FieldCause:
    """``Required value`` (a missing required field)."""
    return cause(field, REQUIRED, detail=detail)


def invalid(field: str, value: Any, detail: str) -> FieldCause:
    """``Invalid value: <value>: <detail>``."""
    return cause(field, INVALID, value, detail)


def type_invalid(field: str, value: Any, detail: str) -> FieldCause:
    """A value of the wrong JSON type (prints as ``Invalid value`` too)."""
    return cause(field, TYPE_INVALID, value, detail)


def not_supported(field: str, value: Any, allowed: list[Any]) -> FieldCause:
    """``Unsupported value: "x": supported values: "a", "b"`` (enum)."""
    shown = [v if isinstance(v, str) else go_value(v) for v in allowed]
    detail = "supported values: " + ", ".join(go_quote(v) for v in shown) if shown else ""
    return cause(field, NOT_SUPPORTED, value, detail)


def forbidden(field: str, detail: str) -> FieldCause:
    """``Forbidden: <detail>``."""
    return cause(field, FORBIDDEN, detail=detail)


def duplicate(field: str, value: Any) -> FieldCause:
    """``Duplicate value: <value>``."""
    return cause(field, DUPLICATE, value)


def too_long(field: str, max_length: int) -> FieldCause:
    """``Too long: may not be more than N bytes`` (maxLength; the value is never echoed)."""
    unit = "byte" if max_length == 1 else "bytes"
    return cause(field, TOO_LONG, detail=f"may not be more than {max_length} {unit}")


def too_many(field: str, actual: int, maximum: int) -> FieldCause:
    """``Too many: 5: must have at most 3 items`` (maxItems and, as upstream, maxProperties)."""
    unit = "item" if maximum == 1 else "items"
    return cause(field, TOO_MANY, actual, f"must have at most {maximum} {unit}")


def aggregate_message(causes: list[FieldCause]) -> str:
    """Join causes as ``ErrorList.ToAggregate().Error()`` does: deduplicated, bracketed if many."""
    seen: list[str] = []
    for c in causes:
        text = str(c)
        if text not in seen:
            seen.append(text)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


def invalid_status(kind: str, group: str, name: str, causes: list[FieldCause]) -> dict[str, Any]:
    """The 422 ``Status`` body that ``apierrors.NewInvalid`` produces for these causes."""
    qualified = f"{kind}.{group}" if group else kind
    message = f"{qualified} {go_quote(name)} is invalid"
    if causes:
        message += ": " + aggregate_message(causes)
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"reason": c.type, "message": c.message, "field": c.field} for c in causes],
        },
        "code": 422,
    }
