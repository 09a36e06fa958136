"""Timestamps as the status (and our Events) store them: RFC 3339 UTC with whole seconds.

Kubernetes ``date-time`` fields such as ``status.startTime``, condition transition times and
core/v1 Event ``firstTimestamp``/``lastTimestamp`` carry whole seconds, so one format serves
them all and both directions live here. The planner gets time only from ``Observed.now`` and
writes it back as strings; deadlines written for the future are rounded *up* to the next
second: a requeue that fires at the written instant must find the wait elapsed, never a few
hundred milliseconds short (which would cost one more reconcile and one more requeue).

Part of ``api`` because the format is an API fact; stdlib only, like the rest of ``api``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def truncate(moment: datetime) -> datetime:
    """``moment`` in UTC cut to the whole second: the instant ``fmt`` writes, as a datetime."""
    return as_utc(moment).replace(microsecond=0)


def fmt(moment: datetime) -> str:
    """``moment`` as a Kubernetes ``date-time`` string, truncated to the second."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def after(moment: datetime, seconds: float) -> datetime:
    """The instant ``seconds`` after ``moment``, rounded up to a whole second."""
    target = as_utc(moment) + timedelta(seconds=seconds)
    return datetime.fromtimestamp(math.ceil(target.timestamp()), tz=UTC)


def fmt_after(moment: datetime, seconds: float) -> str:
    """``after(moment, seconds)`` as a status timestamp."""
    return fmt(after(moment, seconds))


def parse(value: object) -> datetime | None:
    """A timestamp (``...Z`` or with an offset) as a UTC datetime; None if missing or malformed.

    Malformed values are treated as absent rather than raised: the status is ours, but a user
    can edit it, and neither the planner nor the metrics may crash on it.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def seconds_until(target: datetime, now: datetime) -> float:
    """Seconds from ``now`` to ``target`` (negative once it has passed)."""
    return (as_utc(target) - as_utc(now)).total_seconds()
