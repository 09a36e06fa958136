"""Restart accounting: what each observed failure means, counted exactly once.

Everything counted is recorded in ``status.tracking`` (written before any delete or create), so
a reconcile that sees the same failed pod again -- because its deletion has not been observed
yet, or because the operator crashed after the status write -- finds the pod's uid already
settled and counts nothing twice. In-place restarts are counted as deltas of the containers'
``restartCount`` against the value last counted for that pod uid.

Tracking layout (free-form under ``status.tracking``; not an API)::

    pods:    {<pod uid>: {name, restarts, outcome}}   only pods with something counted
    backoff: {<role>-<index> | "job": {attempts, lastFailure, notBefore, recovering}}
    settled: {<role>: replicas}                         counts the job last ran complete with
    desired: {<role>: replicas}                         counts the spec asked for last time
    scaleStart: <time>                                  when those counts last changed, until
                                                        the job runs complete at them
    wiring:  <hash>                                     env.topology it last ran complete with
    ps:      {<ps pod name>: <pod uid>}                 parameter servers observed healthy
    disruption: {since, cause, ends}                    the open disruption window, if any

A disruption (a pod evicted, preempted, on a lost node, or deleted by someone else) takes the
job's other pods down with it: torchrun's agents lose the rendezvous store that worker 0
hosts, and gloo peers lose their connections. Their in-place restarts and retryable failures
are the disruption's consequences, not failures of their own, so while a disruption window is
open they are recorded but not counted. The window opens when a disruption is seen, stays open
until every desired pod runs and is Ready again with none terminating, and closes
``DISRUPTION_GRACE_SECONDS`` after that (a peer's agent can fail once more while the group
re-forms).

A parameter server's loss is the same for its workers: they hold no parameters and fail or
stop when it goes. While the whole job restarts for a ps (counted once if it failed, not at
all if it was disrupted), a worker of the old generation that restarts in place or fails with
an exit of any code is released with the rest and counts nothing (``_absorbed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.api.types import RestartPolicy, TrainingJob
from elastrain.planner.model import Event
from elastrain.planner.observe import FAILED, PodView

# Pod outcomes recorded in tracking.
COUNTED = "counted"  # failed, counted against backoffLimit, to be recreated after the backoff
DISRUPTED = "disrupted"  # failed through no fault of its own; recreated, not counted
RELEASED = "released"  # deleted on purpose by the operator; its death means nothing

# The backoff key of a whole-job restart (a parameter server was lost).
JOB_KEY = "job"
# How long after a disruption's recovery the other pods' restarts are still its consequences.
DISRUPTION_GRACE_SECONDS = 60


@dataclass
class PodRecord:
    """What has been counted for one pod uid."""

    name: str
    restarts: int = 0
    outcome: str | None = None


@dataclass
class Backoff:
    """Recreation back-off of one replica (or of the whole job, key ``job``)."""

    attempts: int
    last_failure: str | None
    not_before: str
    # True from a failure until the replacement runs: this is what the Restarting phase shows.
    recovering: bool = True
    # When the failure (or disruption) was observed, until the replacement is created: the
    # start of ``elastrain_pod_replacement_seconds``.
    failed_at: str | None = None


@dataclass
class Rejected:
    """How often creates were refused as invalid at spec ``generation``, and the last reason."""

    count: int
    generation: int
    message: str


@dataclass
class Trimmed:
    """An elastic job trimmed to ``to`` workers while the spec asks for ``spec`` (``trim``)."""

    to: int
    spec: int

    @classmethod
    def load(cls, raw: Any) -> Trimmed | None:
        """``status.tracking.trimmed`` parsed leniently: None unless it trims something."""
        if isinstance(raw, dict) and _int(raw.get("spec")) > _int(raw.get("to")):
            return cls(to=_int(raw.get("to")), spec=_int(raw.get("spec")))
        return None


@dataclass
class Disruption:
    """An open disruption window: since when, which pod caused it, and when it closes (None
    until the job has recovered)."""

    since: str
    cause: str
    ends: str | None = None

    def open_at(self, now: datetime) -> bool:
        ends = timefmt.parse(self.ends)
        return ends is None or now < ends


@dataclass
class Tracking:
    """The planner's bookkeeping, loaded from and dumped to ``status.tracking``."""

    pods: dict[str, PodRecord] = field(default_factory=dict)
    backoff: dict[str, Backoff] = field(default_factory=dict)
    settled: dict[str, int] | None = None
    # The replica counts of the spec as last planned, and when they last changed (cleared
    # once the job runs complete at them): scale commands and their duration.
    desired: dict[str, int] | None = None
    scale_start: str | None = None
    wiring: str | None = None
    # Parameter servers last observed healthy, by name. Only these can be "lost": a ps the
    # planner created but has not observed yet (the informer lags its own create) is absent
    # from the observation without anything having happened to it.
    ps: dict[str, str] = field(default_factory=dict)
    # Creates the API server refused as invalid, at this spec generation: ``planner.rejections``.
    rejected: Rejected | None = None
    # The open disruption window (see the module docstring), if any.
    disruption: Disruption | None = None
    # The worker count given up to, past pendingTimeoutSeconds (``planner.trim``), if any.
    trimmed: Trimmed | None = None

    @classmethod
    def load(cls, raw: Any) -> Tracking:
        """Parse tracking leniently: a malformed entry is dropped, never raised on."""
        raw = raw if isinstance(raw, dict) else {}
        tracking = cls()
        for uid, rec in _items(raw.get("pods")):
            if isinstance(rec, dict) and isinstance(rec.get("name"), str):
                outcome = rec.get("outcome")
                tracking.pods[uid] = PodRecord(
                    name=rec["name"],
                    restarts=_int(rec.get("restarts")),
                    outcome=outcome if outcome in (COUNTED, DISRUPTED, RELEASED) else None,
                )
        for key, rec in _items(raw.get("backoff")):
            if isinstance(rec, dict) and timefmt.parse(rec.get("notBefore")) is not None:
                last = rec.get("lastFailure")
                tracking.backoff[key] = Backoff(
                    attempts=_int(rec.get("attempts")),
                    last_failure=last if timefmt.parse(last) is not None else None,
                    not_before=rec["notBefore"],
                    recovering=bool(rec.get("recovering")),
                    failed_at=_time(rec.get("failedAt")),
                )
        settled = raw.get("settled")
        if isinstance(settled, dict):
            tracking.settled = {str(k): _int(v) for k, v in settled.items()}
        desired = raw.get("desired")
        if isinstance(desired, dict):
            tracking.desired = {str(k): _int(v) for k, v in desired.items()}
        tracking.scale_start = _time(raw.get("scaleStart"))
        wiring = raw.get("wiring")
        tracking.wiring = wiring if isinstance(wiring, str) else None
        tracking.ps = {name: uid for name, uid in _items(raw.get("ps")) if isinstance(uid, str)}
        rejected = raw.get("rejected")
        if isinstance(rejected, dict) and _int(rejected.get("count")):
            tracking.rejected = Rejected(
                count=_int(rejected.get("count")),
                generation=_int(rejected.get("generation")),
                message=str(rejected.get("message") or ""),
            )
        disruption = raw.get("disruption")
        if isinstance(disruption, dict) and _time(disruption.get("since")) is not None:
            tracking.disruption = Disruption(
                since=disruption["since"],
                cause=str(disruption.get("cause") or ""),
                ends=_time(disruption.get("ends")),
            )
        tracking.trimmed = Trimmed.load(raw.get("trimmed"))
        return tracking

    def dump(self) -> dict[str, Any]:
        """The JSON form written to ``status.tracking`` (sorted keys: stable diffs)."""
        out: dict[str, Any] = {}
        if self.pods:
            out["pods"] = {
                uid: _compact(
                    {"name": rec.name, "restarts": rec.restarts or None, "outcome": rec.outcome}
                )
                for uid, rec in sorted(self.pods.items())
            }
        if self.backoff:
            out["backoff"] = {
                key: _compact(
                    {
                        "attempts": b.attempts,
                        "lastFailure": b.last_failure,
                        "notBefore": b.not_before,
                        "recovering": b.recovering,
                        "failedAt": b.failed_at,
                    }
                )
                for key, b in sorted(self.backoff.items())
            }
        if self.settled is not None:
            out["settled"] = dict(sorted(self.settled.items()))
        if self.desired is not None:
            out["desired"] = dict(sorted(self.desired.items()))
        if self.scale_start is not None:
            out["scaleStart"] = self.scale_start
        if self.wiring is not None:
            out["wiring"] = self.wiring
        if self.ps:
            out["ps"] = dict(sorted(self.ps.items()))
        if self.rejected is not None:
            r = self.rejected
            out["rejected"] = {"count": r.count, "generation": r.generation, "message": r.message}
        if self.disruption is not None:
            d = self.disruption
            out["disruption"] = _compact({"since": d.since, "cause": d.cause, "ends": d.ends})
        if self.trimmed is not None:
            out["trimmed"] = {"to": self.trimmed.to, "spec": self.trimmed.spec}
        return out

    def release(self, pod: PodView) -> None:
        """Mark ``pod`` as deleted on purpose: whatever it does while dying is not a failure."""
        rec = self.pods.setdefault(pod.uid, PodRecord(pod.name, pod.restarts))
        if rec.outcome is None:
            rec.outcome = RELEASED

    def outcome(self, pod: PodView) -> str | None:
        """What has been decided about ``pod`` so far."""
        rec = self.pods.get(pod.uid)
        return rec.outcome if rec else None


def _items(value: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _time(value: Any) -> str | None:
    return value if timefmt.parse(value) is not None else None


def _compact(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if v is not None}


def backoff_key(role: str, index: int) -> str:
    """Parameter servers share the job's key: losing one restarts the whole job."""
    return JOB_KEY if role == c.ROLE_PS else f"{role}-{index}"


@dataclass(frozen=True)
class Fatal:
    """A failure that ends the job."""

    reason: str
    message: str


@dataclass
class Counting:
    """The outcome of accounting for one reconcile's observations."""

    restarts_by_role: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    fatal: Fatal | None = None
    # A parameter server failed or was disrupted: every pod must be recreated.
    job_restart: bool = False

    @property
    def total(self) -> int:
        return sum(self.restarts_by_role.values())


def account(
    job: TrainingJob,
    pods: tuple[PodView, ...],
    tracking: Tracking,
    now: datetime,
    counted_before: int,
) -> Counting:
    """Count new restarts and classify new failures, updating ``tracking`` in place.

    ``counted_before`` (the job's restartCount so far) only feeds the event messages. Pods
    already released count nothing at all; pods outside the desired replicas (being scaled
    away, not yet released) have their in-place restarts counted but their failures ignored,
    since the planner releases them in this same plan.
    """
    result = Counting()
    scheduled: set[str] = set()
    window = _disruption_window(pods, tracking, now)
    job_entry = tracking.backoff.get(JOB_KEY)
    # A ps observed healthy before and gone now: the planner restarts the whole job for it
    # (``parameter_servers``), so its workers' failures are that loss's consequences.
    uids = {pod.uid for pod in pods}
    ps_gone = any(uid not in uids for uid in tracking.ps.values())
    recovering = job_entry is not None and job_entry.recovering
    live_ps = [p for p in pods if p.role == c.ROLE_PS and p.phase != FAILED and not p.terminating]
    # Parameter servers first: a ps failing in this very observation restarts the whole job,
    # and the workers' failures seen with it are its consequences (``_absorbed``).
    for pod in sorted(pods, key=lambda p: p.role != c.ROLE_PS):
        restarting = result.job_restart or recovering or ps_gone
        rec = tracking.pods.get(pod.uid) or PodRecord(pod.name)
        delta = pod.restarts - rec.restarts
        lost_ps = restarting and rec.outcome is None and _lost_its_ps(job, live_ps, pod)
        if lost_ps and _absorbed(pod, rec, result):
            tracking.pods[pod.uid] = rec
            continue
        if delta > 0 and rec.outcome == RELEASED:
            rec.restarts = pod.restarts  # a pod we are deleting: its restarts mean nothing
        elif delta > 0 and window is not None:
            rec.restarts = pod.restarts
            result.events.append(
                Event(
                    "Normal",
                    "RestartNotCounted",
                    f"pod {pod.name} restarted in place {delta} time(s){_last_exit(pod)} "
                    f"after the disruption of {window.cause}; not counted against "
                    "backoffLimit",
                )
            )
        elif delta > 0:
            _add(result, pod.role, delta)
            rec.restarts = pod.restarts
            last = _last_exit(pod)
            used = counted_before + result.total
            limit = job.spec.run_policy.backoff_limit
            result.events.append(
                Event(
                    "Warning",
                    "ContainerRestarted",
                    f"pod {pod.name} restarted in place {delta} time(s){last}; "
                    f"{used} restart(s) used of backoffLimit {limit}",
                )
            )
        spec = job.spec.replica_specs.get(pod.role)
        wanted = spec is not None and pod.index < spec.replicas
        if pod.phase == FAILED and rec.outcome is None and wanted and spec is not None:
            _classify(job, pod, spec.restart_policy, rec, tracking, now, result, scheduled, window)
        if rec.restarts or rec.outcome:
            tracking.pods[pod.uid] = rec
    # Records of pods that are gone can never be seen again (uids are unique): forget them.
    seen = {pod.uid for pod in pods}
    tracking.pods = {uid: rec for uid, rec in tracking.pods.items() if uid in seen}
    return result


def _lost_its_ps(job: TrainingJob, live: list[PodView], pod: PodView) -> bool:
    """Whether ``pod`` (not a ps) ran against parameter servers that are gone: some ps index
    has no ``live`` (neither failed nor terminating) pod, or a live ps is newer than ``pod``.
    Workers of the fresh generation are created only once every fresh ps exists, so their own
    failures still count."""
    if pod.role == c.ROLE_PS:
        return False
    spec = job.spec.replica_specs.get(c.ROLE_PS)
    if spec is None or len({p.index for p in live}) < spec.replicas:
        return spec is not None
    return pod.created is not None and any(p.created and p.created > pod.created for p in live)


def _absorbed(pod: PodView, rec: PodRecord, result: Counting) -> bool:
    """While the whole job restarts for a parameter server, a worker that lost its ps and
    restarts in place or fails is that restart's consequence, not a failure of its own: it is
    released with the rest and counts nothing. Whatever its exit code: a worker whose ps
    vanished mid-request may exit 1 (a connection error) before the operator has seen the ps
    go, and the same pod failing after the restart's deletion would not count either. True
    when ``pod`` was absorbed."""
    if pod.phase != FAILED and pod.restarts <= rec.restarts:
        return False
    rec.restarts = pod.restarts
    rec.outcome = RELEASED
    what = pod.failure_text() if pod.phase == FAILED else f"pod {pod.name} restarted in place"
    result.events.append(
        Event(
            "Normal",
            "RestartNotCounted",
            f"{what} after losing its parameter server, while the whole job restarts; "
            "not counted against backoffLimit",
        )
    )
    return True


def _disruption_window(
    pods: tuple[PodView, ...], tracking: Tracking, now: datetime
) -> Disruption | None:
    """The disruption window open at ``now``, opening one for a newly seen disruption and
    forgetting one that has closed."""
    cause = _disrupted(pods, tracking)
    current = tracking.disruption
    if current is not None and not current.open_at(now):
        current = tracking.disruption = None
    if cause is not None and (current is None or current.ends is not None):
        # A new disruption, or one during the grace of the last: open (again) until recovery.
        current = tracking.disruption = Disruption(since=timefmt.fmt(now), cause=cause)
    return current


def _disrupted(pods: tuple[PodView, ...], tracking: Tracking) -> str | None:
    """The name of a pod disrupted now, if any: one with a disruption condition or reason, or
    one terminating although the operator did not delete it. (A pod deleted and removed
    between two observations is seen only as gone, which opens no window.)"""
    for pod in pods:
        outcome = tracking.outcome(pod)
        if outcome == RELEASED:
            continue
        if pod.disruption is not None or (pod.terminating and outcome is None):
            return pod.name
    return None


def close_disruption(tracking: Tracking, recovered: bool, now: datetime) -> datetime | None:
    """Start the grace period once the job has ``recovered`` from the open disruption;
    returns when the window closes (a time to plan again), None without an open window."""
    current = tracking.disruption
    if current is None:
        return None
    if current.ends is None:
        if not recovered:
            return None
        current.ends = timefmt.fmt_after(now, DISRUPTION_GRACE_SECONDS)
    return timefmt.parse(current.ends)


def _last_exit(pod: PodView) -> str:
    if not pod.exits:
        return ""
    name, code = pod.exits[0]
    return f" (container {name!r} last exited with code {code})"


def _add(result: Counting, role: str, n: int) -> None:
    result.restarts_by_role[role] = result.restarts_by_role.get(role, 0) + n


def _classify(
    job: TrainingJob,
    pod: PodView,
    policy: RestartPolicy,
    rec: PodRecord,
    tracking: Tracking,
    now: datetime,
    result: Counting,
    scheduled: set[str],
    window: Disruption | None = None,
) -> None:
    """Decide what a newly failed pod means: disruption, retryable failure, or the job's end.

    A retryable failure inside a disruption ``window`` is that disruption's consequence: the
    pod is recreated like a disrupted one, without counting. A fatal one stays fatal.
    """
    key = backoff_key(pod.role, pod.index)
    whole_job = pod.role == c.ROLE_PS
    what = (
        "restarting the whole job (parameter-server state is lost)"
        if whole_job
        else (f"recreating {pod.name}")
    )
    fatal = _fatal(job, pod, policy)
    attributed = window is not None and not pod.disruption and fatal is None
    if pod.disruption or attributed:
        rec.outcome = DISRUPTED
        if key not in scheduled:
            previous = tracking.backoff.get(key)
            tracking.backoff[key] = Backoff(
                attempts=previous.attempts if previous else 0,
                last_failure=previous.last_failure if previous else None,
                not_before=timefmt.fmt(now),
                failed_at=timefmt.fmt(now),
            )
            scheduled.add(key)
        result.job_restart = result.job_restart or whole_job
        if attributed and window is not None:
            note = f"after the disruption of {window.cause}: not counted against backoffLimit"
        else:
            note = "disruptions do not count against backoffLimit"
        result.events.append(
            Event("Warning", "PodDisrupted", f"{pod.failure_text()}; {what} ({note})")
        )
        return
    if fatal is not None:
        result.fatal = result.fatal or fatal
        return
    rec.outcome = COUNTED
    _add(result, pod.role, 1)
    result.job_restart = result.job_restart or whole_job
    if key not in scheduled:
        tracking.backoff[key] = _next_backoff(job, tracking.backoff.get(key), now)
        scheduled.add(key)
    wait = timefmt.seconds_until(timefmt.parse(tracking.backoff[key].not_before) or now, now)
    result.events.append(
        Event("Warning", "PodFailed", f"{pod.failure_text()}; {what} in {max(wait, 0):.0f}s")
    )


def _fatal(job: TrainingJob, pod: PodView, policy: RestartPolicy) -> Fatal | None:
    """How a (non-disrupted) failure of ``pod`` ends the job, or None if it is retried."""
    if policy is RestartPolicy.NEVER:
        return Fatal(
            "PodFailed", f"{pod.failure_text()} and role {pod.role} has restartPolicy Never"
        )
    if policy is RestartPolicy.EXIT_CODE:
        permanent = [e for e in pod.exits if not job.spec.run_policy.is_retryable(e[1])]
        if permanent:
            return Fatal(
                "ExitCodeNotRetryable",
                f"{pod.failure_text(permanent[0])}, which is not a retryable exit code",
            )
    return None


def _next_backoff(job: TrainingJob, previous: Backoff | None, now: datetime) -> Backoff:
    """Exponential back-off: ``initial * 2**(attempts-1)`` capped at ``max``.

    The count starts over when the previous counted failure is older than twice the cap: a
    replica that ran fine for a while deserves a fast retry, a crash loop does not.
    """
    policy = job.spec.run_policy.restart_backoff
    attempts = 1
    if previous is not None and previous.last_failure is not None:
        last = timefmt.parse(previous.last_failure)
        if last is not None and timefmt.seconds_until(now, last) <= 2 * policy.max_seconds:
            attempts = previous.attempts + 1
    delay = min(policy.initial_seconds * 2 ** min(attempts - 1, 32), policy.max_seconds)
    # A delay is rounded up to whole seconds (the status holds no fractions) so that it is
    # never shortened; no delay is truncated instead, or the replacement would wait up to a
    # second that nobody asked for.
    not_before = timefmt.fmt(now) if delay <= 0 else timefmt.fmt_after(now, delay)
    return Backoff(
        attempts=attempts,
        last_failure=timefmt.fmt(now),
        not_before=not_before,
        failed_at=timefmt.fmt(now),
    )
