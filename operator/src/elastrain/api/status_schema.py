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
        "A condition of the job (Created, Running, Restarting, Scaling, Suspended, "
        "Succeeded, Failed).",
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
            "tracking": {
                "type": "object",
                "description": "Operator bookkeeping (restart and backoff tracking), not an API: "
                "its content may change in any release.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    )
