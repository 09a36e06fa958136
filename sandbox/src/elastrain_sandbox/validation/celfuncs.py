"""Kubernetes CEL library functions that celpy lacks, and ``optionalOldSelf`` support.

Only what CRD rules commonly use: the strings extension (``lowerAscii``, ``split``, ...) and the
Kubernetes list extension (``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``). Each function
raises ``ValueError``/``TypeError`` on bad arguments; the evaluator turns that into a field error.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import Any

from celpy import celtypes, evaluation


class Optional:
    """A CEL ``optional`` value: how ``oldSelf`` is typed when a rule sets ``optionalOldSelf``."""

    def __init__(self, value: Any, present: bool) -> None:
        self.value = value
        self.present = present


def _has_value(opt: Optional) -> celtypes.BoolType:
    return celtypes.BoolType(opt.present)


def _value(opt: Optional) -> Any:
    if not opt.present:
        raise ValueError("optional.none() dereference")
    return opt.value


def _or_value(opt: Optional, fallback: Any) -> Any:
    return opt.value if opt.present else fallback


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("no such overload")
    return value


def _lower(s: Any) -> celtypes.StringType:
    return celtypes.StringType("".join(c.lower() if c.isascii() else c for c in _str(s)))


def _upper(s: Any) -> celtypes.StringType:
    return celtypes.StringType("".join(c.upper() if c.isascii() else c for c in _str(s)))


def _trim(s: Any) -> celtypes.StringType:
    return celtypes.StringType(_str(s).strip())


def _replace(s: Any, old: Any, new: Any, count: Any = -1) -> celtypes.StringType:
    return celtypes.StringType(_str(s).replace(_str(old), _str(new), int(count)))


def _split(s: Any, sep: Any, count: Any = -1) -> celtypes.ListType:
    limit = int(count)
    if limit == 0:
        return celtypes.ListType([])
    parts = _str(s).split(_str(sep), limit - 1 if limit > 0 else -1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _join(items: Any, sep: Any = "") -> celtypes.StringType:
    return celtypes.StringType(_str(sep).join(_str(i) for i in items))


def _substring(s: Any, start: Any, end: Any = None) -> celtypes.StringType:
    text = _str(s)
    lo, hi = int(start), len(text) if end is None else int(end)
    if not 0 <= lo <= hi <= len(text):
        raise ValueError(f"index out of range: {lo if lo < 0 or lo > len(text) else hi}")
    return celtypes.StringType(text[lo:hi])


def _char_at(s: Any, index: Any) -> celtypes.StringType:
    text, i = _str(s), int(index)
    if not 0 <= i <= len(text):
        raise ValueError(f"index out of range: {i}")
    return celtypes.StringType(text[i : i + 1])


def _index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.find(_str(item)))
    for i, element in enumerate(container):
        if element == item:
            return celtypes.IntType(i)
    return celtypes.IntType(-1)


def _last_index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.rfind(_str(item)))
    for i in range(len(container) - 1, -1, -1):
        if container[i] == item:
            return celtypes.IntType(i)
    return celtypes.IntType(-1)


def _is_sorted(items: Any) -> celtypes.BoolType:
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def _sum(items: Any) -> Any:
    total: Any = celtypes.IntType(0)
    for i, item in enumerate(items):
        total = item if i == 0 else total + item
    return total


def _min(items: Any) -> Any:
    if not items:
        raise ValueError("min called on empty list")
    return min(items)


def _max(items: Any) -> Any:
    if not items:
        raise ValueError("max called on empty list")
    return max(items)


def _kind(value: Any) -> str:
    """A CEL value's type family; celpy mixes its own types with Python's (``'a' + '!'``)."""
    if isinstance(value, bool | celtypes.BoolType):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _numeric(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    """An ordering that also compares int, uint and double with each other.

    The Kubernetes CEL environment enables cel-go's cross-type numeric comparisons and
    heterogeneous equality (``1 == 1.0``, ``self.replicas <= self.ratio``); celpy refuses them.
    """
    original = evaluation.base_functions[name]

    def compare(a: Any, b: Any) -> Any:
        if _kind(a) == _kind(b) == "number" and type(a) is not type(b):
            return celtypes.BoolType(op(float(a), float(b)))
        return original(a, b)

    return compare


def _equal(a: Any, b: Any) -> bool:
    """Heterogeneous equality: numbers compare by value, other mixed types are just unequal."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "list":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind == "map":
        return len(a) == len(b) and all(k in b and _equal(v, b[k]) for k, v in a.items())
    if kind == "number":
        if isinstance(a, int) and isinstance(b, int):
            return int(a) == int(b)
        return float(a) == float(b)
    return bool(a == b)


def _eq(a: Any, b: Any) -> celtypes.BoolType:
    return celtypes.BoolType(_equal(a, b))


def _ne(a: Any, b: Any) -> celtypes.BoolType:
    return celtypes.BoolType(not _equal(a, b))


def _in(item: Any, container: Any) -> Any:
    if isinstance(container, celtypes.ListType):
        return celtypes.BoolType(any(_equal(item, element) for element in container))
    return evaluation.base_functions["_in_"](item, container)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "_<_": _numeric("_<_", operator.lt),
    "_<=_": _numeric("_<=_", operator.le),
    "_>_": _numeric("_>_", operator.gt),
    "_>=_": _numeric("_>=_", operator.ge),
    "_==_": _eq,
    "_!=_": _ne,
    "_in_": _in,
    "hasValue": _has_value,
    "value": _value,
    "orValue": _or_value,
    "lowerAscii": _lower,
    "upperAscii": _upper,
    "trim": _trim,
    "replace": _replace,
    "split": _split,
    "join": _join,
    "substring": _substring,
    "charAt": _char_at,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
}

# Functions and macros celpy itself provides (the names a rule may call).
BUILTINS = frozenset(
    {
        "has",
        "size",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "duration",
        "timestamp",
        "dyn",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getFullYear",
        "getMonth",
        "getHours",
        "getMilliseconds",
        "getMinutes",
        "getSeconds",
    }
)
