"""The transitions a status change contains, read back from the two status dicts.

Phases and ``Started`` come from the conditions and ``startTime``; ``Stalled`` from its
condition; scale commands, completed scales and replacements from ``status.tracking``.

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
    out.extend(_tracking_transitions(old, new))
    stalled = _condition(new, "Stalled")
    before_stalled = _condition(old, "Stalled")
    was = before_stalled is not None and before_stalled.get("status") == "True"
    if stalled is not None and stalled.get("status") == "True" and not was:
        out.append(("Stalled", "NoProgress", _time(stalled.get("lastTransitionTime")), False))
    return sorted(out, key=repr)


def _tracking_transitions(old: dict[str, Any], new: dict[str, Any]) -> list[Key]:
    """Scale commands, completed scales and replacements, read from ``status.tracking``."""
    out: list[Key] = []
    t_old, t_new = old.get("tracking") or {}, new.get("tracking") or {}
    d_old, d_new = t_old.get("desired"), t_new.get("desired")
    scaled = isinstance(d_old, dict) and isinstance(d_new, dict) and d_old != d_new
    if isinstance(d_old, dict) and isinstance(d_new, dict) and scaled:
        up = sum(d_new.values()) >= sum(d_old.values())
        out.append(("Scaled", "Up" if up else "Down", None, False))
    suspended = _condition(new, "Suspended")
    suspending = suspended is not None and suspended.get("status") == "True"
    # A scale can complete in the plan that notices it (a scale-down whose remaining pods run).
    started = t_old.get("scaleStart") or scaled
    if started and not t_new.get("scaleStart") and not suspending:
        out.append(("ScaleCompleted", "", None, False))
    b_old, b_new = t_old.get("backoff") or {}, t_new.get("backoff") or {}
    for key, entry in b_new.items():
        if (b_old.get(key) or {}).get("failedAt") and not entry.get("failedAt"):
            role = "ps" if key == "job" else key.rpartition("-")[0]
            out.append(("Replaced", role, None, False))
    return out


# Transitions whose instant the status does not record (it is the plan's ``now``).
_UNTIMED = ("Scaled", "ScaleCompleted", "Replaced")


def reported(transitions: list[Any]) -> list[Key]:
    """The same tuples from a Plan's transitions, sorted alike."""
    return sorted(
        (
            (t.kind, t.reason, None if t.kind in _UNTIMED else t.at, t.first_time)
            for t in transitions
        ),
        key=repr,
    )
