"""The job's status: phase conditions, per-role pod counts, and what a phase change emits.

Exactly one phase condition is True at a time; the others that were ever True stay listed as
False, so ``kubectl get -o yaml`` shows the history. ``lastTransitionTime`` moves only when a
condition's status flips and ``lastUpdateTime`` when its reason or message changes, so
re-planning an unchanged world writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.api.job_status import JobCondition, RoleCounts
from elastrain.api.types import ConditionType, TrainingJob
from elastrain.planner import env
from elastrain.planner.model import Event, EventType, Transition, TransitionKind
from elastrain.planner.observe import FAILED, PENDING, SUCCEEDED, PodView
from elastrain.planner.progress import Progress
from elastrain.planner.restarts import JOB_KEY, Tracking

PHASES: tuple[str, ...] = tuple(t.value for t in ConditionType)
_CREATED = ConditionType.CREATED.value
_RUNNING = ConditionType.RUNNING.value
_RESTARTING = ConditionType.RESTARTING.value
_SCALING = ConditionType.SCALING.value
TERMINAL = (ConditionType.SUCCEEDED.value, ConditionType.FAILED.value)
# Phase reasons that deserve a Warning event rather than a Normal one.
_WARNING_PHASES = (ConditionType.FAILED.value, ConditionType.RESTARTING.value)
_WARNING_REASONS = ("PodGroupCRDMissing",)


@dataclass(frozen=True)
class Phase:
    """The one True phase condition a plan writes: type, reason and message."""

    kind: str
    reason: str
    message: str


def current_phase(status: dict[str, Any]) -> tuple[str | None, str | None]:
    """(phase, reason) of the True phase condition of ``status``, or (None, None)."""
    for cond in _conditions(status):
        if cond.get("type") in PHASES and cond.get("status") == "True":
            return str(cond["type"]), cond.get("reason")
    return None, None


def _conditions(status: dict[str, Any]) -> list[JobCondition]:
    """The conditions of a stored status (schema-checked by the API server), skipping junk."""
    raw = status.get("conditions")
    found = [cond for cond in raw if isinstance(cond, dict)] if isinstance(raw, list) else []
    return cast(list[JobCondition], found)


def _by_type(status: dict[str, Any]) -> dict[str, JobCondition]:
    return {str(cond.get("type")): cond for cond in _conditions(status)}


# Longest condition and event message: Kubernetes' event recorders cut messages at 1024
# characters, and a condition that repeats a hundred spec errors helps nobody read it.
MAX_MESSAGE = 1024


def had_condition(status: dict[str, Any], type_: str) -> bool:
    """Whether ``status`` holds a condition of ``type_``, True or not: the job was in that
    phase at some point (conditions are never removed, only flipped)."""
    return type_ in _by_type(status)


def set_condition(
    conditions: list[JobCondition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
) -> list[JobCondition]:
    """``conditions`` with the non-phase condition ``type_`` set. Unchanged when status, reason
    and message are (re-planning an unchanged world writes nothing); ``lastTransitionTime``
    kept while the status stays the same."""
    stamp = timefmt.fmt(now)
    message = clip(message)
    current = next((x for x in conditions if x.get("type") == type_), None)
    if current is not None and (
        current.get("status"),
        current.get("reason"),
        current.get("message"),
    ) == (status, reason, message):
        return conditions
    cond: JobCondition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp,
        "lastUpdateTime": stamp,
    }
    if current is not None and current.get("status") == status:
        cond["lastTransitionTime"] = current.get("lastTransitionTime", stamp)
    others = [x for x in conditions if x.get("type") != type_]
    return [*others, cond]


def clip(message: str) -> str:
    """``message`` cut to ``MAX_MESSAGE`` characters, marking the cut."""
    if len(message) <= MAX_MESSAGE:
        return message
    return message[: MAX_MESSAGE - 3] + "..."


def set_phase(
    status: dict[str, Any], phase: str, reason: str, message: str, now: str
) -> list[JobCondition]:
    """The conditions of ``status`` with ``phase`` the only True one, in ``PHASES`` order.

    Conditions of other types (not ours) are kept unchanged after ours.
    """
    message = clip(message)
    existing = _by_type(status)
    out: list[JobCondition] = []
    for kind in PHASES:
        cond = existing.get(kind)
        if kind == phase:
            out.append(_true(cond, kind, reason, message, now))
        elif cond is not None and cond.get("status") == "True":
            out.append(
                {**cond, "status": "False", "lastTransitionTime": now, "lastUpdateTime": now}
            )
        elif cond is not None:
            out.append(cond)
    out.extend(cond for kind, cond in existing.items() if kind not in PHASES)
    return out


def _true(
    cond: JobCondition | None, kind: str, reason: str, message: str, now: str
) -> JobCondition:
    if cond is not None and cond.get("status") == "True":
        if cond.get("reason") == reason and cond.get("message") == message:
            return cond
        return {**cond, "reason": reason, "message": message, "lastUpdateTime": now}
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "lastUpdateTime": now,
    }


def phase_transition(status: dict[str, Any], phase: Phase, at: datetime) -> Transition | None:
    """The Transition when ``phase``'s condition turns True over ``status`` (as ``set_phase``
    flips it, moving its ``lastTransitionTime`` to ``at``), else None."""
    cond = _by_type(status).get(phase.kind)
    if cond is not None and cond.get("status") == "True":
        return None
    kind = cast(TransitionKind, phase.kind)
    return Transition(kind, phase.reason, at, first_time=cond is None)


def transition_event(
    before: tuple[str | None, str | None], phase: str, reason: str, message: str
) -> Event | None:
    """The Event announcing a new phase or a new reason for the same phase, else None."""
    if before == (phase, reason):
        return None
    warn = phase in _WARNING_PHASES or reason in _WARNING_REASONS
    kind: EventType = "Warning" if warn else "Normal"
    return Event(kind, reason, clip(message))


def replica_statuses(
    job: TrainingJob, pods: tuple[PodView, ...], previous: dict[str, Any], added: dict[str, int]
) -> dict[str, RoleCounts]:
    """Counts of the observed pods per role, with cumulative restarts (``previous`` + ``added``).

    Terminating pods are neither active nor ready: they are on their way out and their names
    are not free yet.
    """
    out: dict[str, RoleCounts] = {}
    prev = previous if isinstance(previous, dict) else {}
    for role in c.ROLES:
        if role not in job.spec.replica_specs:
            continue
        mine = [p for p in pods if p.role == role]
        before = prev.get(role)
        restarts = before.get("restarts") if isinstance(before, dict) else 0
        restarts = restarts if isinstance(restarts, int) and restarts > 0 else 0
        out[role] = {
            "active": sum(1 for p in mine if p.live),
            "ready": sum(1 for p in mine if p.ready and not p.terminating),
            "pending": sum(1 for p in mine if p.phase == PENDING and not p.terminating),
            "succeeded": sum(1 for p in mine if p.phase == SUCCEEDED),
            "failed": sum(1 for p in mine if p.phase == FAILED),
            "restarts": restarts + added.get(role, 0),
        }
    return out


def active_phase(
    job: TrainingJob,
    progress: Progress,
    tracking: Tracking,
    complete: bool,
    gang_blocked: bool,
) -> Phase:
    """The phase of a job that is neither finished nor suspended, by priority.

    Restarting (a failure is being repaired) beats Scaling (a spec change is being carried
    out) beats Running; a job that ran before and lost pods without a recorded failure is
    Restarting too, never back to Created.
    """
    recovering = sorted(k for k, b in tracking.backoff.items() if b.recovering)
    up = sum(progress.up_count(role) for role in job.spec.replica_specs)
    total = sum(env.replicas(job, role) for role in job.spec.replica_specs)
    stuck = progress.stuck()
    counts = f"{up}/{total} pods running{stuck}"
    settled = tracking.settled
    desired = progress.desired_counts()
    if JOB_KEY in recovering:
        message = f"restarting every pod after losing a parameter server ({counts})"
        return Phase(_RESTARTING, "JobRestarting", message)
    if recovering:
        names = ", ".join(f"{job.name}-{k}" for k in recovering)
        return Phase(_RESTARTING, "PodRecreating", f"recreating {names} ({counts})")
    if settled is not None and settled != desired:
        message = f"scaling {_counts(settled)} -> {_counts(desired)} ({counts})"
        return Phase(_SCALING, "JobScaling", message)
    if settled is not None and tracking.wiring not in (None, progress.topology):
        message = f"recreating pods for a changed cluster layout ({counts})"
        return Phase(_SCALING, "JobScaling", message)
    if complete:
        elastic = job.spec.elastic_policy
        if elastic is None:
            every = "1 pod" if total == 1 else f"all {total} pods"
            return Phase(_RUNNING, "JobRunning", f"{every} running{stuck}")
        workers = plural(progress.up_count(c.ROLE_WORKER), "worker")
        bounds = f"{elastic.min_replicas}..{elastic.max_replicas}"
        return Phase(_RUNNING, "JobRunning", f"{workers} running (elastic {bounds}){stuck}")
    if gang_blocked:
        return Phase(
            _CREATED,
            "PodGroupCRDMissing",
            "gang scheduling was requested (schedulingPolicy.minAvailable or queue) but the "
            "PodGroup CRD (scheduling.x-k8s.io/v1alpha1) is not installed; the job waits "
            "for it. Install scheduler-plugins or remove minAvailable and queue.",
        )
    if settled is not None:
        return Phase(_RESTARTING, "PodRecreating", counts)
    return Phase(_CREATED, "JobCreated", counts)


def plural(n: int, noun: str) -> str:
    """``1 worker``, ``2 workers``: messages users read in events should be English."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _counts(counts: dict[str, int]) -> str:
    return ",".join(f"{role}={n}" for role, n in sorted(counts.items()))


# What a status write may hold back (``controller.reconcile``): fields that only count or
# describe, never decide. A pod's phase change rewrites the role counts and the phase
# condition's message ("3/5 pods running"); five pods starting would be five writes.
_COUNT_FIELDS = ("replicaStatuses",)
_DESCRIPTIVE_CONDITION_FIELDS = ("message", "lastUpdateTime")


def only_counts_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when ``new`` differs from ``old`` only in pod counts and condition messages.

    Such a status can wait a moment and go out with the next one: no phase, reason, restart
    count, timestamp of a transition or tracking entry changes, so no decision depends on it.
    """

    def essential(status: Mapping[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in status.items() if k not in _COUNT_FIELDS}
        kept["conditions"] = [
            {k: v for k, v in cond.items() if k not in _DESCRIPTIVE_CONDITION_FIELDS}
            for cond in status.get("conditions") or []
        ]
        return kept

    return dict(old) != dict(new) and essential(old) == essential(new)
