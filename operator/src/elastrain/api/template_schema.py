"""Schema of a role's pod template, typed only where the operator relies on it or owns it.

The rest of the pod (volumes, env values, resources, scheduling) keeps
``x-kubernetes-preserve-unknown-fields``: it is the Kubernetes PodSpec, which the pod's own
creation validates, and copying its schema here would only pin one Kubernetes version's.
The reserved labels and pod fields are the same tuples the parser checks.

Also typed: what the API server refuses on every pod create (label and annotation keys, label
values, container ports, env var names). Left to the pod, such a template passes admission and
then fails each pod create with a 422 that the operator can only repeat as a Warning event.
The annotations' total size (256 KiB) and their keys are checked by the parser only: a CEL rule
over annotation keys exceeds the cost budget for any useful number of annotations, because the
cost estimate sizes each key like the (long) values.
"""

from __future__ import annotations

from elastrain.api import constants as c
from elastrain.api.schema_parts import Schema, integer, obj, rule, string
from elastrain.api.template_checks import OPERATOR_LABELS, OPERATOR_POD_FIELDS

_TRAINER_NOTE = "The operator sets the pod's restartPolicy, hostname and subdomain itself."
_QUALIFIED = (
    "qualified names: an optional DNS-1123 subdomain prefix of at most "
    f"{c.MAX_QUALIFIED_PREFIX_LENGTH} characters and '/', then a name of at most 63 characters "
    "(letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
)


def _qualified_keys(where: str) -> Schema:
    """Every key of the map is a qualified name (the prefix length is a separate check)."""
    limit = c.MAX_QUALIFIED_PREFIX_LENGTH
    return rule(
        f"self.all(k, k.matches('{c.QUALIFIED_NAME_PATTERN}') && "
        f"(!k.contains('/') || k.indexOf('/') <= {limit}))",
        f"{where} keys must be {_QUALIFIED}",
    )


def _container() -> Schema:
    """A container: the fields a pod create would refuse are typed, everything else preserved."""
    port = obj(
        "A container port; protocol, hostPort and hostIP are passed to the pod unchanged.",
        {
            "containerPort": integer("Port number.", minimum=1, maximum=65535),
            "name": string(
                "Port name (IANA_SVC_NAME): lower-case letters, digits and single '-' between "
                "them, at least one letter.",
                pattern=c.PORT_NAME_PATTERN,
                max_length=c.MAX_PORT_NAME_LENGTH,
            ),
        },
        required=["containerPort"],
        preserve_unknown=True,
    )
    env = obj(
        "An environment variable; value and valueFrom are passed to the pod unchanged.",
        {
            "name": string(
                "Variable name: letters, digits, '-', '_' and '.', not starting with a digit "
                "or '..'.",
                pattern=c.ENV_VAR_NAME_PATTERN,
            )
        },
        required=["name"],
        preserve_unknown=True,
    )
    return obj(
        "A container; besides name, image, ports and env names, passed to the pod unchanged.",
        {
            "name": string(
                "Container name (DNS-1123 label).",
                pattern=c.CONTAINER_NAME_PATTERN,
                max_length=63,
            ),
            "image": string("Container image.", min_length=1),
            "ports": {
                "type": "array",
                "description": "Ports the container exposes.",
                "items": port,
            },
            "env": {"type": "array", "description": "Environment variables.", "items": env},
        },
        required=["name", "image"],
        preserve_unknown=True,
    )


def pod_template_schema(role: str) -> Schema:
    """The role's PodTemplateSpec: what the operator relies on is typed, the rest preserved."""
    where = f"spec.replicaSpecs.{role}.template"
    container = _container()
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
        "maxProperties": c.MAX_TEMPLATE_LABELS,
        "additionalProperties": string(
            "A label value: at most 63 characters (letters, digits, '-', '_' and '.', starting "
            "and ending with a letter or digit), or empty.",
            pattern=c.LABEL_VALUE_PATTERN,
            max_length=c.MAX_LABEL_VALUE_LENGTH,
        ),
        "x-kubernetes-validations": [
            rule(
                " && ".join(f"!('{key}' in self)" for key in OPERATOR_LABELS),
                f"{where}.metadata.labels must not set {', '.join(OPERATOR_LABELS)}: "
                "the operator sets them",
                reason="FieldValueForbidden",
            ),
            _qualified_keys(f"{where}.metadata.labels"),
        ],
    }
    metadata = obj(
        "Labels and annotations for the pods.",
        {
            "labels": labels,
            "annotations": {
                "type": "object",
                "description": "Annotations for every pod of this role (keys are qualified "
                "names; all together at most 256 KiB).",
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
