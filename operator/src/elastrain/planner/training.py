"""Training progress in the status: ``status.progress`` from the trainer's readings, and the
``Stalled`` condition when the step stops moving.

The controller reads worker 0's metrics endpoint once per ``--progress-interval`` and hands the
newest reading in ``Observed.sample``; everything derived from it is decided here, purely:

- ``progress`` copies the reading (step, total, loss, throughput, world size) and adds the
  percentage and an ETA from the step rate between the previous update and this one. It is
  rewritten only for a reading newer than the one it holds, so reconciles triggered by pod
  events in between write nothing, and status writes stay at most one per reading.
- ``lastStepTime`` moves only when the step advances. A Running job whose step has not moved
  for ``stall_after`` seconds, counted from the later of ``lastStepTime`` and the moment the
  job last became Running (a restart's back-off is no stall), gets ``Stalled=True`` and a
  Warning Event; the next step turns it False. Jobs that never reported progress are never
  judged: a trainer without a metrics endpoint is not a stalled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.api.job_status import JobCondition, TrainingProgress
from elastrain.api.types import ConditionType
from elastrain.planner import status
from elastrain.planner.model import Event, TrainerSample, Transition

_RUNNING = ConditionType.RUNNING.value


def next_progress(prev: Any, sample: TrainerSample | None) -> TrainingProgress | None:
    """``status.progress`` after ``sample``; ``prev`` (the stored one) when nothing is newer."""
    old = cast(TrainingProgress, prev) if isinstance(prev, dict) and "step" in prev else None
    if sample is None:
        return old
    at = timefmt.truncate(sample.at)
    old_at = timefmt.parse(old.get("lastUpdateTime")) if old is not None else None
    if old is not None and old_at is not None and at <= old_at:
        return old
    out: TrainingProgress = {"step": max(sample.step, 0), "lastUpdateTime": timefmt.fmt(at)}
    total = sample.total_steps
    if total is not None and total > 0:
        out["totalSteps"] = total
        out["percent"] = min(100, max(0, sample.step * 100 // total))
    if sample.loss is not None and _finite(sample.loss):
        out["loss"] = round(sample.loss, 6)
    if sample.samples_per_second is not None and _finite(sample.samples_per_second):
        out["samplesPerSecond"] = round(max(sample.samples_per_second, 0.0), 3)
    if sample.world_size is not None and sample.world_size >= 0:
        out["worldSize"] = sample.world_size
    old_step = old.get("step") if old is not None else None
    moved = not isinstance(old_step, int) or sample.step != old_step
    last_step = old.get("lastStepTime") if old is not None else None
    out["lastStepTime"] = timefmt.fmt(at) if moved or not last_step else str(last_step)
    remaining = _remaining(old, old_at, sample, at)
    if remaining is None and old is not None and not moved:
        remaining = _int(old.get("estimatedRemainingSeconds"))
    if remaining is not None:
        out["estimatedRemainingSeconds"] = remaining
        out["eta"] = human_duration(remaining)
    return out


def _remaining(
    old: TrainingProgress | None, old_at: datetime | None, sample: TrainerSample, at: datetime
) -> int | None:
    """Seconds to ``total_steps`` at the step rate since the previous update."""
    total = sample.total_steps
    if total is None or total <= 0:
        return None
    if sample.step >= total:
        return 0
    if old is None or old_at is None:
        return None
    old_step = old.get("step")
    elapsed = (at - old_at).total_seconds()
    if not isinstance(old_step, int) or sample.step <= old_step or elapsed <= 0:
        return None
    rate = (sample.step - old_step) / elapsed
    return round((total - sample.step) / rate)


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def human_duration(seconds: int) -> str:
    """``4m10s``, ``1h2m``, ``3d4h``: the two largest units, as ``kubectl`` prints ages."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


@dataclass(frozen=True)
class StallDecision:
    """What the stall detector adds to a plan: the conditions, an Event, a Transition, when
    to look again."""

    conditions: list[JobCondition]
    event: Event | None = None
    transition: Transition | None = None
    recheck_at: datetime | None = None


def stall(
    conditions: list[JobCondition],
    progress: TrainingProgress | None,
    stall_after: float | None,
    now: datetime,
) -> StallDecision:
    """The ``Stalled`` condition over ``conditions`` (the plan's, phase already set)."""
    by_type = {cond.get("type"): cond for cond in conditions}
    running = by_type.get(_RUNNING)
    current = by_type.get(c.CONDITION_STALLED)
    was_stalled = current is not None and current.get("status") == "True"
    last_step = timefmt.parse(progress.get("lastStepTime")) if progress is not None else None
    is_running = running is not None and running.get("status") == "True"
    if running is None or not is_running or last_step is None or not stall_after:
        if not was_stalled:
            return StallDecision(conditions)
        why = "the job is no longer Running" if not is_running else "stall detection is off"
        return StallDecision(
            status.set_condition(conditions, c.CONDITION_STALLED, "False", "NotRunning", why, now)
        )
    since = max(last_step, timefmt.parse(running.get("lastTransitionTime")) or last_step)
    deadline = timefmt.after(since, stall_after)
    step = progress.get("step") if progress is not None else None
    if now < deadline:
        if not was_stalled:
            return StallDecision(conditions, recheck_at=deadline)
        message = f"training step advanced to {step}"
        return StallDecision(
            status.set_condition(
                conditions, c.CONDITION_STALLED, "False", "Progressing", message, now
            ),
            event=Event("Normal", "TrainingResumed", message),
            recheck_at=deadline,
        )
    if was_stalled:
        return StallDecision(conditions)
    idle = human_duration(int(timefmt.seconds_until(now, since)))
    message = (
        f"no training step for {idle} (step {step}, last advanced at {timefmt.fmt(last_step)})"
    )
    return StallDecision(
        status.set_condition(conditions, c.CONDITION_STALLED, "True", "NoProgress", message, now),
        event=Event("Warning", "TrainingStalled", message),
        transition=Transition("Stalled", "NoProgress", timefmt.truncate(now)),
    )
