"""The transitions a status change contains, read back from the two status dicts.

This is how the metrics derived them before the planner reported them itself; the planner's
``Plan.transitions`` must agree with it for every plan (checked in the property tests), so the
counters mean what they meant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

PHASES = ("Created", "Running", "Restarting", "Scaling", "Suspended", "Succeeded", "Failed")

Key = tuple[str, str, datetime | None, bool]


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def expected(old: dict[str, Any], new: dict[str, Any]) -> list[Key]:
    """(kind, reason, at, first_time) of every transition from ``old`` to ``new``, sorted."""
    out: list[Key] = []
    for kind in PHASES:
        after = _condition(new, kind)
        before = _condition(old, kind)
        if after is None or after.get("status") != "True":
            continue
        if before is not None and before.get("status") == "True":
            continue
        at = _time(after.get("lastTransitionTime"))
        out.append((kind, str(after.get("reason") or ""), at, before is None))
    start = _time(new.get("startTime"))
    if start is not None and not old.get("startTime"):
        # The first start of a job never suspended: suspension clears startTime, and its
        # condition stays in the status as the trace of an earlier start (or of a job that
        # was created suspended, whose creation-to-pods latency is not the operator's).
        out.append(("Started", "", start, _condition(old, "Suspended") is None))
    return sorted(out, key=repr)


def reported(transitions: list[Any]) -> list[Key]:
    """The same tuples from a Plan's transitions, sorted alike."""
    return sorted(((t.kind, t.reason, t.at, t.first_time) for t in transitions), key=repr)
