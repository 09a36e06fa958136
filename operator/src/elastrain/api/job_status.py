"""The shape of a TrainingJob's ``status`` as the operator writes it (see ``status_schema``).

Typed dicts rather than dataclasses: the status travels as JSON everywhere (the stored object,
merge patches, the planner's copy of the previous status, the tests' fake cluster), and a typed
view over the same dict needs no conversion in either direction. ``status_schema`` is what the
API server enforces; these types are what the code is checked against, and
``tests/api/test_api_job_status.py`` holds the two to the same fields.
"""

# No ``from __future__ import annotations``: TypedDict tells Required keys apart only from
# evaluated annotations, and the test against the schema reads them at runtime.
from typing import Any, Required, TypedDict


class JobCondition(TypedDict, total=False):
    """One entry of ``status.conditions`` (one per type; see ``planner.status``)."""

    type: Required[str]
    status: Required[str]  # "True", "False" or "Unknown"
    reason: str
    message: str
    lastTransitionTime: str  # moves only when status flips
    lastUpdateTime: str  # moves when reason or message change


class RoleCounts(TypedDict):
    """``status.replicaStatuses.<role>``: the observed pods of one role, plus its restarts."""

    active: int
    ready: int
    pending: int
    succeeded: int
    failed: int
    restarts: int


class TrainingProgress(TypedDict, total=False):
    """``status.progress``: what the trainer's rank-0 metrics said, as of ``lastUpdateTime``.

    Filled by the operator from worker 0's metrics endpoint (``elastrain_trainer_*`` gauges),
    at most once per ``--progress-interval``; absent for a trainer that serves no metrics.
    """

    step: Required[int]
    totalSteps: int
    percent: int  # 0..100, from step / totalSteps
    loss: float
    samplesPerSecond: float
    worldSize: int
    estimatedRemainingSeconds: int  # from the step rate between two updates
    eta: str  # the same, for people: "1h2m", "4m10s"
    lastStepTime: str  # when ``step`` last advanced (the stall detector's clock)
    lastUpdateTime: Required[str]  # when the values were read


class JobStatus(TypedDict, total=False):
    """``status`` of a TrainingJob; every field is optional, as in the schema.

    A field is absent until the planner first has something to say: ``startTime`` until pods
    are created (and again while suspended), ``completionTime`` until the job finishes.
    """

    phase: str  # the type of the one True phase condition
    conditions: list[JobCondition]
    replicaStatuses: dict[str, RoleCounts]
    restartCount: int
    startTime: str
    completionTime: str
    observedGeneration: int
    selector: str
    progress: TrainingProgress
    # The planner's private bookkeeping (``planner.restarts.Tracking``), free-form JSON.
    tracking: dict[str, Any]
