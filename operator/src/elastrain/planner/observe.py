"""Observed pods, classified once into the few facts the planner decides on.

Raw pod dicts come from the API (or the sandbox) and may lack any field; every accessor here is
defensive so that a half-written pod never crashes a reconcile. A pod is *ours* only if it
carries our labels and its controller owner reference is this job's uid: a namesake left by an
earlier job of the same name (being garbage-collected) still blocks its name but is never
counted, deleted or adopted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from elastrain.api import constants as c
from elastrain.api import timefmt
from elastrain.api.ownership import owning_job

# Pod phases (core/v1).
PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
UNKNOWN = "Unknown"

# status.reason values of pods that failed because of the infrastructure, not the program:
# eviction (node pressure), node controller giving up on an unreachable node, scheduler
# preemption and graceful node shutdown. Kubernetes also sets the DisruptionTarget condition
# for most of these since 1.26; the reasons cover older clusters and the sandbox.
DISRUPTION_REASONS = frozenset(
    {"Evicted", "NodeLost", "Preempting", "Preempted", "Shutdown", "NodeShutdown", "Terminated"}
)
# Kubelet admission rejections: the pod never ran (a device plugin lost its GPUs, the node
# was oversubscribed, its labels changed). "OutOf<resource>" covers OutOfcpu, OutOfmemory,
# OutOfnvidia.com/gpu and every other extended resource.
ADMISSION_REASONS = frozenset({"UnexpectedAdmissionError", "NodeAffinity", "NodeAffinityRejected"})
ADMISSION_PREFIX = "OutOf"

# Annotation on each pod with the hash of the job-wide wiring its environment was built from
# (see ``env.topology``); a pod whose hash differs from the job's has a stale environment.
ANNOTATION_TOPOLOGY = "elastrain.dev/topology"


@dataclass(frozen=True)
class PodView:
    """What the planner needs to know about one of the job's pods."""

    name: str
    uid: str
    role: str
    index: int
    phase: str
    terminating: bool
    ready: bool
    # Sum of restartCount over init and app containers: the kubelet's in-place restarts.
    restarts: int
    topology: str | None
    # Why the pod was disrupted (DisruptionTarget reason or status.reason), else None.
    disruption: str | None
    # (container, exit code) of every container that terminated with a non-zero code.
    exits: tuple[tuple[str, int], ...]
    # status.reason of the pod, for messages.
    reason: str | None
    # Why a pod that should be starting is not (unschedulable, image pull, crash loop...).
    waiting: str | None = None
    # metadata.creationTimestamp: how long a Pending pod has waited.
    created: datetime | None = None
    # spec.nodeName is set: the scheduler has placed the pod.
    scheduled: bool = True

    @property
    def live(self) -> bool:
        """Not terminating and not finished: the pod holds (or waits for) resources."""
        return not self.terminating and self.phase in (PENDING, RUNNING, UNKNOWN)

    @property
    def running(self) -> bool:
        """Running and not being deleted."""
        return not self.terminating and self.phase == RUNNING

    def wired_for(self, topology: str) -> bool:
        """Whether the pod's environment matches the job-wide wiring hash ``topology``.

        A pod without the annotation (made by an operator release that did not write it) is
        taken as current: restarting every running job on an operator upgrade would be far
        worse than a pod keeping its environment until it is next recreated.
        """
        return self.topology is None or self.topology == topology

    def failure_text(self, exit_code: tuple[str, int] | None = None) -> str:
        """A short description of why this pod failed (naming ``exit_code`` if given)."""
        shown = exit_code or (self.exits[0] if self.exits else None)
        if shown is not None:
            return f"container {shown[0]!r} of pod {self.name} exited with code {shown[1]}"
        if self.disruption:
            return f"pod {self.name} was disrupted ({self.disruption})"
        return f"pod {self.name} failed ({self.reason or 'no reason given'})"


@dataclass(frozen=True)
class PodObservation:
    """The job's own pods, plus every observed pod name (ours or not), which blocks creation."""

    pods: tuple[PodView, ...]
    names_in_use: frozenset[str]
    _by_name: dict[str, PodView] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Indexed once: success and recovery checks look up every replica by name.
        object.__setattr__(self, "_by_name", {pod.name: pod for pod in self.pods})

    def by_name(self, name: str) -> PodView | None:
        """Our pod called ``name``, if any."""
        return self._by_name.get(name)


def observe_pods(raw_pods: list[dict[str, Any]], job_name: str, job_uid: str) -> PodObservation:
    """Classify the observed pods of job ``job_name`` (uid ``job_uid``)."""
    ours: list[PodView] = []
    names: set[str] = set()
    for raw in raw_pods:
        if not isinstance(raw, dict):
            continue
        meta = _dict(raw.get("metadata"))
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            continue
        names.add(name)
        view = _view(raw, meta, name, job_name, job_uid)
        if view is not None:
            ours.append(view)
    ours.sort(key=lambda p: (c.ROLES.index(p.role), p.index, p.name))
    return PodObservation(tuple(ours), frozenset(names))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def controller_uid(obj: object) -> str | None:
    """The uid of the TrainingJob that controls ``obj`` (``api.ownership``), if any."""
    owner = owning_job(obj)
    return owner.uid if owner is not None else None


def _program_statuses(raw: dict[str, Any], status: dict[str, Any]) -> list[dict[str, Any]]:
    """Statuses of the containers that run the user's program: app containers first, then
    init containers, leaving out native sidecars (init containers with ``restartPolicy:
    Always``). A crash-looping log shipper is not the training failing, and the kubelet
    SIGTERMs sidecars when the pod ends, which says nothing about the program.
    """
    sidecars = {
        ctr.get("name")
        for ctr in _list(_dict(raw.get("spec")).get("initContainers"))
        if isinstance(ctr, dict) and ctr.get("restartPolicy") == "Always"
    }
    found = _list(status.get("containerStatuses")) + _list(status.get("initContainerStatuses"))
    return [s for s in found if isinstance(s, dict) and s.get("name") not in sidecars]


def _view(
    raw: dict[str, Any], meta: dict[str, Any], name: str, job_name: str, job_uid: str
) -> PodView | None:
    labels = _dict(meta.get("labels"))
    if labels.get(c.LABEL_JOB_NAME) != job_name or controller_uid(raw) != job_uid:
        return None
    role = labels.get(c.LABEL_REPLICA_TYPE)
    index_text = labels.get(c.LABEL_REPLICA_INDEX)
    if role not in c.ROLES or not isinstance(index_text, str) or not index_text.isdigit():
        return None
    status = _dict(raw.get("status"))
    phase = status.get("phase")
    conditions = [cond for cond in _list(status.get("conditions")) if isinstance(cond, dict)]
    statuses = _program_statuses(raw, status)
    reason = status.get("reason")
    annotations = _dict(meta.get("annotations"))
    topology = annotations.get(ANNOTATION_TOPOLOGY)
    return PodView(
        name=name,
        uid=str(meta.get("uid") or ""),
        role=str(role),
        index=int(index_text),
        phase=phase if isinstance(phase, str) and phase else PENDING,
        terminating=bool(meta.get("deletionTimestamp")),
        ready=any(
            cond.get("type") == "Ready" and cond.get("status") == "True" for cond in conditions
        ),
        restarts=sum(_count(s.get("restartCount")) for s in statuses),
        topology=topology if isinstance(topology, str) else None,
        disruption=_disruption(conditions, reason),
        exits=_exits(statuses),
        reason=reason if isinstance(reason, str) else None,
        waiting=_waiting(meta, phase, conditions, statuses),
        created=timefmt.parse(meta.get("creationTimestamp")),
        scheduled=bool(_dict(raw.get("spec")).get("nodeName")),
    )


# Container waiting reasons worth surfacing: each means "this will not fix itself soon".
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def _waiting(
    meta: dict[str, Any],
    phase: Any,
    conditions: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
) -> str | None:
    """Why the pod is not making progress, in one line, if Kubernetes says why.

    Pods stuck Pending are the most reported training-operator problem (Kubeflow #1825,
    #1630); putting the scheduler's or kubelet's reason into the job's condition saves users
    from describing every pod. A pod stuck terminating (its node is gone) blocks its name, and
    so its replacement, until Kubernetes removes it; that is worth saying too.
    """
    if meta.get("deletionTimestamp"):
        return f"terminating (deletion requested, grace until {meta['deletionTimestamp']})"
    if phase == UNKNOWN:
        return "phase Unknown (its node stopped reporting)"
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            text = str(cond.get("reason") or "Unschedulable")
            message = cond.get("message")
            return f"{text}: {message}" if message else text
    for s in statuses:
        waiting = _dict(_dict(s.get("state")).get("waiting"))
        reason = waiting.get("reason")
        if reason in STUCK_REASONS:
            return f"container {s.get('name')!r} {reason}"
    return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _disruption(conditions: list[dict[str, Any]], reason: Any) -> str | None:
    for cond in conditions:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            return str(cond.get("reason") or "DisruptionTarget")
    if isinstance(reason, str) and (
        reason in DISRUPTION_REASONS
        or reason in ADMISSION_REASONS
        or reason.startswith(ADMISSION_PREFIX)
    ):
        return reason
    return None


def _exits(statuses: list[dict[str, Any]]) -> tuple[tuple[str, int], ...]:
    """Containers that terminated with a non-zero exit code, in status order.

    The current state is used when any container has one; ``lastState`` (an earlier run of a
    container the kubelet restarted in place) only when none has.
    """
    for key in ("state", "lastState"):
        found = []
        for s in statuses:
            terminated = _dict(_dict(s.get(key)).get("terminated"))
            code = terminated.get("exitCode")
            if isinstance(code, int) and not isinstance(code, bool) and code != 0:
                found.append((str(s.get("name") or "?"), code))
        if found:
            return tuple(found)
    return ()
