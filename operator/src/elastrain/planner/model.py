"""The planner's inputs and outputs: what the handlers observe and what they must do.

The planner is a pure function ``plan(job, observed) -> Plan`` (see ``elastrain.planner.plan``).
Everything it needs arrives in ``Observed``; everything the world must do leaves in ``Plan``.
The handlers apply a Plan in a fixed order (status first, then deletes, then creates, then
events) so that a crash between any two steps is repaired by the next reconcile: every
decision is re-derived from the observed state plus the status already written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ChildKind = Literal["Pod", "Service", "PodGroup"]
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Observed:
    """The world as the handlers saw it for one reconcile of one job."""

    now: datetime
    pods: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    pod_groups: list[dict[str, Any]] = field(default_factory=list)
    # Whether the scheduler-plugins PodGroup CRD (scheduling.x-k8s.io) is served.
    pod_group_crd_available: bool = False


@dataclass(frozen=True)
class Delete:
    """Delete one child, guarded by its uid so a recreated namesake is never hit."""

    kind: ChildKind
    name: str
    uid: str | None
    reason: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post; ``object_name`` None means the TrainingJob itself."""

    type: EventType
    reason: str
    message: str
    object_kind: str = "TrainingJob"
    object_name: str | None = None


@dataclass(frozen=True)
class Plan:
    """What one reconcile must do.

    ``creates`` are complete objects (metadata, ownerReferences and labels included); a 409 on
    create means an earlier run already made it and counts as success. ``status`` is the whole
    next ``status`` for the status subresource, or None when unchanged. ``requeue_after`` is the
    number of seconds after which time alone changes the decision (backoff, deadline, TTL).
    """

    status: dict[str, Any] | None = None
    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    delete_job: bool = False
