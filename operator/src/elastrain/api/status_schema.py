"""Schema of ``status``, written only by the operator through the status subresource.

Kept typed (not preserve-unknown) so that ``kubectl explain`` documents it and a bug that
writes a wrong type is refused by the API server instead of silently stored; only
``tracking`` is free-form, because it is the planner's private bookkeeping.
"""

from __future__ import annotations

from elastrain.api import constants as c
from elastrain.api.schema_parts import Schema, integer, obj, string


def _counts(role: str) -> Schema:
    def count(desc: str) -> Schema:
        return integer(desc, minimum=0)

    return obj(
        f"Pod counts of the {role} role.",
        {
            "active": count("Pods that exist and have not finished (pending or running)."),
            "ready": count("Pods whose Ready condition is True."),
            "pending": count("Pods not yet running."),
            "succeeded": count("Pods that exited 0."),
            "failed": count("Pods that failed."),
            "restarts": count("Times a pod of this role was recreated or restarted."),
        },
    )


def _condition() -> Schema:
    time = "date-time"
    return obj(
        "A condition of the job: one phase (Created, Running, Restarting, Scaling, Suspended, "
        "Succeeded, Failed) is True; Stalled is True while no training step was seen; "
        "WorkersPending is True while elastic workers wait past pendingTimeoutSeconds.",
        {
            "type": string("Condition type."),
            "status": {
                "type": "string",
                "description": "True, False or Unknown.",
                "enum": ["True", "False", "Unknown"],
            },
            "reason": string("Machine-readable reason, CamelCase."),
            "message": string("Human-readable details."),
            "lastTransitionTime": string("When status last changed.", fmt=time),
            "lastUpdateTime": string("When the condition was last written.", fmt=time),
        },
        required=["type", "status"],
    )


def _progress() -> Schema:
    def number(desc: str) -> Schema:
        return {"type": "number", "description": desc, "minimum": 0}

    return obj(
        "Training progress read from worker 0's metrics endpoint (the container port named "
        "metrics), at most once per the operator's --progress-interval. Absent while the "
        "trainer serves no metrics.",
        {
            "step": integer("Global optimizer step reached.", minimum=0, fmt="int64"),
            "totalSteps": integer("Steps the run trains for, if known.", minimum=0, fmt="int64"),
            "percent": integer("step / totalSteps, in percent.", minimum=0, maximum=100),
            "loss": {"type": "number", "description": "Loss of the latest step."},
            "samplesPerSecond": number("Global training throughput."),
            "worldSize": integer("Ranks (DDP) or workers (ps) training now.", minimum=0),
            "estimatedRemainingSeconds": integer(
                "Seconds to totalSteps at the step rate since the previous update.",
                minimum=0,
                fmt="int64",
            ),
            "eta": string("estimatedRemainingSeconds for people, e.g. 4m10s."),
            "lastStepTime": string("When step last advanced.", fmt="date-time"),
            "lastUpdateTime": string("When these values were read.", fmt="date-time"),
        },
        required=["step", "lastUpdateTime"],
    )


def status_schema() -> Schema:
    """``status`` of a TrainingJob."""
    return obj(
        "Observed state, written by the operator.",
        {
            "phase": string("Summary of the latest condition: Created, Running, ... Failed."),
            "conditions": {
                "type": "array",
                "description": "Conditions, one per type.",
                "items": _condition(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "replicaStatuses": obj(
                "Pod counts per role.", {role: _counts(role) for role in c.ROLES}
            ),
            "restartCount": integer("Pod restarts of all roles so far.", minimum=0),
            "startTime": string("When the job's pods were first created.", fmt="date-time"),
            "completionTime": string("When the job finished.", fmt="date-time"),
            "observedGeneration": integer(
                "metadata.generation the status reflects.", minimum=0, fmt="int64"
            ),
            "selector": string("Label selector of the worker pods (for the scale subresource)."),
            "progress": _progress(),
            "tracking": {
                "type": "object",
                "description": "Operator bookkeeping (restart and backoff tracking), not an API: "
                "its content may change in any release.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    )
