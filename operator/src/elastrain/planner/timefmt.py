"""Timestamps as the status stores them: RFC 3339 UTC with whole seconds.

The planner gets time only from ``Observed.now`` and writes it back into the status as strings,
so both directions live here. Deadlines written for the future are rounded *up* to the next
second: a requeue that fires at the written instant must find the wait elapsed, never a few
hundred milliseconds short (which would cost one more reconcile and one more requeue).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


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
    """A status timestamp back as a UTC datetime; None for missing or malformed values.

    Malformed values are treated as absent rather than raised: the status is ours, but a user
    can edit it, and the planner must never crash on it.
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
