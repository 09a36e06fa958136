"""Pod request accounting for the sandbox scheduler, in integer milli-units.

Quantities themselves are parsed by ``elastrain.api.quantity`` (shared with the planner and the
node agent); this module only adds them up the way the scheduler counts a pod, so that a node
filled to its allocatable never flips between fitting and not through float rounding.
"""

from __future__ import annotations

from typing import Any

from elastrain.api.quantity import milli

__all__ = ["milli", "pod_requests"]


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
