"""``plan(job, observed) -> Plan``: one shared reconcile for every role of a TrainingJob.

The decision order is fixed (``plan_job``), and each step only reads what the previous ones
settled; each step lives in the module named after it:

1. a job being deleted is left to garbage collection; an unparseable one fails (``InvalidSpec``);
2. a finished job only cleans up (``cleanPodPolicy``) and waits for its TTL (``finish``);
3. otherwise new restarts and failures are accounted for (``restarts.account``), and the job
   may finish here: a fatal failure, ``backoffLimit``, success, then ``activeDeadlineSeconds``
   (``finish``);
4. a suspended job loses its pods (``suspend``); a running one gets its missing children,
   loses the pods it no longer wants, and recreates failed ones after their back-off
   (``active``, with ``pod_group`` and ``parameter_servers``);
5. the phase is derived from all of the above and written with the bookkeeping in one status
   (``state``, which every step accumulates its decisions in).

The status is applied first by the handlers, so every delete is recorded (``released``) and
every counted failure is in ``status.tracking`` before anything happens to a pod.
"""

from __future__ import annotations

from typing import Any, cast

from elastrain.api import timefmt
from elastrain.api.errors import FieldError, SpecInvalid
from elastrain.api.job_status import JobStatus
from elastrain.api.parse import parse_training_job
from elastrain.api.types import ConditionType, TrainingJob
from elastrain.planner import active, finish, rejections, status, suspend, trim
from elastrain.planner.model import Event, Observed, Plan
from elastrain.planner.restarts import account
from elastrain.planner.state import State

_FAILED = ConditionType.FAILED.value


def plan(job: dict[str, Any], observed: Observed) -> Plan:
    """Everything one reconcile of ``job`` must do, given what the handlers ``observed``."""
    meta = job.get("metadata") if isinstance(job, dict) else None
    if isinstance(meta, dict) and meta.get("deletionTimestamp"):
        # Owner references make the garbage collector remove the children; nothing to plan.
        return Plan()
    try:
        parsed = parse_training_job(job)
    except SpecInvalid as exc:
        return _invalid(job, observed, exc.errors)
    return plan_job(parsed, observed)


def _invalid(job: dict[str, Any], observed: Observed, errors: list[FieldError]) -> Plan:
    """Fail the job with ``InvalidSpec``, listing every error; create or delete nothing.

    Nothing is deleted because the spec that would say what to delete (``cleanPodPolicy``)
    cannot be read; the Failed condition stops every further action on the job.
    """
    raw_status = job.get("status") if isinstance(job, dict) else None
    prev: dict[str, Any] = dict(raw_status) if isinstance(raw_status, dict) else {}
    before = status.current_phase(prev)
    if before[0] in status.TERMINAL:
        return Plan()
    now = timefmt.fmt(observed.now)
    message = "spec is invalid: " + "; ".join(str(e) for e in errors)
    phase = status.Phase(_FAILED, "InvalidSpec", message)
    # The stored status passed the schema that JobStatus mirrors.
    nxt: JobStatus = cast(JobStatus, dict(prev))
    nxt["conditions"] = status.set_phase(prev, phase.kind, phase.reason, message, now)
    nxt["phase"] = _FAILED
    nxt["completionTime"] = now
    meta = job.get("metadata") if isinstance(job, dict) else None
    generation = meta.get("generation") if isinstance(meta, dict) else None
    if isinstance(generation, int):
        nxt["observedGeneration"] = generation
    transition = status.phase_transition(prev, phase, timefmt.truncate(observed.now))
    return Plan(
        status=nxt,
        transitions=[transition] if transition is not None else [],
        events=[Event("Warning", "InvalidSpec", status.clip(message))],
    )


def plan_job(job: TrainingJob, observed: Observed) -> Plan:
    """``plan`` for an already parsed job (the tests' entry point for typed jobs).

    The fixed decision order of the module docstring; each step returns the Plan.
    """
    if job.deletion_timestamp:
        return Plan()
    job, trim_ended = trim.effective(job)
    state = State(job, observed)
    if trim_ended:
        state.tracking.trimmed = None
    before = status.current_phase(state.prev)
    if before[0] in status.TERMINAL:
        return finish.finished(state, before[0], before[1])
    counting = account(job, state.pods.pods, state.tracking, state.now, state.restart_count())
    state.added_restarts = counting.restarts_by_role
    state.events.extend(counting.events)
    ending = finish.finish_reason(state, counting.fatal or rejections.account(state))
    if ending is not None:
        return finish.finish(state, ending)
    if job.spec.run_policy.suspend:
        return suspend.suspend(state)
    return active.run_active(state, counting.job_restart)
