"""The working state of one plan: what it read, what it decided so far, and how that ends up
in a ``Plan``.

``plan_job`` builds one ``State`` and hands it through the decision modules (``finish``,
``suspend``, ``active``, ``parameter_servers``, ``pod_group``), in the fixed order that
``plan.py`` spells out. They read the observation and the previous status from it, update the
bookkeeping (``tracking``, loaded from ``status.tracking``) in place, and add children to
create and delete, events, timers and transitions; ``to_plan`` turns all of it into the Plan.
Every status write goes through ``base_status`` and ``set_phase`` here, so the fields a plan
always recomputes, the conditions, the phase events and the transitions stay in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.api.job_status import JobStatus
from elastrain.api.types import ConditionType, TrainingJob
from elastrain.planner import children, env, pending, status, training, trim
from elastrain.planner.model import Delete, Event, Observed, Plan, Transition
from elastrain.planner.observe import PodObservation, PodView, observe_pods
from elastrain.planner.progress import Progress
from elastrain.planner.restarts import Tracking


@dataclass
class State:
    """One plan's inputs (read-only but ``tracking``) and its accumulated outputs."""

    job: TrainingJob
    observed: Observed
    now: datetime = field(init=False)
    # The status the job carries now, as stored (the API server checked it against the schema).
    prev: dict[str, Any] = field(init=False)
    tracking: Tracking = field(init=False)
    pods: PodObservation = field(init=False)
    topology: str = field(init=False)
    progress: Progress = field(init=False)
    # Restarts counted by this plan, per role (``restarts.account``).
    added_restarts: dict[str, int] = field(default_factory=dict)
    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    # Instants at which time alone changes a decision; the earliest future one is the requeue.
    timers: list[datetime] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.now = timefmt.as_utc(self.observed.now)
        self.topology = env.topology(self.job)
        self.prev = dict(self.job.status)
        self.tracking = Tracking.load(self.prev.get("tracking"))
        self.pods = observe_pods(self.observed.pods, self.job.name, self.job.uid)
        self.progress = Progress(self.job, self.pods, self.tracking, self.topology)

    # -- derived facts --------------------------------------------------------------------

    def restart_count(self) -> int:
        """``restartCount`` so far, including what this plan counted."""
        prev = self.prev.get("restartCount")
        base = prev if isinstance(prev, int) and prev > 0 else 0
        return base + sum(self.added_restarts.values())

    def deadline(self, nxt: JobStatus | None = None) -> datetime | None:
        """When ``activeDeadlineSeconds`` runs out, counted from ``startTime`` of ``nxt`` (or
        of the previous status); None without a deadline or before the job started."""
        seconds = self.job.spec.run_policy.active_deadline_seconds
        start = timefmt.parse((nxt if nxt is not None else self.prev).get("startTime"))
        if seconds is None or start is None:
            return None
        return timefmt.after(start, seconds)

    def not_before(self, key: str) -> datetime | None:
        """When the back-off ``key`` (``restarts.backoff_key``) ends; None without one."""
        entry = self.tracking.backoff.get(key)
        return timefmt.parse(entry.not_before) if entry is not None else None

    # -- children -------------------------------------------------------------------------

    def delete_pod(self, pod: PodView, reason: str, *, release: bool) -> None:
        """Delete ``pod``; ``release`` records first that its death is ours, not a failure."""
        if release:
            self.tracking.release(pod)
        self.deletes.append(Delete("Pod", pod.name, pod.uid or None, reason))

    # -- status ---------------------------------------------------------------------------

    def base_status(self) -> JobStatus:
        """The previous status with every field this plan always recomputes filled in."""
        # The stored status passed the schema that JobStatus mirrors.
        nxt = cast(JobStatus, dict(self.prev))
        nxt["replicaStatuses"] = status.replica_statuses(
            self.job, self.pods.pods, self.prev.get("replicaStatuses") or {}, self.added_restarts
        )
        nxt["restartCount"] = self.restart_count()
        nxt["observedGeneration"] = self.job.generation
        nxt["selector"] = children.worker_selector(self.job)
        nxt["tracking"] = self.tracking.dump()
        progress = training.next_progress(self.prev.get("progress"), self.observed.sample)
        if progress is not None:
            nxt["progress"] = progress
        return nxt

    def set_start_time(self, nxt: JobStatus) -> None:
        """Record that the job's pods are first created now (again, after a resume)."""
        nxt["startTime"] = timefmt.fmt(self.now)
        never_suspended = not status.had_condition(self.prev, ConditionType.SUSPENDED.value)
        self.transitions.append(
            Transition("Started", "", timefmt.truncate(self.now), first_time=never_suspended)
        )

    def set_phase(self, nxt: JobStatus, phase: status.Phase) -> None:
        """Make ``phase`` the one True condition of ``nxt``, with its Event and Transition."""
        before = status.current_phase(self.prev)
        now = timefmt.fmt(self.now)
        nxt["conditions"] = status.set_phase(
            self.prev, phase.kind, phase.reason, phase.message, now
        )
        nxt["phase"] = phase.kind
        event = status.transition_event(before, phase.kind, phase.reason, phase.message)
        if event is not None:
            self.events.append(event)
        transition = status.phase_transition(self.prev, phase, timefmt.truncate(self.now))
        if transition is not None:
            self.transitions.append(transition)
        stalled = training.stall(
            nxt["conditions"], nxt.get("progress"), self.observed.stall_after_seconds, self.now
        )
        nxt["conditions"] = stalled.conditions
        if stalled.event is not None:
            self.events.append(stalled.event)
        if stalled.transition is not None:
            self.transitions.append(stalled.transition)
        if stalled.recheck_at is not None:
            self.timers.append(stalled.recheck_at)
        waiting = pending.workers_pending(
            self.job,
            self.pods.pods,
            self.progress.up_count(c.ROLE_WORKER),
            nxt["conditions"],
            self.now,
            self.tracking.trimmed,
        )
        nxt["conditions"] = waiting.conditions
        if waiting.event is not None:
            self.events.append(waiting.event)
        if waiting.trim_to is not None:
            trim.record(self.tracking, self.job, waiting.trim_to)
        if waiting.recheck_at is not None:
            self.timers.append(waiting.recheck_at)

    # -- output ---------------------------------------------------------------------------

    def to_plan(self, nxt: JobStatus, *, delete_job: bool = False) -> Plan:
        """The Plan: ``nxt`` (None if unchanged), the children, events, and the next wake-up."""
        nxt["tracking"] = self.tracking.dump()
        future = [t for t in self.timers if t > self.now]
        requeue = min((timefmt.seconds_until(t, self.now) for t in future), default=None)
        changed = nxt != self.prev
        return Plan(
            status=nxt if changed else None,
            # A transition is a change of the status; with nothing written, nothing happened.
            transitions=self.transitions if changed else [],
            creates=self.creates,
            deletes=self.deletes,
            events=self.events,
            requeue_after=requeue,
            delete_job=delete_job,
        )


def object_name(obj: object) -> str | None:
    """An observed object's name; None for anything malformed (never raises)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None
