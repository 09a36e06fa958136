"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``): the one parser for all layers.

The planner (PodGroup ``minResources``), the sandbox scheduler (fit on a node) and the node
agent (``resourceFieldRef``) all read quantities; they share this module so the three can never
disagree about what ``"0.1"`` or ``"1E"`` means. It lives in ``api`` because it is pure and the
planner may import ``api`` but never ``sandbox``.

Semantics follow ``k8s.io/apimachinery/pkg/api/resource.Quantity``: a decimal number, then one
of a decimal SI suffix (``n u m k M G T P E``), a binary suffix (``Ki`` .. ``Ei``) or a decimal
exponent (``e3``, ``E-2``) -- never two of them; values are exact (``Fraction``: ``0.1`` CPU
times thirty is ``3``, not ``3.0000000000000004``) and, as the API server does, a value finer
than one nano-unit is rounded away from zero to the next nano-unit, so a tiny request never
becomes zero. Surrounding whitespace is ignored (our callers read YAML written by people).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_NANO = 10**9
_SUFFIX: dict[str, Fraction] = {
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
# The exponent is tried before the suffix so "1E3" is 1000 while "1E" is one exa.
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)


def parse(value: object) -> Fraction:
    """The exact value of a quantity (text, int or float); raises ``ValueError`` if malformed.

    A float is read as the number it prints as (``0.1`` is one tenth, as the API server reads
    the JSON number ``0.1``), not as its binary approximation. ``True``/``False`` are not
    quantities, although Python counts them as ints.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(
            "quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}"
        )
    number, exponent, suffix = match.groups()
    out = Fraction(number) * _SUFFIX[suffix or ""]
    if exponent is not None:
        out *= Fraction(10) ** int(exponent)
    return _round_up_to_nano(out)


def parse_or_none(value: object) -> Fraction | None:
    """``parse(value)``, or None when it is no quantity (for callers that skip bad entries)."""
    try:
        return parse(value)
    except ValueError:
        return None


def parse_float(value: object) -> float:
    """``parse(value)`` as the nearest float, for callers that divide and print."""
    return float(parse(value))


def milli(value: object) -> int:
    """``value`` in milli-units, rounded up (``1`` -> 1000, ``100m`` -> 100, ``1Ki`` -> 1024000),
    as ``Quantity.MilliValue`` does, so scheduling arithmetic is plain integer math."""
    return math.ceil(parse(value) * 1000)


def fmt(value: Fraction) -> str:
    """The quantity as a whole number, else in milli-units rounded up (``"1500m"``): the
    plainest form the API server accepts, and never less than was asked for."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{math.ceil(value * 1000)}m"


def _round_up_to_nano(value: Fraction) -> Fraction:
    if _NANO % value.denominator == 0:
        return value
    scaled = math.ceil(abs(value) * _NANO)
    return Fraction(scaled if value > 0 else -scaled, _NANO)
