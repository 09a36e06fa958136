"""``plan(job, observed) -> Plan``: one shared reconcile for every role of a TrainingJob.

The decision order is fixed, and each step only reads what the previous ones settled:

1. a job being deleted is left to garbage collection; an unparseable one fails (``InvalidSpec``);
2. a finished job only cleans up (``cleanPodPolicy``) and waits for its TTL;
3. otherwise new restarts and failures are accounted for (``restarts.account``), and the job
   may finish here: a fatal failure, ``backoffLimit``, success, then ``activeDeadlineSeconds``;
4. a suspended job loses its pods; a running one gets its missing children, loses the pods
   it no longer wants, and recreates failed ones after their back-off;
5. the phase is derived from all of the above and written with the bookkeeping in one status.

The status is applied first by the handlers, so every delete is recorded (``released``) and
every counted failure is in ``status.tracking`` before anything happens to a pod.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from elastrain.api import constants as c
from elastrain.api.errors import FieldError, SpecInvalid
from elastrain.api.parse import parse_training_job
from elastrain.api.types import CleanPodPolicy, ConditionType, TrainingJob
from elastrain.planner import children, env, status, timefmt
from elastrain.planner.model import Delete, Event, Observed, Plan
from elastrain.planner.observe import (
    PodObservation,
    PodView,
    controller_uid,
    observe_pods,
)
from elastrain.planner.progress import Progress
from elastrain.planner.restarts import (
    COUNTED,
    DISRUPTED,
    JOB_KEY,
    RELEASED,
    Backoff,
    Fatal,
    Tracking,
    account,
    backoff_key,
)

# How often a job waiting for the PodGroup CRD re-checks (the CRD may be installed later).
POD_GROUP_CRD_RECHECK_SECONDS = 60.0

_SUSPENDED = ConditionType.SUSPENDED.value
_SUCCEEDED = ConditionType.SUCCEEDED.value
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
    nxt = dict(prev)
    nxt["conditions"] = status.set_phase(prev, _FAILED, "InvalidSpec", message, now)
    nxt["phase"] = _FAILED
    nxt["completionTime"] = now
    meta = job.get("metadata") if isinstance(job, dict) else None
    generation = meta.get("generation") if isinstance(meta, dict) else None
    if isinstance(generation, int):
        nxt["observedGeneration"] = generation
    return Plan(status=nxt, events=[Event("Warning", "InvalidSpec", status.clip(message))])


def plan_job(job: TrainingJob, observed: Observed) -> Plan:
    """``plan`` for an already parsed job (the tests' entry point for typed jobs)."""
    return _Reconcile(job, observed).run()


@dataclass
class _Reconcile:
    """The working state of one plan; ``run`` is the only entry point."""

    job: TrainingJob
    observed: Observed
    now: datetime = field(init=False)
    prev: dict[str, Any] = field(init=False)
    tracking: Tracking = field(init=False)
    pods: PodObservation = field(init=False)
    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    added_restarts: dict[str, int] = field(default_factory=dict)
    topology: str = field(init=False)
    progress: Progress = field(init=False)

    def __post_init__(self) -> None:
        self.now = timefmt.as_utc(self.observed.now)
        self.topology = env.topology(self.job)
        self.prev = dict(self.job.status)
        self.tracking = Tracking.load(self.prev.get("tracking"))
        self.pods = observe_pods(self.observed.pods, self.job.name, self.job.uid)
        self.progress = Progress(self.job, self.pods, self.tracking, self.topology)

    # -- the decision sequence ------------------------------------------------------------

    def run(self) -> Plan:
        before = status.current_phase(self.prev)
        if self.job.deletion_timestamp:
            return Plan()
        if before[0] in status.TERMINAL:
            return self._finished(before[0], before[1])
        counting = account(self.job, self.pods.pods, self.tracking, self.now, self._restart_count())
        self.added_restarts = counting.restarts_by_role
        self.events.extend(counting.events)
        finish = self._finish_reason(counting.fatal)
        if finish is not None:
            return self._finish(finish)
        if self.job.spec.run_policy.suspend:
            return self._suspend()
        return self._run_active(counting.job_restart)

    def _finish_reason(self, fatal: Fatal | None) -> status.Phase | None:
        """Whether the job ends now, and how: failures first, then success, then the deadline."""
        if fatal is not None:
            return status.Phase(_FAILED, fatal.reason, fatal.message)
        limit = self.job.spec.run_policy.backoff_limit
        if self._restart_count() > limit:
            return status.Phase(
                _FAILED,
                "BackoffLimitExceeded",
                f"{self._restart_count()} restarts exceed backoffLimit {limit}",
            )
        success = self.progress.success()
        if success is not None:
            return status.Phase(_SUCCEEDED, "JobSucceeded", success)
        deadline = self._deadline()
        if deadline is not None and self.now >= deadline and not self.job.spec.run_policy.suspend:
            seconds = self.job.spec.run_policy.active_deadline_seconds
            return status.Phase(
                _FAILED, "DeadlineExceeded", f"job ran longer than activeDeadlineSeconds {seconds}"
            )
        return None

    # -- finished jobs --------------------------------------------------------------------

    def _finish(self, phase: status.Phase) -> Plan:
        """The job ends in this plan: completionTime now, then the same cleanup as later on."""
        nxt = self._base_status()
        nxt["completionTime"] = timefmt.fmt(self.now)
        return self._cleanup(phase.kind, phase.reason, nxt, phase)

    def _finished(self, kind: str, reason: str | None) -> Plan:
        return self._cleanup(kind, reason or "", self._base_status(), None)

    def _cleanup(
        self, kind: str, reason: str, nxt: dict[str, Any], new_phase: status.Phase | None
    ) -> Plan:
        """Stop what a finished job must not keep running, per success/failure and policy.

        Success and DeadlineExceeded always stop live pods (ps and evaluators never exit on
        their own; a deadline means "stop"). ``cleanPodPolicy`` then decides the rest: All
        deletes every pod, Running the live ones, None keeps them (for debugging a failure).
        """
        # A finished job restarts nothing: no ps can be "lost" any more.
        self.tracking.ps = {}
        policy = self.job.spec.run_policy.clean_pod_policy
        stop_live = kind == _SUCCEEDED or reason == "DeadlineExceeded"
        stop_live = stop_live or policy is CleanPodPolicy.RUNNING
        for pod in self.pods.pods:
            if pod.terminating:
                continue
            if policy is CleanPodPolicy.ALL or (stop_live and pod.live):
                self._delete_pod(pod, f"Job{kind}", release=False)
        self._delete_pod_group()
        if new_phase is not None:
            self._set_phase(nxt, new_phase)
        ttl = self.job.spec.run_policy.ttl_seconds_after_finished
        finished_at = timefmt.parse(nxt.get("completionTime"))
        delete_job = False
        if ttl is not None and finished_at is not None:
            expiry = timefmt.after(finished_at, ttl)
            if self.now >= expiry:
                delete_job = True
            else:
                self.timers.append(expiry)
        return self._plan(nxt, delete_job=delete_job)

    # -- suspended jobs -------------------------------------------------------------------

    def _suspend(self) -> Plan:
        """Delete every pod and the PodGroup; keep the job and its Service.

        Back-offs and the settled size are forgotten: a resumed job starts like a new one
        (startTime and the deadline clock restart when its pods are created again).
        """
        for pod in self.pods.pods:
            if not pod.terminating:
                self._delete_pod(pod, "JobSuspended", release=True)
        self._delete_pod_group()
        self.tracking.backoff = {}
        self.tracking.settled = None
        self.tracking.wiring = None
        self.tracking.ps = {}
        nxt = self._base_status()
        nxt.pop("startTime", None)
        self._set_phase(
            nxt,
            status.Phase(
                _SUSPENDED, "JobSuspended", "job is suspended: pods deleted, Service kept"
            ),
        )
        return self._plan(nxt)

    # -- running jobs ---------------------------------------------------------------------

    def _run_active(self, job_restart: bool) -> Plan:
        gang = children.gang_requested(self.job)
        gang_blocked = gang and not self.observed.pod_group_crd_available
        self._ensure_service()
        if gang and not gang_blocked:
            self._ensure_pod_group()
        elif not gang:
            self._delete_pod_group()
        if self._parameter_server_lost():
            job_restart = True
            previous = self.tracking.backoff.get(JOB_KEY)
            if previous is None or not previous.recovering:
                self.tracking.backoff[JOB_KEY] = Backoff(
                    attempts=previous.attempts if previous else 0,
                    last_failure=previous.last_failure if previous else None,
                    not_before=timefmt.fmt(self.now),
                )
                self.events.append(
                    Event(
                        "Warning",
                        "ParameterServerLost",
                        "a parameter-server pod disappeared; restarting the whole job",
                    )
                )
        self._prune_backoff()
        self._retire_pods(job_restart)
        self._record_parameter_servers()
        created = self._create_pods(gang, gang_blocked)
        nxt = self._base_status()
        if created and not nxt.get("startTime"):
            nxt["startTime"] = timefmt.fmt(self.now)
        complete = self.progress.complete()
        self._update_recovery(complete)
        if complete and (self.tracking.settled is None or self.progress.fully_settled()):
            self.tracking.settled = self.progress.desired_counts()
            self.tracking.wiring = self.topology
        nxt["tracking"] = self.tracking.dump()
        self._set_phase(
            nxt, status.active_phase(self.job, self.progress, self.tracking, complete, gang_blocked)
        )
        deadline = self._deadline(nxt)
        if deadline is not None:
            self.timers.append(deadline)
        if gang_blocked:
            self.timers.append(timefmt.after(self.now, POD_GROUP_CRD_RECHECK_SECONDS))
        return self._plan(nxt)

    def _ensure_service(self) -> None:
        if not any(_name(s) == self.job.name for s in self.observed.services):
            self.creates.append(children.build_service_spec(self.job))

    def _ensure_pod_group(self) -> None:
        """Create the PodGroup; replace it when its gang size no longer matches the spec."""
        if not any(_name(g) == self.job.name for g in self.observed.pod_groups):
            self.creates.append(children.build_pod_group_spec(self.job))
            return
        group = self._own_pod_group()
        spec = group.get("spec") if group is not None else None
        if group is not None and (
            not isinstance(spec, dict) or spec.get("minMember") != children.min_member(self.job)
        ):
            self._delete_pod_group()

    def _own_pod_group(self) -> dict[str, Any] | None:
        """The PodGroup named after the job, if this job controls it.

        A namesake someone else owns (a user's own PodGroup) is never replaced or deleted.
        """
        for group in self.observed.pod_groups:
            if _name(group) == self.job.name and controller_uid(group) == self.job.uid:
                return group
        return None

    def _delete_pod_group(self) -> None:
        group = self._own_pod_group()
        if group is None:
            return
        meta = group["metadata"]
        if meta.get("deletionTimestamp"):
            return
        uid = meta.get("uid")
        self.deletes.append(
            Delete("PodGroup", self.job.name, uid if isinstance(uid, str) else None, "Unneeded")
        )

    def _parameter_server_lost(self) -> bool:
        """A ps pod vanished while other pods still run against it: restart the whole job.

        Only a ps recorded in ``tracking.ps`` (observed healthy by an earlier plan) can be
        lost. A ps the planner created but has not observed yet is simply absent: the handlers'
        indexes can show the fresh workers before the fresh ps, and taking that for a loss
        restarted jobs at their start. Indices beyond the desired ps count do not count (they
        are being scaled away), nor do other pods with a stale wiring (being replaced anyway).
        """
        ps = env.replicas(self.job, c.ROLE_PS)
        wanted = {children.pod_name(self.job, c.ROLE_PS, i) for i in range(ps)}
        observed = {p.uid for p in self.pods.pods if p.role == c.ROLE_PS}
        missing = any(
            name in wanted and uid not in observed for name, uid in self.tracking.ps.items()
        )
        return missing and any(
            p.role != c.ROLE_PS
            and not p.terminating
            and self.tracking.outcome(p) is None
            and p.wired_for(self.topology)
            for p in self.pods.pods
        )

    def _record_parameter_servers(self) -> None:
        """Remember the ps pods observed healthy after this plan's decisions.

        A ps that failed, is being deleted or was released by this very plan is left out:
        what happens to it from now on is already accounted for, so its disappearance is not
        a loss. Recomputed from the observation each time, so re-planning writes the same.
        """
        self.tracking.ps = {
            p.name: p.uid
            for p in self.pods.pods
            if p.role == c.ROLE_PS
            and not p.terminating
            and self.tracking.outcome(p) is None
            and self.progress.wanted(p)
        }

    def _retire_pods(self, job_restart: bool) -> None:
        """Delete the pods the job no longer wants (see docs/lifecycle.md for each reason)."""
        for pod in self.pods.pods:
            if pod.terminating:
                continue
            outcome = self.tracking.outcome(pod)
            if outcome == RELEASED:
                self._delete_pod(pod, "Released", release=True)
            elif outcome in (COUNTED, DISRUPTED):
                # Kept during its back-off so that `kubectl logs` still shows why it failed.
                ready_at = self._not_before(backoff_key(pod.role, pod.index))
                if ready_at is None or self.now >= ready_at:
                    self._delete_pod(pod, "Recreating", release=False)
                else:
                    self.timers.append(ready_at)
            elif not self.progress.wanted(pod):
                self._delete_pod(pod, "ScaledDown", release=True)
            elif job_restart:
                self._delete_pod(pod, "JobRestarting", release=True)
            elif not pod.wired_for(self.topology):
                self._delete_pod(pod, "WiringChanged", release=True)

    def _create_pods(self, gang: bool, gang_blocked: bool) -> bool:
        """Create every desired pod whose name is free and whose back-off has elapsed."""
        if gang_blocked:
            return False
        job_ready_at = self._not_before(JOB_KEY)
        if job_ready_at is not None and self.now < job_ready_at:
            self.timers.append(job_ready_at)
            return False
        created: set[str] = set()
        for role, index in self.progress.desired():
            name = children.pod_name(self.job, role, index)
            if name in self.pods.names_in_use:
                continue
            ready_at = self._not_before(backoff_key(role, index))
            if ready_at is not None and self.now < ready_at:
                self.timers.append(ready_at)
                continue
            if role != c.ROLE_PS and not self._parameter_servers_ready(created):
                continue
            self.creates.append(children.build_pod_spec(self.job, role, index, gang=gang))
            created.add(name)
        return bool(created)

    def _parameter_servers_ready(self, created: set[str]) -> bool:
        """Whether every ps is healthy or created in this plan (trivially true without ps).

        Workers created while an old ps is still being deleted would be orphaned by it and
        trigger a second whole-job restart; they wait for the fresh parameter servers.
        """
        for index in range(env.replicas(self.job, c.ROLE_PS)):
            name = children.pod_name(self.job, c.ROLE_PS, index)
            pod = self.pods.by_name(name)
            healthy = pod is not None and not pod.terminating and self.tracking.outcome(pod) is None
            if name not in created and not healthy:
                return False
        return True

    def _prune_backoff(self) -> None:
        """Forget back-offs of replicas the spec no longer has."""
        keys = {backoff_key(role, index) for role, index in self.progress.desired()}
        keys.add(JOB_KEY)
        self.tracking.backoff = {k: b for k, b in self.tracking.backoff.items() if k in keys}

    def _update_recovery(self, complete: bool) -> None:
        """A back-off stops being a recovery once its replacement runs (or the job does)."""
        for key, entry in self.tracking.backoff.items():
            if not entry.recovering:
                continue
            if key == JOB_KEY:
                entry.recovering = not complete
                continue
            role, _, index = key.rpartition("-")
            pod = self.pods.by_name(children.pod_name(self.job, role, int(index)))
            if pod is not None and self.progress.up(pod):
                entry.recovering = False

    # -- derived facts --------------------------------------------------------------------

    def _deadline(self, nxt: dict[str, Any] | None = None) -> datetime | None:
        seconds = self.job.spec.run_policy.active_deadline_seconds
        start = timefmt.parse((nxt if nxt is not None else self.prev).get("startTime"))
        if seconds is None or start is None:
            return None
        return timefmt.after(start, seconds)

    def _not_before(self, key: str) -> datetime | None:
        entry = self.tracking.backoff.get(key)
        return timefmt.parse(entry.not_before) if entry is not None else None

    def _restart_count(self) -> int:
        prev = self.prev.get("restartCount")
        base = prev if isinstance(prev, int) and prev > 0 else 0
        return base + sum(self.added_restarts.values())

    # -- output ---------------------------------------------------------------------------

    def _delete_pod(self, pod: PodView, reason: str, *, release: bool) -> None:
        if release:
            self.tracking.release(pod)
        self.deletes.append(Delete("Pod", pod.name, pod.uid or None, reason))

    def _base_status(self) -> dict[str, Any]:
        """The previous status with every field this plan always recomputes filled in."""
        nxt = dict(self.prev)
        nxt["replicaStatuses"] = status.replica_statuses(
            self.job, self.pods.pods, self.prev.get("replicaStatuses") or {}, self.added_restarts
        )
        nxt["restartCount"] = self._restart_count()
        nxt["observedGeneration"] = self.job.generation
        nxt["selector"] = children.worker_selector(self.job)
        nxt["tracking"] = self.tracking.dump()
        return nxt

    def _set_phase(self, nxt: dict[str, Any], phase: status.Phase) -> None:
        before = status.current_phase(self.prev)
        now = timefmt.fmt(self.now)
        nxt["conditions"] = status.set_phase(
            self.prev, phase.kind, phase.reason, phase.message, now
        )
        nxt["phase"] = phase.kind
        event = status.transition_event(before, phase.kind, phase.reason, phase.message)
        if event is not None:
            self.events.append(event)

    def _plan(self, nxt: dict[str, Any], *, delete_job: bool = False) -> Plan:
        nxt["tracking"] = self.tracking.dump()
        future = [t for t in self.timers if t > self.now]
        requeue = min((timefmt.seconds_until(t, self.now) for t in future), default=None)
        return Plan(
            status=None if nxt == self.prev else nxt,
            creates=self.creates,
            deletes=self.deletes,
            events=self.events,
            requeue_after=requeue,
            delete_job=delete_job,
        )


def _name(obj: object) -> str | None:
    """An observed object's name; None for anything malformed (never raises)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None
