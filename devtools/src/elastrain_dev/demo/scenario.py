"""The demo's story: submit the jobs, watch them live, kill a worker mid-run, wait for success.

Every tick reads the TrainingJobs, their pods and the namespace's events from the API server,
and each worker's training gauges from its metrics endpoint; the view and the narration are
built only from that. The fault is injected once the DDP job has a checkpoint to resume from,
so that what the user sees next (restart, resume, loss carrying on) is the recovery path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import yaml
from elastrain.api import constants as c

from elastrain_dev.demo import fault, progress, report
from elastrain_dev.demo.cluster import API_ERRORS, Cluster
from elastrain_dev.demo.jobs import DemoJob
from elastrain_dev.demo.kubectl import Kubectl
from elastrain_dev.demo.progress import Progress
from elastrain_dev.demo.target import Target
from elastrain_dev.demo.view import JobRow, View
from elastrain_dev.demo.workspace import Workspace

Obj = dict[str, Any]
# The fault hits once the DDP job is this far through its steps and has a checkpoint.
FAULT_AT_FRACTION = 0.4
FAULT_ROLE = c.ROLE_WORKER
FAULT_INDEX = 1
# How long the API server may be unreachable before the demo gives up on it.
API_OUTAGE_LIMIT = 20.0


def fault_target(jobs: list[DemoJob]) -> tuple[DemoJob, str]:
    """The DDP (allreduce) job and the pod whose trainer the demo kills.

    A DDP job, because killing one rank stalls every other rank in the next allreduce: the
    whole group must recover, which is what the demo is there to show.
    """
    job = next(job for job in jobs if not job.is_ps)
    return job, job.pod_name(FAULT_ROLE, FAULT_INDEX)


class DemoFailed(RuntimeError):
    """The demo could not show what it promised; the message says what went wrong."""


@dataclass
class FaultRecord:
    """What the demo did to which pod, for the narration and ``--result-json``."""

    job: str
    pod: str
    pids: list[int]
    at_step: int
    last_checkpoint_step: int


@dataclass
class JobState:
    """What the demo remembers of a job between ticks.

    ``losses`` is the loss curve by step (a replayed step after a resume overwrites its first
    value); ``trainer_restarts`` only grows, so a restarting worker that cannot be scraped for
    a moment does not make the count flicker; ``result`` is read once, when the job succeeds.
    """

    job: DemoJob
    losses: dict[int, float] = field(default_factory=dict)
    progress: Progress | None = None
    # Whether ``progress`` was read on this tick (the fault is timed only by fresh readings).
    fresh: bool = False
    trainer_restarts: int = 0
    result: report.JobResult | None = None


@dataclass
class Scenario:
    """Drives one run of the demo's jobs on ``target``."""

    workspace: Workspace
    target: Target
    kubectl: Kubectl
    cluster: Cluster
    view: View
    jobs: list[DemoJob]
    deadline: float
    interval: float
    fault_record: FaultRecord | None = None
    _states: dict[str, JobState] = field(default_factory=dict)
    _seen_events: set[tuple[str, int]] = field(default_factory=set)
    # Every container the jobs ran, for the check that none outlives the demo.
    container_ids: set[str] = field(default_factory=set)
    _fault_miss: str | None = None

    def __post_init__(self) -> None:
        self._states = {job.name: JobState(job) for job in self.jobs}
        self._scrape: Callable[[Obj], str | None] = (
            progress.scrape_direct if self.target.sandbox else self.cluster.scrape_via_proxy
        )
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="scrape")

    def close(self) -> None:
        """Stop the scrape threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def submit(self) -> None:
        """Apply every job's manifest (on a real cluster, with ``IMAGE`` substituted)."""
        for job in self.jobs:
            shown = self.workspace.relative(job.manifest)
            if self.target.image is None:
                self.kubectl.run("apply", "-f", str(job.manifest))
                how = self.kubectl.shown("apply", "-f", shown)
            else:
                self.kubectl.run(
                    "delete", c.SINGULAR, job.name, "--ignore-not-found", "--wait=true", timeout=120
                )
                self.kubectl.run(
                    "apply", "-f", "-", stdin=yaml.safe_dump(job.with_image(self.target.image))
                )
                how = f"{shown} with image {self.target.image}"
            self.view.say(f"submitted {job.name} ({job.description}): {how}")

    def watch(self) -> None:
        """Poll until every job succeeded, injecting the fault on the way; raise if one fails."""
        outage_since: float | None = None
        names = [job.name for job in self.jobs]
        while True:
            now = time.monotonic()
            try:
                objs = self.cluster.jobs(names)
                pods = self.cluster.pods(names)
                events = self.cluster.events()
            except API_ERRORS as exc:
                outage_since = outage_since or now
                if now - outage_since > API_OUTAGE_LIMIT:
                    raise DemoFailed(f"the API server stopped answering: {exc}") from exc
                time.sleep(self.interval)
                continue
            outage_since = None
            self.container_ids.update(_container_ids(pods))
            self._narrate(events, pods)
            self.view.show([self._row(job, objs.get(job.name), pods) for job in self.jobs])
            if self.fault_record is None:
                self._maybe_inject(objs, pods)
            phases = {name: (obj.get("status") or {}).get("phase") for name, obj in objs.items()}
            failed = [name for name, phase in phases.items() if phase == "Failed"]
            if failed:
                raise DemoFailed(f"job {failed[0]} failed: {_condition_message(objs[failed[0]])}")
            if len(phases) == len(names) and all(p == "Succeeded" for p in phases.values()):
                if self.fault_record is None:
                    raise DemoFailed(self._no_fault_reason())
                return
            if now > self.deadline:
                waiting = ", ".join(f"{n}: {_phase_text(objs.get(n))}" for n in names)
                raise DemoFailed(f"timed out waiting for the jobs to succeed ({waiting})")
            time.sleep(self.interval)

    def results(self) -> list[report.JobResult]:
        """Each job's outcome, as read when it succeeded (``watch`` returned: all did)."""
        return [state.result for state in self._states.values() if state.result is not None]

    def _collect(self, job: DemoJob, obj: Obj) -> report.JobResult:
        """The finished job's status plus its workers' summary lines (``kubectl logs``)."""
        workers = [job.pod_name(c.ROLE_WORKER, i) for i in range(job.replicas[c.ROLE_WORKER])]
        restarts = self._states[job.name].trainer_restarts
        return report.collect(self.kubectl, job.name, job.description, obj, workers, restarts)

    def _job_pods(self, job: DemoJob, pods: list[Obj]) -> list[Obj]:
        return [
            p for p in pods if p["metadata"].get("labels", {}).get(c.LABEL_JOB_NAME) == job.name
        ]

    def _worker_progress(self, job: DemoJob, pods: list[Obj]) -> list[Progress]:
        workers = [
            p
            for p in self._job_pods(job, pods)
            if p["metadata"].get("labels", {}).get(c.LABEL_REPLICA_TYPE) == c.ROLE_WORKER
            and p.get("status", {}).get("phase") == "Running"
        ]
        scraped = self._pool.map(lambda pod: progress.read(pod, self._scrape), workers)
        return [p for p in scraped if p is not None]

    def _row(self, job: DemoJob, obj: Obj | None, pods: list[Obj]) -> JobRow:
        state = self._states[job.name]
        status = (obj or {}).get("status") or {}
        phase = str(status.get("phase") or ("Submitted" if obj else "-"))
        self._observe_progress(state, self._worker_progress(job, pods))
        if phase == "Succeeded" and obj is not None and state.result is None:
            state.result = self._collect(job, obj)
        lead = state.progress
        step, loss = (lead.step, lead.loss) if lead else (None, None)
        if state.result is not None and state.result.summary is not None:
            # The workers have exited: their final summary is newer than the last scrape.
            step, loss = state.result.summary.get("steps"), state.result.summary.get("final_loss")
        counts = (status.get("replicaStatuses") or {}).values()
        return JobRow(
            name=job.name,
            phase=phase,
            ready=sum(int(r.get("ready") or 0) for r in counts),
            desired=sum(job.replicas.values()),
            restarts=int(status.get("restartCount") or 0),
            trainer_restarts=state.trainer_restarts,
            step=step,
            total_steps=job.total_steps,
            loss=loss,
            losses=tuple(state.losses[s] for s in sorted(state.losses)),
        )

    def _observe_progress(self, state: JobState, found: list[Progress]) -> None:
        """Record the lowest rank's progress; narrate a restart of the trainer processes."""
        state.fresh = bool(found)
        if not found:
            return
        lead = min(found, key=lambda p: p.rank)
        state.progress = lead
        state.losses[lead.step] = lead.loss
        restarts = max(p.restarts for p in found)
        if restarts > state.trainer_restarts:
            state.trainer_restarts = restarts
            self.view.say(
                f"{state.job.name}: the training processes restarted (restart {restarts}, "
                f"world size {lead.world_size}) and train again at step {lead.step}; "
                f"newest checkpoint: step {lead.last_checkpoint_step}"
            )

    def _maybe_inject(self, objs: dict[str, Obj], pods: list[Obj]) -> None:
        job, victim_name = fault_target(self.jobs)
        obj = objs.get(job.name)
        state = self._states[job.name]
        lead = state.progress
        if obj is None or lead is None or not state.fresh:
            return
        if (obj.get("status") or {}).get("phase") != "Running":
            return
        at = FAULT_AT_FRACTION * (job.total_steps or 0)
        if lead.step < at or lead.last_checkpoint_step <= 0:
            return
        victim = next((p for p in pods if p["metadata"]["name"] == victim_name), None)
        if victim is None:
            return
        try:
            if self.target.sandbox:
                pids = fault.kill_on_sandbox(victim)
            else:
                pids = fault.kill_in_cluster(self.kubectl, victim_name)
        except fault.FaultError as exc:
            # The trainer may be between processes (starting, or restarted by torchrun for a
            # reason of its own): try again on the next tick.
            self._fault_miss = str(exc)
            return
        self.fault_record = FaultRecord(
            job=job.name,
            pod=victim_name,
            pids=pids,
            at_step=lead.step,
            last_checkpoint_step=lead.last_checkpoint_step,
        )
        where = "on the node" if self.target.sandbox else "via kubectl exec"
        self.view.say(
            f"FAULT: SIGKILL the training process of {victim_name} (pid "
            f"{', '.join(map(str, pids))}, {where}) at step {lead.step}; "
            f"last checkpoint: step {lead.last_checkpoint_step}"
        )

    def _no_fault_reason(self) -> str:
        job, _ = fault_target(self.jobs)
        if self._states[job.name].progress is None:
            where = (
                "the pod IPs"
                if self.target.sandbox
                else "the API server's pod proxy (it needs the pods/proxy permission)"
            )
            return (
                f"{job.name} finished, but its training progress could never be read from its "
                f"metrics endpoints through {where}, so the fault was not injected"
            )
        missed = f" (last attempt: {self._fault_miss})" if self._fault_miss else ""
        return f"{job.name} finished before the fault could be injected{missed}"

    def _narrate(self, events: list[Obj], pods: list[Obj]) -> None:
        """Say each new event about the jobs, and warnings about their pods, once."""
        jobs = {job.name for job in self.jobs}
        pod_names = {p["metadata"]["name"] for p in pods}
        fresh = []
        for event in events:
            involved = event.get("involvedObject") or {}
            ours = (involved.get("kind") == c.KIND and involved.get("name") in jobs) or (
                involved.get("kind") == "Pod"
                and involved.get("name") in pod_names
                and event.get("type") == "Warning"
            )
            key = (
                str(event["metadata"].get("uid") or event["metadata"]["name"]),
                int(event.get("count") or 1),
            )
            if ours and key not in self._seen_events:
                self._seen_events.add(key)
                fresh.append(event)
        fresh.sort(key=_event_order)
        for event in fresh:
            involved = event["involvedObject"]
            self.view.say(
                f"event {involved['kind'].lower()}/{involved['name']}: {event.get('type')} "
                f"{event.get('reason')}: {event.get('message', '').strip()}"
            )


def _event_order(event: Obj) -> tuple[str, int]:
    """Event timestamps have second resolution; the resourceVersion orders same-second events
    where the server's versions are numbers (they are, in practice, etcd revisions)."""
    version = str(event["metadata"].get("resourceVersion") or "")
    return (
        str(event.get("lastTimestamp") or event.get("eventTime") or ""),
        int(version) if version.isdigit() else 0,
    )


def _phase_text(obj: Obj | None) -> str:
    if obj is None:
        return "not found"
    return str((obj.get("status") or {}).get("phase") or "no status from the operator yet")


def _container_ids(pods: list[Obj]) -> set[str]:
    ids: set[str] = set()
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            last = ((status.get("lastState") or {}).get("terminated") or {}).get("containerID")
            ids.update(i for i in (status.get("containerID"), last) if i)
    return ids


def _condition_message(obj: Obj) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    failed = [cond for cond in conditions if cond.get("type") == "Failed"]
    if failed:
        return f"{failed[-1].get('reason')}: {failed[-1].get('message')}"
    return "no Failed condition recorded"
