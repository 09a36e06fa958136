"""Schema of a role's pod template, typed only where the operator relies on it or owns it.

The rest of the pod (volumes, env, resources, scheduling) keeps
``x-kubernetes-preserve-unknown-fields``: it is the Kubernetes PodSpec, which the pod's own
creation validates, and copying its schema here would only pin one Kubernetes version's.
The reserved labels and pod fields are the same tuples the parser checks.
"""

from __future__ import annotations

from elastrain.api import constants as c
from elastrain.api.schema_parts import Schema, obj, rule, string
from elastrain.api.template_checks import OPERATOR_LABELS, OPERATOR_POD_FIELDS

_TRAINER_NOTE = "The operator sets the pod's restartPolicy, hostname and subdomain itself."


def pod_template_schema(role: str) -> Schema:
    """The role's PodTemplateSpec: what the operator relies on is typed, the rest preserved."""
    where = f"spec.replicaSpecs.{role}.template"
    container = obj(
        "A container; everything besides name and image is passed to the pod unchanged.",
        {
            "name": string(
                "Container name (DNS-1123 label).",
                pattern=c.CONTAINER_NAME_PATTERN,
                max_length=63,
            ),
            "image": string("Container image.", min_length=1),
        },
        required=["name", "image"],
        preserve_unknown=True,
    )
    owned = [
        rule(
            f"!has(self.{key})",
            f"{where}.spec.{key} is set by the operator; remove it",
            field_path=f".{key}",
            reason="FieldValueForbidden",
        )
        for key in OPERATOR_POD_FIELDS
    ]
    pod_spec = obj(
        f"The pod spec (core/v1 PodSpec). {_TRAINER_NOTE}",
        {
            "containers": {
                "type": "array",
                "description": "The pod's containers; at least one.",
                "minItems": 1,
                "items": container,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
            "restartPolicy": string("Set by the operator; must not be given."),
            "hostname": string("Set by the operator (the pod's name); must not be given."),
            "subdomain": string("Set by the operator (the job's Service); must not be given."),
        },
        required=["containers"],
        preserve_unknown=True,
        rules=owned,
    )
    labels = {
        "type": "object",
        "description": "Labels for every pod of this role; the elastrain.dev/ ones are reserved.",
        "additionalProperties": {"type": "string"},
        "x-kubernetes-validations": [
            rule(
                " && ".join(f"!('{key}' in self)" for key in OPERATOR_LABELS),
                f"{where}.metadata.labels must not set {', '.join(OPERATOR_LABELS)}: "
                "the operator sets them",
                reason="FieldValueForbidden",
            )
        ],
    }
    metadata = obj(
        "Labels and annotations for the pods.",
        {
            "labels": labels,
            "annotations": {
                "type": "object",
                "description": "Annotations for every pod of this role.",
                "additionalProperties": {"type": "string"},
            },
        },
        preserve_unknown=True,
    )
    return obj(
        "The pod template (core/v1 PodTemplateSpec) for this role's pods.",
        {"metadata": metadata, "spec": pod_spec},
        required=["spec"],
    )
