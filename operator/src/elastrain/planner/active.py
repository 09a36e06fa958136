"""A job that is neither finished nor suspended: bring its children to what the spec asks for.

In order: the Service and the PodGroup exist (or the PodGroup goes); a lost parameter server
restarts the whole job; pods the job no longer wants are deleted (``retire``); missing pods
whose name is free and whose back-off has elapsed are created; recoveries that completed end;
the phase is derived from all of that (``status.active_phase``).
"""

from __future__ import annotations

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.planner import children, env, parameter_servers, pod_group, restarts, status
from elastrain.planner.model import Plan, Transition
from elastrain.planner.observe import RUNNING
from elastrain.planner.restarts import COUNTED, DISRUPTED, JOB_KEY, RELEASED, backoff_key
from elastrain.planner.state import State, object_name

# How often a job waiting for the PodGroup CRD re-checks (the CRD may be installed later).
POD_GROUP_CRD_RECHECK_SECONDS = 60.0


def run_active(state: State, job_restart: bool) -> Plan:
    """Everything a running (or starting) job needs; ``job_restart``: a ps failed."""
    gang = children.gang_requested(state.job)
    gang_blocked = gang and not state.observed.pod_group_crd_available
    _ensure_service(state)
    if gang and not gang_blocked:
        pod_group.ensure(state)
    elif not gang:
        pod_group.delete(state)
    if parameter_servers.restart_if_lost(state):
        job_restart = True
    _note_scale_command(state)
    _prune_backoff(state)
    _retire_pods(state, job_restart)
    parameter_servers.record_healthy(state)
    created = _create_pods(state, gang, gang_blocked)
    nxt = state.base_status()
    if created and not nxt.get("startTime"):
        state.set_start_time(nxt)
    complete = state.progress.complete()
    _update_recovery(state, complete)
    tracking = state.tracking
    if tracking.disruption is not None:  # only then is recovery worth computing
        closes = restarts.close_disruption(tracking, _recovered(state), state.now)
        if closes is not None:
            state.timers.append(closes)
    if complete and (tracking.settled is None or state.progress.fully_settled()):
        tracking.settled = state.progress.desired_counts()
        tracking.wiring = state.topology
        if tracking.scale_start is not None and tracking.settled == tracking.desired:
            since = timefmt.parse(tracking.scale_start)
            at = timefmt.truncate(state.now)
            state.transitions.append(Transition("ScaleCompleted", "", at, since=since))
            tracking.scale_start = None
    nxt["tracking"] = tracking.dump()
    state.set_phase(
        nxt, status.active_phase(state.job, state.progress, tracking, complete, gang_blocked)
    )
    deadline = state.deadline(nxt)
    if deadline is not None:
        state.timers.append(deadline)
    if gang_blocked:
        state.timers.append(timefmt.after(state.now, POD_GROUP_CRD_RECHECK_SECONDS))
    return state.to_plan(nxt)


def _note_scale_command(state: State) -> None:
    """Record a change of the spec's replica counts: a scale command (``kubectl scale``, an
    HPA, an edit) and its direction, and start the clock that ``ScaleCompleted`` stops."""
    tracking = state.tracking
    desired = state.progress.desired_counts()
    before = tracking.desired
    tracking.desired = desired
    if before is None or before == desired:
        return
    old, new = sum(before.values()), sum(desired.values())
    direction = "Up" if new >= old else "Down"
    at = timefmt.truncate(state.now)
    tracking.scale_start = timefmt.fmt(at)
    # The Scaling phase's Event (``JobScaling``) already says what changes.
    state.transitions.append(Transition("Scaled", direction, at))


def _ensure_service(state: State) -> None:
    if not any(object_name(s) == state.job.name for s in state.observed.services):
        state.creates.append(children.build_service_spec(state.job))


def _retire_pods(state: State, job_restart: bool) -> None:
    """Delete the pods the job no longer wants (see docs/lifecycle.md for each reason)."""
    for pod in state.pods.pods:
        if pod.terminating:
            continue
        outcome = state.tracking.outcome(pod)
        if outcome == RELEASED:
            state.delete_pod(pod, "Released", release=True)
        elif outcome in (COUNTED, DISRUPTED):
            # Kept during its back-off so that `kubectl logs` still shows why it failed.
            ready_at = state.not_before(backoff_key(pod.role, pod.index))
            if ready_at is None or state.now >= ready_at:
                state.delete_pod(pod, "Recreating", release=False)
            else:
                state.timers.append(ready_at)
        elif not state.progress.wanted(pod):
            state.delete_pod(pod, "ScaledDown", release=True)
        elif job_restart:
            state.delete_pod(pod, "JobRestarting", release=True)
        elif not pod.wired_for(state.topology):
            state.delete_pod(pod, "WiringChanged", release=True)


def _create_pods(state: State, gang: bool, gang_blocked: bool) -> bool:
    """Create every desired pod whose name is free and whose back-off has elapsed."""
    if gang_blocked:
        return False
    job_ready_at = state.not_before(JOB_KEY)
    if job_ready_at is not None and state.now < job_ready_at:
        state.timers.append(job_ready_at)
        return False
    created: set[str] = set()
    host = _rendezvous_host(state)
    for role, index in state.progress.desired():
        name = children.pod_name(state.job, role, index)
        if name in state.pods.names_in_use:
            continue
        if host is not None and (role, index) != host and not _placed(state, host):
            continue  # the host's scheduling is a pod event: it brings the next reconcile
        ready_at = state.not_before(backoff_key(role, index))
        if ready_at is not None and state.now < ready_at:
            state.timers.append(ready_at)
            continue
        if role != c.ROLE_PS and not parameter_servers.ready(state, created):
            continue
        state.creates.append(children.build_pod_spec(state.job, role, index, gang=gang))
        created.add(name)
        _note_replacement(state, role, index)
    return bool(created)


def _rendezvous_host(state: State) -> tuple[str, int] | None:
    """An elastic job's rank-0 pod, which hosts the c10d rendezvous store: created first, and
    the others only once it is placed. Were it the one left Pending (one GPU free, and the
    scheduler picked worker 2 for it), every other worker would wait on a store that is not
    there, and the job would not even run at ``minReplicas`` (dlrover #1175). None for other
    jobs, whose pods must all run anyway."""
    if state.job.spec.elastic_policy is None:
        return None
    role = c.ROLE_CHIEF if env.replicas(state.job, c.ROLE_CHIEF) > 0 else c.ROLE_WORKER
    return role, 0


def _placed(state: State, host: tuple[str, int]) -> bool:
    """Whether the rendezvous host's pod exists, is not going away, and has a node."""
    pod = state.pods.by_name(children.pod_name(state.job, *host))
    return pod is not None and not pod.terminating and pod.scheduled


def _note_replacement(state: State, role: str, index: int) -> None:
    """A pod created for a failed (or disrupted) replica ends its failure-to-replacement
    clock; for a whole-job restart, the first pod created ends the job's."""
    for key in (backoff_key(role, index), JOB_KEY):
        entry = state.tracking.backoff.get(key)
        if entry is None or entry.failed_at is None:
            continue
        since = timefmt.parse(entry.failed_at)
        entry.failed_at = None
        at = timefmt.truncate(state.now)
        reason = c.ROLE_PS if key == JOB_KEY else role  # only a lost ps restarts the job
        state.transitions.append(Transition("Replaced", reason, at, since=since))


def _prune_backoff(state: State) -> None:
    """Forget back-offs of replicas the spec no longer has."""
    keys = {backoff_key(role, index) for role, index in state.progress.desired()}
    keys.add(JOB_KEY)
    state.tracking.backoff = {k: b for k, b in state.tracking.backoff.items() if k in keys}


def _recovered(state: State) -> bool:
    """Every desired pod runs (or is done) and is Ready, and none is on its way out: the job
    has recovered from a disruption, and the grace period of its window may start."""
    progress = state.progress
    return (
        progress.fully_settled()
        and all(p.ready for p in state.pods.pods if p.phase == RUNNING)
        and not any(p.terminating for p in state.pods.pods)
    )


def _update_recovery(state: State, complete: bool) -> None:
    """A back-off stops being a recovery once its replacement runs (or the job does)."""
    for key, entry in state.tracking.backoff.items():
        if not entry.recovering:
            continue
        if key == JOB_KEY:
            entry.recovering = not complete
            continue
        role, _, index = key.rpartition("-")
        pod = state.pods.by_name(children.pod_name(state.job, role, int(index)))
        if pod is not None and state.progress.up(pod):
            entry.recovering = False
