"""How a job ends: whether it finishes now and why, the cleanup a finished job gets, its TTL.

A job finishes on a fatal failure, then ``backoffLimit``, then success, then
``activeDeadlineSeconds``, in that order of priority. A finished job never changes phase again;
every later plan only repeats its cleanup (until the pods are gone) and waits for the TTL.
"""

from __future__ import annotations

from elastrain.api import timefmt
from elastrain.api.job_status import JobStatus
from elastrain.api.types import CleanPodPolicy, ConditionType
from elastrain.planner import pod_group, status
from elastrain.planner.model import Plan
from elastrain.planner.restarts import Fatal
from elastrain.planner.state import State

_SUCCEEDED = ConditionType.SUCCEEDED.value
_FAILED = ConditionType.FAILED.value


def finish_reason(state: State, fatal: Fatal | None) -> status.Phase | None:
    """Whether the job ends now, and how: failures first, then success, then the deadline."""
    if fatal is not None:
        return status.Phase(_FAILED, fatal.reason, fatal.message)
    run_policy = state.job.spec.run_policy
    limit = run_policy.backoff_limit
    if state.restart_count() > limit:
        return status.Phase(
            _FAILED,
            "BackoffLimitExceeded",
            f"{state.restart_count()} restarts exceed backoffLimit {limit}",
        )
    success = state.progress.success()
    if success is not None:
        return status.Phase(_SUCCEEDED, "JobSucceeded", success)
    deadline = state.deadline()
    if deadline is not None and state.now >= deadline and not run_policy.suspend:
        seconds = run_policy.active_deadline_seconds
        return status.Phase(
            _FAILED, "DeadlineExceeded", f"job ran longer than activeDeadlineSeconds {seconds}"
        )
    return None


def finish(state: State, phase: status.Phase) -> Plan:
    """The job ends in this plan: completionTime now, then the same cleanup as later on."""
    nxt = state.base_status()
    nxt["completionTime"] = timefmt.fmt(state.now)
    return _cleanup(state, phase.kind, phase.reason, nxt, phase)


def finished(state: State, kind: str, reason: str | None) -> Plan:
    """A job that finished in an earlier plan: only cleanup and TTL."""
    return _cleanup(state, kind, reason or "", state.base_status(), None)


def _cleanup(
    state: State, kind: str, reason: str, nxt: JobStatus, new_phase: status.Phase | None
) -> Plan:
    """Stop what a finished job must not keep running, per success/failure and policy.

    Success and DeadlineExceeded always stop live pods (ps and evaluators never exit on
    their own; a deadline means "stop"). ``cleanPodPolicy`` then decides the rest: All
    deletes every pod, Running the live ones, None keeps them (for debugging a failure).
    """
    # A finished job restarts nothing: no ps can be "lost" any more.
    state.tracking.ps = {}
    run_policy = state.job.spec.run_policy
    policy = run_policy.clean_pod_policy
    stop_live = kind == _SUCCEEDED or reason == "DeadlineExceeded"
    stop_live = stop_live or policy is CleanPodPolicy.RUNNING
    for pod in state.pods.pods:
        if pod.terminating:
            continue
        if policy is CleanPodPolicy.ALL or (stop_live and pod.live):
            state.delete_pod(pod, f"Job{kind}", release=False)
    pod_group.delete(state)
    if new_phase is not None:
        state.set_phase(nxt, new_phase)
    return state.to_plan(nxt, delete_job=_ttl_expired(state, nxt))


def _ttl_expired(state: State, nxt: JobStatus) -> bool:
    """Whether ``ttlSecondsAfterFinished`` has passed since completionTime; until then the
    plan requeues for that instant."""
    ttl = state.job.spec.run_policy.ttl_seconds_after_finished
    finished_at = timefmt.parse(nxt.get("completionTime"))
    if ttl is None or finished_at is None:
        return False
    expiry = timefmt.after(finished_at, ttl)
    if state.now >= expiry:
        return True
    state.timers.append(expiry)
    return False
