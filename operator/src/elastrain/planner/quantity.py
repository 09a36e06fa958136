"""Kubernetes resource quantities, just enough to add up pod requests for a PodGroup.

Parsed into exact fractions (no float rounding: ``0.1`` CPU times thirty is ``3``, not
``3.0000000000000004``) and written back in the plainest form the API server accepts.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]?)$")


def parse(value: object) -> Fraction | None:
    """A quantity (``"500m"``, ``"4Gi"``, ``2``, ``"1e3"``) as a Fraction; None if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        base = Fraction(number)
    except ValueError:
        return None
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    if suffix in _DECIMAL:
        return base * _DECIMAL[suffix]
    return base * Fraction(10) ** int(suffix[1:])


def fmt(value: Fraction) -> str:
    """The quantity as a whole number, else in milli-units rounded up (``"1500m"``)."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{math.ceil(value * 1000)}m"
