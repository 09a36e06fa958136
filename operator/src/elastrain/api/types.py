"""Typed model of a TrainingJob (``elastrain.dev/v1alpha1``), with defaults applied.

These frozen dataclasses are the contract between the API layer (which parses and validates a
raw object into them, see ``elastrain.api.parse``), the planner (which reads them and never
touches raw dicts for the spec) and the tests. Pod templates stay raw dicts on purpose: they are
Kubernetes PodTemplateSpecs that the planner copies and extends, and typing them here would
only duplicate the Kubernetes schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from elastrain.api import constants as c


class RestartPolicy(StrEnum):
    """What happens when a replica's pod fails (see the README's restart semantics)."""

    NEVER = "Never"
    ON_FAILURE = "OnFailure"
    EXIT_CODE = "ExitCode"
    ALWAYS = "Always"


# A replica spec's defaults, for the schema and the parser (ReplicaSpec itself has none so that
# the planner never builds a half-specified role). OnFailure, not Kubeflow TFJob's Never: a
# preempted node or a transient NCCL error should not end a multi-day run, and runPolicy's
# backoffLimit plus restartBackoff bound what a crash-looping bug can cost.
DEFAULT_REPLICAS = 1
DEFAULT_RESTART_POLICY = RestartPolicy.ON_FAILURE


class CleanPodPolicy(StrEnum):
    """Which pods are deleted once a job has finished."""

    ALL = "All"
    RUNNING = "Running"
    NONE = "None"


class SuccessPolicy(StrEnum):
    """When a job counts as Succeeded."""

    ALL_WORKERS = "AllWorkers"
    CHIEF = "Chief"


class ConditionType(StrEnum):
    """Job condition types; exactly one of the terminal/progress ones is the phase."""

    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SCALING = "Scaling"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class ReplicaSpec:
    """One role's replicas: how many, how they restart, and their pod template."""

    replicas: int
    restart_policy: RestartPolicy
    template: dict[str, Any]
    gpus: int | None = None


@dataclass(frozen=True)
class ElasticPolicy:
    """Elastic workers: torchrun's c10d rendezvous between ``min_replicas`` and ``max_replicas``."""

    min_replicas: int
    max_replicas: int
    rdzv_backend: str = "c10d"
    rdzv_port: int = 29400
    max_restarts: int = 3
    last_call_timeout_seconds: int = c.DEFAULT_LAST_CALL_TIMEOUT_S
    # Seconds a worker may stay Pending before the job reports it; None: never reported.
    pending_timeout_seconds: int | None = None
    # Past that timeout, give the Pending workers up (``planner.trim``) rather than only report.
    trim_pending_workers: bool = False


@dataclass(frozen=True)
class SchedulingPolicy:
    """Where and how pods are scheduled; ``min_available`` asks for gang scheduling."""

    scheduler_name: str | None = None
    priority_class_name: str | None = None
    queue: str | None = None
    min_available: int | None = None


@dataclass(frozen=True)
class RestartBackoff:
    """Delay before recreating a failed pod: ``initial * 2**n`` capped at ``max``."""

    initial_seconds: int = 10
    max_seconds: int = 300


@dataclass(frozen=True)
class RunPolicy:
    """Job-wide limits and lifecycle knobs (the Kubeflow ``runPolicy`` shape)."""

    backoff_limit: int = 6
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    clean_pod_policy: CleanPodPolicy = CleanPodPolicy.RUNNING
    suspend: bool = False
    scheduling_policy: SchedulingPolicy | None = None
    # None means "every exit code >= 128" (signals: OOM kill 137, SIGTERM 143, ...).
    retryable_exit_codes: tuple[int, ...] | None = None
    restart_backoff: RestartBackoff = field(default_factory=RestartBackoff)

    def is_retryable(self, exit_code: int) -> bool:
        """Whether an ``ExitCode``-policy replica exiting with ``exit_code`` is retried."""
        if self.retryable_exit_codes is None:
            return exit_code >= 128
        return exit_code in self.retryable_exit_codes


@dataclass(frozen=True)
class TrainingJobSpec:
    """The whole ``spec`` with defaults applied."""

    replica_specs: dict[str, ReplicaSpec]
    run_policy: RunPolicy = field(default_factory=RunPolicy)
    elastic_policy: ElasticPolicy | None = None
    # An int, or "auto": the replica's GPU count, else 1.
    nproc_per_node: int | str = "auto"
    success_policy: SuccessPolicy = SuccessPolicy.ALL_WORKERS


@dataclass(frozen=True)
class Condition:
    """A status condition, as in ``status.conditions``."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str


@dataclass(frozen=True)
class ReplicaStatus:
    """Counts of one role's pods, as in ``status.replicaStatuses.<role>``."""

    active: int = 0
    ready: int = 0
    pending: int = 0
    succeeded: int = 0
    failed: int = 0
    restarts: int = 0


@dataclass(frozen=True)
class TrainingJob:
    """A parsed TrainingJob: identity, typed spec, and the raw status the operator last wrote."""

    name: str
    namespace: str
    uid: str
    spec: TrainingJobSpec
    generation: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
