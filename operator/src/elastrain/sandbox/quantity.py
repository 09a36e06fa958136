"""Exact Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``) for scheduling arithmetic.

Quantities are parsed exactly (``Fraction``) and then held as integer milli-units (rounded up,
as ``Quantity.MilliValue`` does), so ``100m + 900m == 1`` stays exact, a node filled to its
allocatable never flips between fitting and not through float rounding, and the scheduler's
per-node arithmetic is plain integer math.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_RE = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+))?(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
)


def parse(value: Any) -> Fraction:
    """The value of a quantity; raises ``ValueError`` for malformed text."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        return Fraction(value)
    m = _RE.match(str(value).strip())
    if not m:
        raise ValueError(
            "quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}"
        )
    number, exp, suffix = m.groups()
    out = Fraction(number) * _SUFFIX[suffix or ""]
    if exp:
        out *= Fraction(10) ** int(exp)
    return out


def milli(value: Any) -> int:
    """``value`` in milli-units, rounded up (``1`` -> 1000, ``100m`` -> 100, ``1Ki`` -> 1024000)."""
    return math.ceil(parse(value) * 1000)


def pod_requests(pod: dict[str, Any]) -> dict[str, int]:
    """Effective requests: max(sum over containers, max over init containers) per resource,
    with limits standing in for missing requests (as defaulting does for extended resources)."""
    spec = pod.get("spec") or {}

    def of(c: dict[str, Any]) -> dict[str, int]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        out: dict[str, int] = {}
        for k, v in merged.items():
            try:
                out[k] = milli(v)
            except ValueError:
                continue
        return out

    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, 0) + v
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, 0), v)
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0) + milli(v)
    return total
