"""The ``WorkersPending`` condition: elastic workers that wait too long for a node.

An elastic job runs as soon as ``minReplicas`` workers do; the others may stay Pending
(unschedulable until a cluster autoscaler adds a node, an image still pulling) without
blocking or failing it, and join the next rendezvous round once they run. Nobody would notice
that they never come, so with ``elasticPolicy.pendingTimeoutSeconds`` a worker Pending for
longer than that (counted from its creation) turns ``WorkersPending`` True, with a Warning
Event that names the workers and why they wait; once none is overdue it turns False with a
Normal Event. The job keeps its phase and, unless ``trimPendingWorkers`` gives the overdue
workers up (``trim``), its desired worker count.
Decided purely from the observed pods and the clock, like ``training.stall``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.api.job_status import JobCondition
from elastrain.api.types import ConditionType, TrainingJob
from elastrain.planner import env, status, trim
from elastrain.planner.model import Event
from elastrain.planner.observe import PENDING, PodView
from elastrain.planner.restarts import Trimmed
from elastrain.planner.training import human_duration

# Phases in which a Pending worker is worth reporting: not finished, not suspended.
_ACTIVE = frozenset(
    t.value
    for t in (
        ConditionType.CREATED,
        ConditionType.RUNNING,
        ConditionType.RESTARTING,
        ConditionType.SCALING,
    )
)
# Pods named in the message; the count says how many more there are.
_NAMED = 3


@dataclass(frozen=True)
class PendingDecision:
    """What the pending-worker check adds to a plan: the conditions, an Event, when to look
    again (the next worker's timeout)."""

    conditions: list[JobCondition]
    event: Event | None = None
    recheck_at: datetime | None = None
    # The worker count to give the overdue workers up at (``trim``), if the job says so.
    trim_to: int | None = None


def workers_pending(
    job: TrainingJob,
    pods: tuple[PodView, ...],
    running_workers: int,
    conditions: list[JobCondition],
    now: datetime,
    trimmed: Trimmed | None = None,
) -> PendingDecision:
    """The ``WorkersPending`` condition over ``conditions`` (the plan's, phase already set)."""
    elastic = job.spec.elastic_policy
    timeout = elastic.pending_timeout_seconds if elastic is not None else None
    current = next((x for x in conditions if x.get("type") == c.CONDITION_WORKERS_PENDING), None)
    was_pending = current is not None and current.get("status") == "True"
    active = status.current_phase({"conditions": conditions})[0] in _ACTIVE
    if timeout is None or not active:
        if not was_pending:
            return PendingDecision(conditions)
        why = "the job is no longer active" if not active else "pendingTimeoutSeconds is unset"
        return PendingDecision(_set(conditions, "False", "NotActive", why, now))
    # (worker, when its timeout runs out) for every Pending worker.
    due = [
        (p, timefmt.after(p.created, timeout))
        for p in pods
        if p.role == c.ROLE_WORKER
        and p.phase == PENDING
        and not p.terminating
        and p.created is not None
    ]
    overdue = sorted((p for p, at in due if at <= now), key=lambda p: p.index)
    recheck = min((at for _, at in due if at > now), default=None)
    limit = human_duration(timeout)
    if not overdue:
        if not was_pending:
            return PendingDecision(conditions, recheck_at=recheck)
        message = f"no worker has been Pending for more than {limit}"
        return PendingDecision(
            _set(conditions, "False", "WorkersScheduled", message, now),
            event=Event("Normal", "WorkersScheduled", message),
            recheck_at=recheck,
        )
    named = ", ".join(f"{p.name} ({p.waiting})" if p.waiting else p.name for p in overdue[:_NAMED])
    more = f" (+{len(overdue) - _NAMED} more)" if len(overdue) > _NAMED else ""
    desired = env.replicas(job, c.ROLE_WORKER)
    message = (
        f"{status.plural(len(overdue), 'worker')} Pending for more than {limit}: {named}{more}; "
        f"{running_workers} of {desired} workers running"
    )
    to = trim.trim_to(job, pods, overdue)
    if to is not None or trimmed is not None:
        of = trimmed.spec if trimmed is not None else desired
        message += (
            f"; trimmed to {to if to is not None else desired} of {of} workers "
            "(trimPendingWorkers) until the spec's worker count changes"
        )
        decided = _set(conditions, "True", "WorkersTrimmed", message, now)
        if to is None:
            return PendingDecision(decided, recheck_at=recheck)
        given_up = Event("Warning", "WorkersTrimmed", status.clip(message))
        return PendingDecision(decided, event=given_up, recheck_at=recheck, trim_to=to)
    decided = _set(conditions, "True", "PendingTimeout", message, now)
    event = None if was_pending else Event("Warning", "WorkersPending", status.clip(message))
    return PendingDecision(decided, event=event, recheck_at=recheck)


def _set(
    conditions: list[JobCondition], state: str, reason: str, message: str, now: datetime
) -> list[JobCondition]:
    return status.set_condition(
        conditions, c.CONDITION_WORKERS_PENDING, state, reason, message, now
    )
