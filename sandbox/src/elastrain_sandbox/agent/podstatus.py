"""Container records and the pod status the kubelet would report for them.

The phase rules are the kubelet's (``getPhase``): a container that has never run keeps the pod
Pending; once all have started, any running container makes it Running; when all have stopped,
``restartPolicy`` decides between Running (about to restart), Succeeded and Failed. Condition
transition times only move when a condition's status changes, as on a real node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]


def rfc3339(ts: float) -> str:
    """Kubernetes' timestamp form (second precision, UTC, ``Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Terminated:
    """A finished run of a container."""

    exit_code: int
    started_at: float
    finished_at: float
    container_id: str
    reason: str = ""
    message: str = ""
    signal: int | None = None

    def to_json(self) -> Json:
        """``state.terminated`` as the API spells it."""
        out: Json = {
            "exitCode": self.exit_code,
            "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
            "containerID": self.container_id,
        }
        if self.message:
            out["message"] = self.message
        if self.signal is not None:
            out["signal"] = self.signal
        return out


@dataclass
class ContainerRecord:
    """What the runtime knows about one container; rendered by :meth:`to_json`."""

    name: str
    image: str
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    running_since: float | None = None
    container_id: str = ""
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False

    def set_waiting(self, reason: str, message: str = "") -> None:
        """Waiting (creating, backing off, misconfigured); the last run moves to lastState."""
        if self.terminated is not None:
            self.last_terminated = self.terminated
            self.terminated = None
        self.running_since = None
        self.ready = False
        self.waiting_reason, self.waiting_message = reason, message

    def set_running(self, container_id: str, since: float, started: bool = True) -> None:
        """Running: a fresh container ID; a previous termination becomes lastState.
        ``started`` stays False while a startup probe has not passed yet."""
        if self.terminated is not None:
            self.last_terminated = self.terminated
            self.terminated = None
        self.container_id, self.running_since = container_id, since
        self.started = started
        self.waiting_reason = self.waiting_message = ""

    def set_terminated(self, done: Terminated) -> None:
        """Terminated with ``done`` (whether it restarts is the pod runtime's call)."""
        self.terminated, self.running_since, self.ready = done, None, False

    @property
    def has_run(self) -> bool:
        """Whether any run of this container ever started (kubelet: has a last state)."""
        return self.terminated is not None or self.last_terminated is not None

    def to_json(self) -> Json:
        """``containerStatuses[]`` entry."""
        if self.running_since is not None:
            state: Json = {"running": {"startedAt": rfc3339(self.running_since)}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated.to_json()}
        else:
            waiting: Json = {"reason": self.waiting_reason}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            state = {"waiting": waiting}
        out: Json = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.running_since is not None and self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": (
                {"terminated": self.last_terminated.to_json()} if self.last_terminated else {}
            ),
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def pod_phase(containers: list[ContainerRecord], restart_policy: str) -> str:
    """The kubelet's phase rule over the main containers (init containers are done)."""
    waiting = running = stopped = succeeded = 0
    for c in containers:
        if c.running_since is not None:
            running += 1
        elif c.terminated is not None:
            stopped += 1
            succeeded += c.terminated.exit_code == 0
        elif c.has_run:
            stopped += 1  # backing off between runs
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded and all(c.terminated is not None for c in containers):
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"


@dataclass
class Conditions:
    """Pod conditions owned by the kubelet, with stable transition times."""

    _status: dict[str, tuple[bool, str, float]] = field(default_factory=dict)

    def set(self, kind: str, value: bool, reason: str = "") -> None:
        """Record ``kind``; its transition time changes only when ``value`` does."""
        previous = self._status.get(kind)
        since = previous[2] if previous and previous[0] == value else time.time()
        self._status[kind] = (value, reason, since)

    def to_json(self) -> list[Json]:
        """``status.conditions`` entries for the recorded kinds, in the kubelet's order."""
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"]
        out = []
        for kind in order:
            if kind not in self._status:
                continue
            value, reason, since = self._status[kind]
            item: Json = {
                "type": kind,
                "status": "True" if value else "False",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(since),
            }
            if reason:
                item["reason"] = reason
            out.append(item)
        return out
