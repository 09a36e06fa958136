"""Job counters derived from status transitions, so each transition is counted exactly once.

Reconciles repeat (every child event, every requeue), so counting "the job is Failed" per
reconcile would over-count. Instead the handlers call :func:`record_transition` only after a
status write *succeeded*: the write carries the observed resourceVersion, so of two operators
(or two reconciles) computing the same transition only one can win it, and only the winner counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from elastrain.metrics.registry import Metrics, condition_field, condition_status


def _became_true(old: Mapping[str, Any], new: Mapping[str, Any], type_: str) -> str | None:
    """The new condition's reason when ``type_`` turned True in this write, else None."""
    after = condition_status(new, type_)
    if after is None or after[0] != "True":
        return None
    before = condition_status(old, type_)
    if before is not None and before[0] == "True":
        return None
    return after[1]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as written by Kubernetes (``...Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def record_transition(
    metrics: Metrics,
    namespace: str,
    created: datetime | None,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
) -> None:
    """Count what changed between the job's previous status ``old`` and the written ``new``."""
    old = old or {}
    if _became_true(old, new, "Created") is not None:
        metrics.jobs_created.labels(namespace).inc()
    if _became_true(old, new, "Succeeded") is not None:
        metrics.jobs_succeeded.labels(namespace).inc()
    reason = _became_true(old, new, "Failed")
    if reason is not None:
        metrics.jobs_failed.labels(namespace, reason or "Unknown").inc()
    reason = _became_true(old, new, "Restarting")
    if reason is not None:
        metrics.jobs_restarted.labels(namespace, reason or "Unknown").inc()
    if created is None:
        return
    # Latencies only on the first time: a Running condition already present (True or False)
    # means the job ran before, and startTime is written once when the first pods are made.
    if condition_status(old, "Running") is None and _became_true(old, new, "Running") is not None:
        running = parse_time(condition_field(new, "Running", "lastTransitionTime"))
        if running is not None:
            metrics.job_time_to_running.observe(max(0.0, (running - created).total_seconds()))
    start = parse_time(new.get("startTime"))
    if start is not None and not old.get("startTime"):
        metrics.job_to_pod_creation.observe(max(0.0, (start - created).total_seconds()))
