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

from elastrain.api.job_status import JobStatus

ChildKind = Literal["Pod", "Service", "PodGroup"]
EventType = Literal["Normal", "Warning"]
# The phase conditions (``ConditionType``); ``Started``: ``status.startTime`` was set;
# ``Replaced``: a failed or disrupted pod's replacement was created; ``Scaled``: the spec's
# replica counts changed (reason ``Up`` or ``Down``); ``ScaleCompleted``: the job runs at the
# counts it was scaled to; ``Stalled``: the Stalled condition turned True.
TransitionKind = Literal[
    "Created",
    "Running",
    "Restarting",
    "Scaling",
    "Suspended",
    "Succeeded",
    "Failed",
    "Started",
    "Replaced",
    "Scaled",
    "ScaleCompleted",
    "Stalled",
]


@dataclass(frozen=True)
class TrainerSample:
    """One reading of a job's rank-0 trainer metrics (``elastrain_trainer_*``), taken at ``at``.

    The controller reads worker 0's metrics endpoint; the planner turns readings into
    ``status.progress``. Values the trainer does not export are None.
    """

    at: datetime
    step: int
    total_steps: int | None = None
    loss: float | None = None
    samples_per_second: float | None = None
    world_size: int | None = None


@dataclass(frozen=True)
class Observed:
    """The world as the handlers saw it for one reconcile of one job."""

    now: datetime
    pods: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    pod_groups: list[dict[str, Any]] = field(default_factory=list)
    # Whether the scheduler-plugins PodGroup CRD (scheduling.x-k8s.io) is served.
    pod_group_crd_available: bool = False
    # The newest reading of the trainer's metrics, if the job exports any.
    sample: TrainerSample | None = None
    # A Running job with no new training step for this long is Stalled; None: never.
    stall_after_seconds: float | None = None
    # The API server refused to create one of the job's children as invalid (422) since the
    # last reconcile: the same template would be refused again, so it counts toward failing.
    rejected: Rejection | None = None


@dataclass(frozen=True)
class Rejection:
    """A child create the API server refused as invalid: which child, and the server's words."""

    kind: str
    name: str
    message: str


@dataclass(frozen=True)
class Delete:
    """Delete one child, guarded by its uid so a recreated namesake is never hit."""

    kind: ChildKind
    name: str
    uid: str | None
    reason: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post; ``object_name`` None means the TrainingJob itself.

    For any other object the planner fills in ``object_uid`` from its observation, so the
    Event names exactly the object it is about and not a namesake created since.
    """

    type: EventType
    reason: str
    message: str
    object_kind: str = "TrainingJob"
    object_name: str | None = None
    object_uid: str | None = None


@dataclass(frozen=True)
class Transition:
    """A change of the job's state that this plan writes into its status.

    A phase transition means that phase's condition turns True in this plan (it was absent or
    False); a change of reason within the same phase is not one. ``Started`` means the plan set
    ``startTime``: it created the job's first pods, or the first ones after a resume. Those
    who count transitions (the metrics) do so only once the status write carrying them
    succeeded, so each is counted exactly once however often reconciles repeat.
    """

    kind: TransitionKind
    # The phase condition's reason (empty for ``Started``).
    reason: str
    # The instant as written into the status: whole seconds, UTC.
    at: datetime
    # For a phase: the status had no condition of that type before, so the job enters it for
    # the first time ever. For ``Started``: the job was never suspended (suspension removes
    # ``startTime``; its Suspended condition is what remains of it), so these are the first
    # pods the job ever got.
    first_time: bool = False
    # Where the transition's duration starts: the failure (``Replaced``) or the scale command
    # (``ScaleCompleted``); None for the others.
    since: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """What one reconcile must do.

    ``creates`` are complete objects (metadata, ownerReferences and labels included); a 409 on
    create means an earlier run already made it and counts as success. ``status`` is the whole
    next ``status`` for the status subresource, or None when unchanged; ``transitions`` are the
    state changes that status carries (empty when it is None). ``requeue_after`` is the number
    of seconds after which time alone changes the decision (backoff, deadline, TTL).
    """

    status: JobStatus | None = None
    transitions: list[Transition] = field(default_factory=list)
    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    delete_job: bool = False
