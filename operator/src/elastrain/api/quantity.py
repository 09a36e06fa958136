"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``): the one parser for all layers.

The planner (PodGroup ``minResources``), the sandbox scheduler (fit on a node) and the node
agent (``resourceFieldRef``) all read quantities; they share this module so the three can never
disagree about what ``"0.1"`` or ``"1E"`` means. The planner and the scheduler also add up a
pod's requests with the one ``pod_requests`` here, so they can never disagree about what a pod
asks for. It lives in ``api`` because it is pure and the planner may import ``api`` but never
``sandbox``.

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
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

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


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, Fraction]:
    """What a pod with this spec requests, per resource, as the scheduler counts it.

    A container's request defaults to its limit (as the API server defaults it). Init
    containers run one at a time before the app containers, so the pod needs the larger of
    their largest request and the app containers' sum; the pod's ``overhead`` (set from its
    RuntimeClass) comes on top. An entry that is no quantity, or not above zero, counts as
    absent, and so does a container that is no object.
    """
    total: dict[str, Fraction] = {}
    for ctr in _containers(pod_spec, "containers"):
        for name, value in _container_requests(ctr).items():
            total[name] = total.get(name, Fraction(0)) + value
    for ctr in _containers(pod_spec, "initContainers"):
        for name, value in _container_requests(ctr).items():
            total[name] = max(total.get(name, Fraction(0)), value)
    for name, value in _positive(pod_spec.get("overhead")).items():
        total[name] = total.get(name, Fraction(0)) + value
    return total


def _containers(pod_spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    listed = pod_spec.get(key)
    return [c for c in listed if isinstance(c, Mapping)] if isinstance(listed, list) else []


def _container_requests(container: Mapping[str, Any]) -> dict[str, Fraction]:
    """Requests, with limits standing in for the missing ones (a request of 0 stays 0)."""
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return {}
    return _positive({**_mapping(resources.get("limits")), **_mapping(resources.get("requests"))})


def _mapping(value: object) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _positive(values: object) -> dict[str, Fraction]:
    """The entries of a resource list that are quantities above zero."""
    out: dict[str, Fraction] = {}
    for name, raw in _mapping(values).items():
        value = parse_or_none(raw)
        if value is not None and value > 0:
            out[str(name)] = value
    return out


def _round_up_to_nano(value: Fraction) -> Fraction:
    if _NANO % value.denominator == 0:
        return value
    scaled = math.ceil(abs(value) * _NANO)
    return Fraction(scaled if value > 0 else -scaled, _NANO)
